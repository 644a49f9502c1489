// SPDX-License-Identifier: MIT OR Apache-2.0
//! Releases done in steps: asked for (`release_interface`, answered when the last step is
//! done, the connection paused meanwhile) or of a client that left, [`RELEASE_BATCH`] entries
//! a step between other inputs, at the pace its alerts are read.

use super::*;

/// Entries (memberships, MFEs) a release removes per step: a client with a million is
/// released, or taken down when it leaves, between other inputs, not in one stall.
pub(super) const RELEASE_BATCH: usize = 512;
/// How long release steps wait for congested clients to read, at most.
const RELEASE_PATIENCE: Duration = Duration::from_secs(2);

/// Work done in steps between inputs, in order.
#[derive(Debug)]
pub(super) enum Job {
    /// A release: asked for (answered with `reply` when done), or of a departed client.
    Release { h: Handle, iface: Iface, reply: Option<(ConnId, u64)> },
    /// A departed client whose releases are done: deregistered.
    Forget(Handle),
}

impl<D: Dataplane> Daemon<D> {
    /// Releases go at the pace their alerts are read: they wait while a client has more
    /// waiting than its queue holds, for a while (a client that does not read at all is cut
    /// off by its own limit).
    pub(super) fn jobs_may_step(&self, now: Duration) -> bool {
        !self.jobs.is_empty()
            && (!self.conns.congested() || now.saturating_sub(self.last_step) >= RELEASE_PATIENCE)
    }

    /// Up to [`RELEASE_BATCH`] entries of the releases under way; a release done is answered
    /// (its connection's next requests are served), a departed client with nothing left is
    /// deregistered.
    pub(super) fn step_jobs(&mut self, now: Duration) {
        self.last_step = now;
        let mut budget = RELEASE_BATCH;
        let mut answered = Vec::new();
        while budget > 0
            && let Some(job) = self.jobs.front()
        {
            match *job {
                Job::Release { h, iface, reply } => {
                    // An error: it is no longer the client's (its interface left the
                    // kernel meanwhile), which is what was asked.
                    let r = self.manager.release_step(h, iface, &mut budget, now);
                    if r == Ok(Progress::More) {
                        break;
                    }
                    answered.extend(reply);
                }
                Job::Forget(h) => self.manager.client_gone(h, now),
            }
            self.jobs.pop_front();
        }
        let events = self.apply_effects();
        for &(conn, id) in &answered {
            self.conns.send(
                conn,
                reply_line::<crate::proto::ReleaseInterface>(id, Ok(crate::proto::Done {})),
            );
        }
        self.deliver(events, now);
        for (conn, _) in answered {
            self.resume(conn);
        }
        let (steps, since) = &mut self.steps;
        if *steps == 0 {
            *since = now;
        }
        *steps += 1;
        if self.jobs.is_empty() && *steps > 1 {
            let took_ms = now.saturating_sub(*since).as_millis() as u64;
            info!(steps = *steps, took_ms, "releases done in steps");
            self.steps = (0, Duration::ZERO);
        }
    }

    /// A release of `conn`'s is under way: its next inputs wait, and it is not read.
    pub(super) fn hold_conn(&mut self, conn: ConnId) {
        self.busy.entry(conn).or_default();
        self.conns.pause_reading(conn, true);
    }

    /// `conn`'s release is answered: the inputs that waited are handled next, in order (see
    /// [`Daemon::handle_ready`]), and the connection is read again.
    pub(super) fn resume(&mut self, conn: ConnId) {
        let Some(waiting) = self.busy.remove(&conn) else { return };
        self.conns.pause_reading(conn, false);
        for input in waiting.into_iter().rev() {
            self.ready.push_front(input);
        }
    }

    pub(super) fn close(&mut self, conn: ConnId, why: &'static str, now: Duration) {
        if let Some(handles) = self.conns.close(conn) {
            self.release_handles(conn, handles, why, now);
        }
    }

    pub(super) fn release_handles(
        &mut self,
        conn: ConnId,
        handles: BTreeSet<crate::manager::Handle>,
        why: &str,
        now: Duration,
    ) {
        // Lines still waiting behind a release of its own are not served (as for any
        // connection that is dropped).
        self.busy.remove(&conn);
        for &h in &handles {
            // The fast path stops copying for it at once, whatever it owned.
            for iface in self.manager.owned_ifaces(h) {
                self.end_adopted_leases(Some(iface.ifindex));
                self.writer.end_lease(iface, h);
                self.jobs.push_back(Job::Release { h, iface, reply: None });
            }
            self.jobs.push_back(Job::Forget(h));
        }
        info!(conn, handles = handles.len(), why, "client gone; its state is released");
        // A first step at once: a client with few entries is gone before the next input.
        self.step_jobs(now);
    }
}
