// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP, the router side (the IGMP daemon, mgm-igmpd, in progress; pure, no I/O):
//! [`packet`] decodes and validates what hosts send and encodes queries; [`group`] is one
//! group's router state on one interface (RFC 3376 §6, with §7.3's older-version hosts).

pub mod group;
pub mod packet;
