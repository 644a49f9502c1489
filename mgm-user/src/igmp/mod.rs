// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP, the router side (the IGMP daemon, mgm-igmpd, in progress): [`packet`] decodes and
//! validates what hosts send and encodes queries.

pub mod packet;
