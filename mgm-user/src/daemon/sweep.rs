// SPDX-License-Identifier: MIT OR Apache-2.0
//! The counter sweep: traffic keeps MFEs alive. Each tick reads the packet counters of a slice
//! of the MFEs and restarts the idle timer of those whose count moved, so a large table costs
//! a steady trickle of map reads rather than a stall.

use std::{collections::HashMap, time::Duration};

use mgm_common::UPCALL_QUEUE;

use crate::{
    fastpath::{FastPath, Mirror},
    manager::{Manager, Sg},
};

/// MFEs read per tick: at least this many, and enough that a sweep of the whole table takes
/// at most [`SLICES`] ticks (5 s at mgmd's 250 ms tick).
const BATCH: usize = 2_000;
const SLICES: usize = 20;

#[derive(Debug, Default)]
pub struct Sweep {
    last_packets: HashMap<Sg, u64>,
    /// Where the sweep continues.
    cursor: Option<Sg>,
}

impl Sweep {
    pub fn step<F: FastPath>(&mut self, manager: &mut Manager, mirror: &Mirror<F>, now: Duration) {
        let n = BATCH.max(manager.mfe_count().div_ceil(SLICES));
        let keys = manager.mfe_keys_after(self.cursor, n);
        self.cursor = if keys.len() < n { None } else { keys.last().copied() };
        for sg in keys {
            let Ok(Some(s)) = mirror.stats(&sg) else { continue };
            if self.last_packets.insert(sg, s.packets) != Some(s.packets) {
                manager.refresh(sg, now);
            }
            // More than the packets held while it was created: a real flow.
            if s.packets > u64::from(UPCALL_QUEUE) {
                manager.prove(sg);
            }
        }
    }

    /// `key` left the fast path.
    pub fn forget(&mut self, key: &Sg) {
        self.last_packets.remove(key);
    }
}
