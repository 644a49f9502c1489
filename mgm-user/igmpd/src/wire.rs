// SPDX-License-Identifier: MIT OR Apache-2.0
//! What differs between IGMP (IPv4) and MLD (IPv6) at mgm-igmpd's edges: the link's socket,
//! decoding and sending, the interface's own address, and how the upstream host joins. The
//! group state, the daemon loop and the proxy are one implementation over [`Wire`].

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6},
    os::fd::AsRawFd as _,
};

use anyhow::Context as _;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use super::{
    addr::Addr,
    link::Link,
    mld,
    packet::{self, Message, Query, Reject},
};
use crate::addrs;

/// An interface's own address, as the protocol uses it: IGMP's primary IPv4 address and its
/// prefix (reports must come from the subnet), MLD's link-local address (the querier
/// election compares them; the decoder already takes only link-local sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local<A> {
    pub ifindex: u32,
    pub addr: A,
    pub prefix: u8,
}

/// IGMP on IPv4 or MLD on IPv6.
pub trait Wire: Addr {
    /// "IGMP" or "MLD", for logs and errors.
    const NAME: &'static str;
    /// The address an interface needs, for errors.
    const ADDRESS: &'static str;
    /// The versions of the protocol an operator names (IGMP 1-3, MLD 1-2) to the group
    /// state's versions (MLDv1 behaves as IGMPv2, MLDv2 as IGMPv3).
    fn state_version(version: u8) -> Option<u8>;
    /// The other way, for the operator's view.
    fn protocol_version(state: u8) -> u8;
    /// Every interface's address the protocol speaks from, one per interface (read once
    /// at start for all of them).
    fn locals() -> anyhow::Result<Vec<Local<Self>>>;
    fn open(ifindex: u32) -> io::Result<Link>;
    /// Decodes a datagram the link read: its source and message.
    fn parse(d: &[u8]) -> Result<(Self, Message<Self>), Reject>;
    /// Whether a message from `source` may be acted on at `local`.
    fn on_link(local: &Local<Self>, source: Self) -> bool;
    fn send(link: &Link, from: Self, to: Self, q: &Query<Self>) -> io::Result<()>;
    fn ip(self) -> IpAddr;
    fn of(ip: IpAddr) -> Option<Self>;
    /// A socket of the kernel's host stack for holding memberships on the upstream link.
    fn host_socket() -> io::Result<Socket>;
    fn join_any(s: &Socket, group: Self, at: &Local<Self>) -> io::Result<()>;
    fn join_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()>;
    fn leave_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()>;
}

impl Wire for Ipv4Addr {
    const NAME: &'static str = "IGMP";
    const ADDRESS: &'static str = "an IPv4 address";

    fn state_version(version: u8) -> Option<u8> {
        (1..=3).contains(&version).then_some(version)
    }

    fn protocol_version(state: u8) -> u8 {
        state
    }

    fn locals() -> anyhow::Result<Vec<Local<Self>>> {
        // Primary addresses come first: the first one of each interface is the one found.
        let all = addrs::addresses().context("reading the interfaces' IPv4 addresses")?;
        Ok(all
            .iter()
            .map(|a| Local { ifindex: a.ifindex, addr: a.addr, prefix: a.prefix })
            .collect())
    }

    fn open(ifindex: u32) -> io::Result<Link> {
        Link::open(ifindex)
    }

    fn parse(d: &[u8]) -> Result<(Self, Message<Self>), Reject> {
        packet::parse(d).map(|(ip, m)| (ip.source, m))
    }

    fn on_link(local: &Local<Self>, source: Self) -> bool {
        // RFC 3376 §4.2.13: reports from 0.0.0.0 are accepted.
        let ifaddr =
            addrs::IfAddr { ifindex: local.ifindex, addr: local.addr, prefix: local.prefix };
        source.is_unspecified() || ifaddr.on_link(source)
    }

    fn send(link: &Link, from: Self, to: Self, q: &Query<Self>) -> io::Result<()> {
        link.send(from, to, &packet::encode_query(q))
    }

    fn ip(self) -> IpAddr {
        self.into()
    }

    fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    fn host_socket() -> io::Result<Socket> {
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
    }

    fn join_any(s: &Socket, group: Self, at: &Local<Self>) -> io::Result<()> {
        s.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(at.ifindex))
    }

    fn join_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()> {
        s.join_ssm_v4(&source, &group, &at.addr)
    }

    fn leave_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()> {
        s.leave_ssm_v4(&source, &group, &at.addr)
    }
}

impl Wire for Ipv6Addr {
    const NAME: &'static str = "MLD";
    const ADDRESS: &'static str = "an IPv6 link-local address";

    fn state_version(version: u8) -> Option<u8> {
        matches!(version, 1 | 2).then_some(version + 1)
    }

    fn protocol_version(state: u8) -> u8 {
        state.saturating_sub(1).max(1)
    }

    fn locals() -> anyhow::Result<Vec<Local<Self>>> {
        let mut all =
            addrs::link_local_addresses().context("reading the interfaces' IPv6 addresses")?;
        // The lowest of an interface's link-local addresses first: the querier election's.
        all.sort();
        Ok(all.into_iter().map(|(ifindex, addr)| Local { ifindex, addr, prefix: 64 }).collect())
    }

    fn open(ifindex: u32) -> io::Result<Link> {
        Link::open_mld(ifindex)
    }

    fn parse(d: &[u8]) -> Result<(Self, Message<Self>), Reject> {
        mld::parse(d).map(|(ip, m)| (ip.source, m))
    }

    fn on_link(_: &Local<Self>, _: Self) -> bool {
        // The decoder took link-local sources (and :: for reports) only.
        true
    }

    fn send(link: &Link, from: Self, to: Self, q: &Query<Self>) -> io::Result<()> {
        link.send_mld(from, to, &mld::encode_query(q, from, to))
    }

    fn ip(self) -> IpAddr {
        self.into()
    }

    fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }

    fn host_socket() -> io::Result<Socket> {
        Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
    }

    fn join_any(s: &Socket, group: Self, at: &Local<Self>) -> io::Result<()> {
        s.join_multicast_v6(&group, at.ifindex)
    }

    fn join_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()> {
        source_group(s, libc::MCAST_JOIN_SOURCE_GROUP, source, group, at.ifindex)
    }

    fn leave_source(s: &Socket, source: Self, group: Self, at: &Local<Self>) -> io::Result<()> {
        source_group(s, libc::MCAST_LEAVE_SOURCE_GROUP, source, group, at.ifindex)
    }
}

/// MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP for IPv6 (socket2 has calls for
/// IPv4's source-specific joins only).
fn source_group(
    s: &Socket,
    opt: libc::c_int,
    source: Ipv6Addr,
    group: Ipv6Addr,
    ifindex: u32,
) -> io::Result<()> {
    let storage = |a: Ipv6Addr| SockAddr::from(SocketAddrV6::new(a, 0, 0, 0)).as_storage();
    let req = libc::group_source_req {
        gsr_interface: ifindex,
        gsr_group: storage(group),
        gsr_source: storage(source),
    };
    // SAFETY: a valid group_source_req of the size given, on an open socket.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            opt,
            (&req as *const libc::group_source_req).cast(),
            size_of::<libc::group_source_req>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_an_operator_names() {
        assert_eq!(<Ipv4Addr as Wire>::state_version(2), Some(2));
        assert_eq!(<Ipv4Addr as Wire>::state_version(4), None);
        assert_eq!(<Ipv6Addr as Wire>::state_version(1), Some(2), "MLDv1 is IGMPv2's twin");
        assert_eq!(<Ipv6Addr as Wire>::state_version(2), Some(3), "MLDv2 is IGMPv3's");
        assert_eq!(<Ipv6Addr as Wire>::state_version(3), None);
    }

    #[test]
    fn the_other_family_is_not_taken() {
        assert_eq!(<Ipv4Addr as Wire>::of("ff3e::1".parse().unwrap()), None);
        assert_eq!(<Ipv6Addr as Wire>::of("239.1.1.1".parse().unwrap()), None);
        let g: Ipv6Addr = "ff3e::1".parse().unwrap();
        assert_eq!(<Ipv6Addr as Wire>::of(g.ip()), Some(g));
    }
}
