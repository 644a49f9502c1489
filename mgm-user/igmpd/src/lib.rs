// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-igmpd: IGMP and MLD, the router side and the proxy, as the daemon `mgm-igmpd` runs
//! them on mgmd's socket (a client of it, through mgm-client, like any routing protocol).
//! Pure, no I/O: [`packet`] decodes and validates what hosts send and encodes queries;
//! [`group`] is one group's router state on one interface (RFC 3376 §6, with §7.3's
//! older-version hosts); [`iface`] is one interface: querier election, general, startup and
//! last-member queries, and the memberships (in MGM terms) the groups' state gives;
//! [`mld`] is MLD's codec into the same messages (IPv6). [`config`] checks the settings.
//! [`group`] and [`iface`] are generic over the address family ([`addr`]); [`wire`] is what
//! differs at the edges, so one daemon runs IGMP or MLD. The edges: [`link`], a packet socket
//! per interface that reads hosts' IGMP below IP and sends queries; [`host`], the proxy's upstream subscriptions
//! held by the kernel's host stack; [`addrs`], the host's addresses from the kernel;
//! [`daemon`], the run loop and the connection to mgmd.

pub mod addr;
pub mod addrs;
pub mod config;
pub mod daemon;
pub mod group;
pub mod host;
pub mod iface;
pub mod link;
pub mod mld;
pub mod packet;
pub mod wire;
