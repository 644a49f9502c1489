// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP, the router side (the IGMP daemon, mgm-igmpd, is in progress; all but [`link`] are
//! pure, no I/O): [`packet`] decodes and validates what hosts send and encodes queries; [`group`] is
//! one group's router state on one interface (RFC 3376 §6, with §7.3's older-version hosts);
//! [`iface`] is one interface: querier election, general, startup and last-member queries,
//! and the memberships (in MGM terms) the groups' state gives. [`link`] is the edge: a packet
//! socket per interface that reads hosts' IGMP below IP and sends queries.

pub mod group;
pub mod iface;
pub mod link;
pub mod packet;
