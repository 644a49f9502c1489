// SPDX-License-Identifier: MIT OR Apache-2.0
//! The first packets of flows without an MFE, held until the core installs one (as the
//! kernel's ipmr queues a few packets per unresolved entry), within bounds: at most
//! `UPCALL_QUEUE` packets per flow and [`MAX_FLOWS`] flows, each for a limited time.

use std::{collections::HashMap, time::Duration};

use mgm_common::UPCALL_QUEUE;

use crate::manager::Sg;

/// (S,G)s whose first packets are held at most (the kernel's ipmr holds 64 unresolved entries
/// per table by default).
pub const MAX_FLOWS: usize = 1024;

#[derive(Debug)]
struct Flow {
    since: Duration,
    /// (ingress ifindex, frame), oldest first, at most `UPCALL_QUEUE`.
    frames: Vec<(u32, Vec<u8>)>,
}

#[derive(Debug, Default)]
pub struct FirstPackets {
    flows: HashMap<Sg, Flow>,
    /// Held packets handed to the fast path, and dropped (over a bound, never resolved, or
    /// refused by the fast path).
    pub replayed: u64,
    pub dropped: u64,
}

impl FirstPackets {
    pub fn is_waiting(&self, key: &Sg) -> bool {
        self.flows.contains_key(key)
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Keeps a packet of `key` that arrived on `ifindex`.
    pub fn hold(&mut self, key: Sg, ifindex: u32, frame: &[u8], now: Duration) {
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
            self.dropped += 1;
            return;
        }
        let f = self.flows.entry(key).or_insert(Flow { since: now, frames: vec![] });
        if f.frames.len() < UPCALL_QUEUE as usize {
            f.frames.push((ifindex, frame.to_vec()));
        } else {
            self.dropped += 1;
        }
    }

    /// The packets held for `key`, oldest first (its MFE is in the fast path now).
    pub fn take(&mut self, key: &Sg) -> Vec<(u32, Vec<u8>)> {
        self.flows.remove(key).map(|f| f.frames).unwrap_or_default()
    }

    /// `key` will not get an MFE: its packets are dropped.
    pub fn abandon(&mut self, key: &Sg) {
        if let Some(f) = self.flows.remove(key) {
            self.dropped += f.frames.len() as u64;
        }
    }

    /// Drops the packets of flows waiting `ttl` or longer.
    pub fn expire(&mut self, now: Duration, ttl: Duration) {
        let mut dropped = 0;
        self.flows.retain(|_, f| {
            let keep = now.saturating_sub(f.since) < ttl;
            if !keep {
                dropped += f.frames.len() as u64;
            }
            keep
        });
        self.dropped += dropped;
    }
}
