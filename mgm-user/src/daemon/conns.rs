// SPDX-License-Identifier: MIT OR Apache-2.0
//! The connections: their outbound queues, the handles each registered, and who watches every
//! event. A connection whose queue overflows (a client that does not read) or is gone is
//! closed here and reported by [`Connections::take_closed`], so the daemon releases what it
//! owned without re-entering itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use tracing::{info, warn};

use crate::{
    manager::Handle,
    proto::{ErrorCode, EventFrame, WireError},
    server::{ConnId, Outbound, PushError},
};

struct Conn {
    tx: Outbound,
    handles: BTreeSet<Handle>,
    /// Gets a copy of every event (`watch`).
    monitor: bool,
}

#[derive(Default)]
pub(super) struct Connections {
    conns: BTreeMap<ConnId, Conn>,
    owner: HashMap<Handle, ConnId>,
    /// Connections closed while sending, with the handles they held.
    closed: Vec<(ConnId, BTreeSet<Handle>, &'static str)>,
}

impl Connections {
    pub fn open(&mut self, conn: ConnId, tx: Outbound) {
        self.conns.insert(conn, Conn { tx, handles: BTreeSet::new(), monitor: false });
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
            let mut e = WireError::new(
                ErrorCode::InvalidParameter,
                format!("no handle {} on this connection", h.0),
            );
            e.win32 = Some(87);
            Err(e)
        }
    }

    /// Queues a line for `conn`. Documented policy: a client that lets its queue fill (it does
    /// not read) loses its connection, and so its state, rather than stalling the router.
    pub fn send(&mut self, conn: ConnId, line: String) {
        let Some(c) = self.conns.get(&conn) else { return };
        let why = match c.tx.push(line) {
            Ok(()) => return,
            Err(PushError::Full) => {
                warn!(conn, "client does not read; disconnecting it");
                c.tx.kill();
                "outbound queue full"
            }
            Err(PushError::Closed) => "closed",
        };
        if let Some(handles) = self.close(conn) {
            self.closed.push((conn, handles, why));
        }
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
