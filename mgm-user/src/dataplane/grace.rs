// SPDX-License-Identifier: MIT OR Apache-2.0
//! RCU grace periods, waited out from user space so that an OIL no MFE names is emptied only
//! once no packet can be on its way through it. The kernel waits for one on every write of a
//! map-in-map ("all programs that could be running use the new map value" on return); writing
//! slot 0 of the outer OIL map, which no program reads (`OIL_EMPTY`), waits for one and
//! changes nothing. A thread of its own does the writing, so the run loop never blocks on
//! it (a grace period is 8-20 ms here, far longer in an emulated guest).

use std::{
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::SeqCst},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};

use aya::maps::MapData;
use tracing::warn;

use super::sys;

/// Slot 0 of the outer OIL map and the (empty) devmap written into it.
struct SlotZero {
    outer: OwnedFd,
    inner: MapData,
}

impl SlotZero {
    /// One write of slot 0: returns once a grace period has passed.
    fn wait(&self) -> std::io::Result<()> {
        let fd = self.inner.fd().as_fd().as_raw_fd() as u32;
        sys::update_elem(self.outer.as_fd(), &0u32, &fd)
    }

    /// A grace period, come what may: should the write fail (it has no reason to), a pause
    /// far longer than any program's run stands in for it.
    fn wait_or_pause(&self) {
        if let Err(e) = self.wait() {
            warn!(error = %e, "waiting for an RCU grace period failed; pausing instead");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Tickets for grace periods and the thread that waits them out.
pub(super) struct Graces {
    asked: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
    wake: SyncSender<()>,
    slot: Arc<SlotZero>,
}

impl Graces {
    /// `outer` is the outer OIL map; `inner` a new, empty devmap of the inner maps' shape.
    pub(super) fn start(outer: OwnedFd, inner: MapData) -> std::io::Result<Self> {
        let slot = Arc::new(SlotZero { outer, inner });
        let (asked, ended) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (wake, woken) = sync_channel(1);
        let (s, a, e) = (slot.clone(), asked.clone(), ended.clone());
        std::thread::Builder::new()
            .name("mgm-grace".into())
            .spawn(move || run(&s, &a, &e, &woken))?;
        Ok(Self { asked, ended, wake, slot })
    }

    /// A ticket for a grace period that begins after this call.
    pub(super) fn ticket(&self) -> u64 {
        let t = self.asked.fetch_add(1, SeqCst) + 1;
        match self.wake.try_send(()) {
            // Full: a wake is pending, and the thread reads `asked` after taking it.
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => self.wait(),
        }
        t
    }

    pub(super) fn ended(&self) -> u64 {
        self.ended.load(SeqCst)
    }

    /// Waits one out on this thread: every ticket handed out so far has ended on return.
    pub(super) fn wait(&self) {
        let asked = self.asked.load(SeqCst);
        self.slot.wait_or_pause();
        self.ended.fetch_max(asked, SeqCst);
    }
}

/// The thread: for each wake, one grace period covering every ticket asked before it began.
/// Ends with its [`Graces`] (the sender dropped).
fn run(slot: &SlotZero, asked: &AtomicU64, ended: &AtomicU64, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        let covered = asked.load(SeqCst);
        slot.wait_or_pause();
        ended.fetch_max(covered, SeqCst);
    }
}
