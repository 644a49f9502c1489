// SPDX-License-Identifier: MIT OR Apache-2.0
//! The connections: their outbound queues, the handles each registered, and who watches every
//! event. Lines beyond a connection's queue limit wait here, in order, and go as the client
//! reads (an alert storm is paced, not a reason to cut a reading client off); only a client
//! that lets [`BACKLOG_FACTOR`] times its limit pile up counts as not reading and is closed.
//! A closed connection is reported by [`Connections::take_closed`], so the daemon releases
//! what it owned without re-entering itself.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;
use tracing::{info, warn};

use crate::{
    manager::{Handle, MgmError},
    proto::{EventFrame, WireError},
    server::{ConnId, Outbound, PushError},
};

/// How many times its queue limit a connection may have waiting in all before it counts as
/// not reading.
pub(super) const BACKLOG_FACTOR: usize = 4;

struct Conn {
    tx: Outbound,
    /// The peer's user (credentials of the socket), if known.
    uid: Option<u32>,
    handles: BTreeSet<Handle>,
    /// Gets a copy of every event (`watch`).
    monitor: bool,
    /// Lines waiting for room in the queue, oldest first, and their bytes.
    backlog: VecDeque<String>,
    backlog_bytes: usize,
}

#[derive(Default)]
pub(super) struct Connections {
    conns: BTreeMap<ConnId, Conn>,
    owner: HashMap<Handle, ConnId>,
    /// Connections closed while sending, with the handles they held.
    closed: Vec<(ConnId, BTreeSet<Handle>, &'static str)>,
}

impl Connections {
    pub fn open(&mut self, conn: ConnId, tx: Outbound, uid: Option<u32>) {
        let c = Conn {
            tx,
            uid,
            handles: BTreeSet::new(),
            monitor: false,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
        };
        self.conns.insert(conn, c);
    }

    /// Open connections.
    pub fn count(&self) -> usize {
        self.conns.len()
    }

    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Forgets a connection; returns the handles it held.
    pub fn close(&mut self, conn: ConnId) -> Option<BTreeSet<Handle>> {
        let c = self.conns.remove(&conn)?;
        for h in &c.handles {
            self.owner.remove(h);
        }
        Some(c.handles)
    }

    /// Connections closed by a failed send since the last call.
    pub fn take_closed(&mut self) -> Vec<(ConnId, BTreeSet<Handle>, &'static str)> {
        std::mem::take(&mut self.closed)
    }

    pub fn watch(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.monitor = true;
        }
    }

    /// The handles `conn` registered.
    pub fn handles(&self, conn: ConnId) -> impl Iterator<Item = Handle> + '_ {
        self.conns.get(&conn).into_iter().flat_map(|c| c.handles.iter().copied())
    }

    /// The handles that share `conn`'s quotas: those of every connection of the same user,
    /// as connections are counted per user (one user's many connections get no more of a
    /// table than one); root's (and an unknown peer's) per connection.
    pub fn quota_handles(&self, conn: ConnId) -> Vec<Handle> {
        match self.conns.get(&conn).and_then(|c| c.uid).filter(|&u| u != 0) {
            None => self.handles(conn).collect(),
            Some(uid) => self
                .conns
                .values()
                .filter(|c| c.uid == Some(uid))
                .flat_map(|c| c.handles.iter().copied())
                .collect(),
        }
    }

    /// `h` now belongs to `conn`.
    pub fn bind(&mut self, conn: ConnId, h: Handle) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.handles.insert(h);
            self.owner.insert(h, conn);
        }
    }

    pub fn unbind(&mut self, h: Handle) {
        if let Some(conn) = self.owner.remove(&h)
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.handles.remove(&h);
        }
    }

    /// A handle is usable only on the connection that registered it.
    pub fn own(&self, conn: ConnId, h: Handle) -> Result<Handle, WireError> {
        if self.owner.get(&h) == Some(&conn) {
            Ok(h)
        } else {
            let why = format!("no handle {} on this connection", h.0);
            Err(WireError::mgm(MgmError::InvalidParameter, why))
        }
    }

    /// Queues a line for `conn`, behind any that wait. Documented policy: a client that lets
    /// [`BACKLOG_FACTOR`] times its queue limit pile up does not read, and loses its
    /// connection (and so its state) rather than growing mgmd's memory.
    pub fn send(&mut self, conn: ConnId, line: String) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        // Straight into the queue unless lines already wait (order) or it is full.
        let line = match c.backlog.is_empty() {
            true => c.tx.push(line),
            false => Err((PushError::Full, line)),
        };
        let why = match line {
            Ok(()) => return,
            Err((PushError::Closed, _)) => "closed",
            Err((PushError::Full, line)) => {
                c.backlog_bytes += line.len() + 1;
                c.backlog.push_back(line);
                if c.backlog_bytes <= BACKLOG_FACTOR * c.tx.limit() {
                    return;
                }
                warn!(conn, "client does not read; disconnecting it");
                c.tx.kill();
                "outbound queue full"
            }
        };
        if let Some(handles) = self.close(conn) {
            self.closed.push((conn, handles, why));
        }
    }

    /// Moves waiting lines into the queues that have room again.
    pub fn pump(&mut self) {
        let mut gone = Vec::new();
        for (id, c) in self.conns.iter_mut().filter(|(_, c)| !c.backlog.is_empty()) {
            while let Some(line) = c.backlog.pop_front() {
                let n = line.len() + 1;
                match c.tx.push(line) {
                    Ok(()) => c.backlog_bytes -= n,
                    Err((PushError::Full, line)) => {
                        c.backlog.push_front(line);
                        break;
                    }
                    Err((PushError::Closed, _)) => {
                        gone.push(*id);
                        break;
                    }
                }
            }
        }
        for conn in gone {
            if let Some(handles) = self.close(conn) {
                self.closed.push((conn, handles, "closed"));
            }
        }
    }

    /// Whether some connection has more waiting than its queue holds (a client reading
    /// slower than mgmd writes).
    pub fn congested(&self) -> bool {
        self.conns.values().any(|c| c.backlog_bytes > c.tx.limit())
    }

    /// Stops (or resumes) reading `conn`'s requests.
    pub fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        if let Some(c) = self.conns.get(&conn) {
            c.tx.pause_reading(paused);
        }
    }

    /// Bytes waiting behind full queues, in all.
    pub fn backlog_bytes(&self) -> usize {
        self.conns.values().map(|c| c.backlog_bytes).sum()
    }

    /// Sends an event to the connection of the handle it is for, and to every monitor.
    pub fn deliver(&mut self, frame: &EventFrame) {
        let line = encode(frame);
        let owner = self.owner.get(&frame.handle).copied();
        let monitors: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| c.monitor && Some(**id) != owner)
            .map(|(id, _)| *id)
            .collect();
        if let Some(conn) = owner {
            self.send(conn, line.clone());
        }
        for conn in monitors {
            self.send(conn, line.clone());
        }
    }
}

pub(super) fn encode(msg: &impl Serialize) -> String {
    serde_json::to_string(msg).expect("replies and events serialize")
}

pub(super) fn log_open(conn: ConnId, peer: Option<(u32, u32, i32)>) {
    info!(conn, peer = ?peer, "client connected (uid, gid, pid)");
}
