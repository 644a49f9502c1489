// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mgm fast path, the object mgmd loads.
//!
//! * [`xdp`]: `mgm_xdp_ingress` (lookup, checks, replication) and `mgm_xdp_egress` (per copy);
//! * [`tc`]: `mgm_tc_ingress`, per-next-hop copies;
//! * [`lease`]: the atomic-release check every copy passes; [`upcall`]: packets for mgmd;
//! * [`maps`]: the maps and counters; `parse` and `parse6` (packet access and the checks of
//!   each family) are the crate's library, which the benchmark object links too.
//!
//! Verdict policy: a packet the fast path does not own (neither IPv4 nor IPv6, not routable multicast,
//! malformed, no MFE) is passed to the kernel untouched, so the stack sees exactly what it would
//! without mgm. A packet that matches an MFE is mgm's: it is forwarded, or dropped and counted
//! (wrong interface, TTL expired, empty outgoing list).
#![no_std]
#![no_main]

mod lease;
mod maps;
mod tc;
mod upcall;
mod xdp;

// The library's modules, at the paths the programs name them by.
use mgm_ebpf::{packet, parse, parse6};

/// The license the kernel checks for GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
