// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel's links and neighbours, as events: one rtnetlink socket subscribed to the link and
//! neighbour groups, a dump of both at start, and a new dump whenever the socket overflowed
//! (ENOBUFS: notifications were lost, so the whole view is read again).
//!
//! With `follow_mfc`, the same socket follows the kernel's multicast forwarding caches, IPv4's
//! (ipmr, address family `RTNL_FAMILY_IPMR`) and IPv6's (ip6mr, `RTNL_FAMILY_IP6MR`): every
//! entry added, changed or deleted is announced whole on the family's route group; VIF (MIF)
//! changes are announced only as a netconf change and silently change entries, so each one
//! (and an overflow) brings a new dump of both tables.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkFlags, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage},
};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use tokio::io::{Interest, unix::AsyncFd};

use mgm_util::{loglimit::LogLimit, rtnl};

/// A network interface as mgm uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub ifindex: u32,
    /// Link-layer address (all zero when the link has none of 6 bytes).
    pub mac: [u8; 6],
    /// IP MTU (saturated at 65,535).
    pub mtu: u16,
    /// Administratively up with a carrier (`IFF_UP` and `IFF_LOWER_UP`): copies can leave.
    pub up: bool,
}

/// (ifindex, IP address) → MAC, for the neighbours the kernel itself would send to (ARP's
/// and NDP's).
pub type Neighbours = HashMap<(u32, IpAddr), [u8; 6]>;

/// Something the kernel announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    /// A link appeared or changed (name, MTU, MAC, up or down).
    Link(NetDev),
    /// A link left the kernel.
    LinkGone(u32),
    /// A neighbour's MAC; `None` when the kernel would no longer send to it.
    Neighbour { ifindex: u32, ip: IpAddr, mac: Option<[u8; 6]> },
    /// The whole view, at start and after lost notifications: it replaces what came before.
    Snapshot { links: Vec<NetDev>, neighbours: Neighbours },
    /// An entry of the kernel's multicast forwarding cache, whole, as it is now.
    Mfc(KernelMfc),
    /// An entry left the cache (the message may name no interfaces: keyed on table, S, G).
    MfcGone { table: u32, source: IpAddr, group: IpAddr },
    /// The whole cache, every table: it replaces what came before.
    MfcSnapshot(Vec<KernelMfc>),
    /// What this host itself receives: no event announces a socket joining or binding, so
    /// [`local_delivery`] is read periodically.
    LocalGroups(Local),
}

/// The groups the router itself has joined, and the UDP ports its sockets could receive
/// multicast on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Local {
    /// (ifindex, group) joined by some socket of this host (`/proc/net/igmp`,
    /// `/proc/net/igmp6`).
    pub groups: BTreeSet<(u32, IpAddr)>,
    /// UDP ports of IPv4 sockets bound to the wildcard or a group address (`/proc/net/udp`);
    /// `None` when any port may be received: a raw UDP socket, or the table unreadable.
    /// (IPv6 packets of a group the router is a member of all go to the kernel.)
    pub udp_ports: Option<BTreeSet<u16>>,
}

/// One entry of the kernel's multicast forwarding cache (`ip mroute`, `ip -6 mroute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelMfc {
    pub table: u32,
    /// The unspecified address (0.0.0.0, ::) for a (*,G) or (*,*) entry.
    pub source: IpAddr,
    pub group: IpAddr,
    /// Incoming interface (an ifindex; 0 when the entry is unresolved).
    pub iif: u32,
    /// Outgoing interfaces and their TTL thresholds (a copy leaves only if TTL > threshold).
    pub oifs: Vec<(u32, u8)>,
    /// Waiting for the daemon to answer the kernel's upcall: nothing to forward yet.
    pub unresolved: bool,
}

/// The rtnetlink groups followed.
const GROUPS: [u32; 2] = [libc::RTNLGRP_LINK, libc::RTNLGRP_NEIGH];
/// And those that follow the multicast forwarding caches.
const MFC_GROUPS: [u32; 4] = [
    libc::RTNLGRP_IPV4_MROUTE,
    libc::RTNLGRP_IPV4_NETCONF,
    libc::RTNLGRP_IPV6_MROUTE,
    libc::RTNLGRP_IPV6_NETCONF,
];
/// `RTNL_FAMILY_IPMR`: the address family of ipmr's route messages.
const FAMILY_IPMR: u8 = 128;
/// `RTNL_FAMILY_IP6MR`: ip6mr's.
const FAMILY_IP6MR: u8 = 129;
/// `RTM_NEWNETCONF`, `RTM_DELNETCONF`: a VIF was added or removed (or a daemon started or
/// stopped); the crate does not decode them, the type is enough.
const RTM_NETCONF: [u16; 2] = [80, 81];
/// `RTNH_F_UNRESOLVED` in `rtm_flags`.
const RTNH_F_UNRESOLVED: u32 = 0x20;

/// Receive buffer of the subscribed socket: room for a burst of changes (a bridge with many
/// ports going down) before the kernel has to drop notifications.
const RCVBUF: usize = 4 << 20;

/// Datagrams read into one batch at most (the rest wait for the next call).
const BATCH: usize = 64;

/// The subscribed socket.
pub struct Monitor {
    sock: AsyncFd<Socket>,
    buf: Vec<u8>,
    follow_mfc: bool,
    /// Datagrams dropped because they did not come from the kernel.
    forged: u64,
    forged_log: LogLimit,
}

impl Monitor {
    /// Subscribes to the groups (with `follow_mfc`, the multicast forwarding cache's too);
    /// events start queuing at once, so a snapshot taken after this call misses nothing.
    pub fn open(follow_mfc: bool) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_rx_buf_sz(RCVBUF)?;
        let extra: &[u32] = if follow_mfc { &MFC_GROUPS } else { &[] };
        for &g in GROUPS.iter().chain(extra) {
            sock.add_membership(g)?;
        }
        sock.set_non_blocking(true)?;
        // SAFETY: the socket owns its fd, which stays open until the AsyncFd drops it.
        let sock = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self { sock, buf: vec![0; 1 << 16], follow_mfc, forged: 0, forged_log: LogLimit::new() })
    }

    /// Dumps both multicast forwarding caches (every table). A kernel without IPv6 has no
    /// ip6mr to dump: only IPv4's is read then.
    pub fn mfc_snapshot() -> io::Result<KernelEvent> {
        let mut entries = Vec::new();
        for family in [FAMILY_IPMR, FAMILY_IP6MR] {
            let mut req = RouteMessage::default();
            req.header.address_family = AddressFamily::from(family);
            let replies = match rtnl::dump(RouteNetlinkMessage::GetRoute(req)) {
                Ok(r) => r,
                Err(e) if family == FAMILY_IP6MR && no_family(&e) => continue,
                Err(e) => return Err(e),
            };
            entries.extend(replies.into_iter().filter_map(|m| match parse(m) {
                Some(KernelEvent::Mfc(e)) => Some(e),
                _ => None,
            }));
        }
        Ok(KernelEvent::MfcSnapshot(entries))
    }

    /// Dumps links and neighbours (on a socket of its own, so the dump's replies do not mix
    /// with notifications).
    pub fn snapshot() -> io::Result<KernelEvent> {
        let mut links = Vec::new();
        let mut neighbours = Neighbours::new();
        let mut link = LinkMessage::default();
        link.header.interface_family = AddressFamily::Unspec;
        let neigh = |family| {
            let mut n = NeighbourMessage::default();
            n.header.family = family;
            RouteNetlinkMessage::GetNeighbour(n)
        };
        let requests = [
            RouteNetlinkMessage::GetLink(link),
            neigh(AddressFamily::Inet),
            neigh(AddressFamily::Inet6),
        ];
        for req in requests {
            let replies = match rtnl::dump(req) {
                Ok(r) => r,
                // No IPv6 in the kernel: no NDP table to read.
                Err(e) if no_family(&e) => continue,
                Err(e) => return Err(e),
            };
            for m in replies {
                match parse(m) {
                    Some(KernelEvent::Link(d)) => links.push(d),
                    Some(KernelEvent::Neighbour { ifindex, ip, mac: Some(mac) }) => {
                        neighbours.insert((ifindex, ip), mac);
                    }
                    _ => {}
                }
            }
        }
        Ok(KernelEvent::Snapshot { links, neighbours })
    }

    /// The next batch of events: one datagram, and those already queued behind it (up to
    /// [`BATCH`]), so a burst of VIF changes (a daemon starting) costs one dump of the
    /// multicast table. After an overflow the batch is a fresh snapshot.
    pub async fn next(&mut self) -> io::Result<Vec<KernelEvent>> {
        let mut events = Vec::new();
        let mut vifs_changed = false;
        let mut datagrams = 0;
        while datagrams < BATCH {
            let got = if datagrams == 0 {
                let mut guard = self.sock.readable().await?;
                match guard.try_io(|s| s.get_ref().recv_from(&mut &mut self.buf[..], 0)) {
                    Err(_would_block) => continue,
                    Ok(r) => r,
                }
            } else {
                // Already readable or not: the socket is non-blocking.
                self.sock.get_ref().recv_from(&mut &mut self.buf[..], 0)
            };
            match got {
                // Only the kernel speaks for the kernel (port id 0): a process may unicast to
                // this socket, or multicast to its groups with CAP_NET_ADMIN, and would
                // otherwise forge routes or delete links (as routing daemons, mgm ignores it).
                Ok((_, from)) if from.port_number() != 0 => {
                    datagrams += 1;
                    self.forged += 1;
                    if let Some(more) = self.forged_log.allow(std::time::Instant::now()) {
                        tracing::warn!(
                            sender = from.port_number(),
                            dropped = self.forged,
                            suppressed = more,
                            "ignoring a netlink message not sent by the kernel"
                        );
                    }
                }
                Ok((n, _)) => {
                    datagrams += 1;
                    let bytes = &self.buf[..n];
                    events.extend(messages(bytes).filter_map(parse));
                    // A VIF came or went: entries may have changed without a message.
                    vifs_changed |= types(bytes).any(|t| RTM_NETCONF.contains(&t));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!(
                        "kernel notifications were lost (ENOBUFS); reading the kernel's tables again"
                    );
                    let mut events = vec![Self::snapshot()?];
                    if self.follow_mfc {
                        events.push(Self::mfc_snapshot()?);
                    }
                    return Ok(events);
                }
                Err(e) if datagrams == 0 => return Err(e),
                Err(_) => break, // the next call reports it
            }
        }
        if self.follow_mfc && vifs_changed {
            events.push(Self::mfc_snapshot()?);
        }
        Ok(events)
    }
}

/// The route messages in one datagram (undecodable ones are skipped).
fn messages(mut bytes: &[u8]) -> impl Iterator<Item = RouteNetlinkMessage> + '_ {
    std::iter::from_fn(move || {
        loop {
            if bytes.is_empty() {
                return None;
            }
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).ok();
            let len = m.as_ref().map_or(0, |m| m.header.length as usize);
            // A length that does not advance means the rest cannot be read.
            bytes = if len == 0 || len > bytes.len() { &[] } else { &bytes[len..] };
            if let Some(NetlinkPayload::InnerMessage(inner)) = m.map(|m| m.payload) {
                return Some(inner);
            }
        }
    })
}

/// The message types in one datagram.
fn types(mut bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
        bytes = if len < 16 || len > bytes.len() { &[] } else { &bytes[(len + 3) & !3..] };
        Some(ty)
    })
}

/// The kernel's link with this index now, asked directly (for a link named before its
/// notification was read). `None` if there is no such link.
pub fn link(ifindex: u32) -> io::Result<Option<NetDev>> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    match rtnl::get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(replies) => Ok(replies.into_iter().find_map(|m| match parse(m) {
            Some(KernelEvent::Link(d)) => Some(d),
            _ => None,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The event a route message stands for, if mgm follows it.
fn parse(m: RouteNetlinkMessage) -> Option<KernelEvent> {
    match m {
        RouteNetlinkMessage::NewLink(l) => Some(KernelEvent::Link(netdev(&l))),
        RouteNetlinkMessage::DelLink(l) => Some(KernelEvent::LinkGone(l.header.index)),
        RouteNetlinkMessage::NewNeighbour(n) => {
            let (ifindex, ip, mac) = neighbour(&n)?;
            Some(KernelEvent::Neighbour {
                ifindex,
                ip,
                mac: mac.filter(|_| usable(n.header.state)),
            })
        }
        RouteNetlinkMessage::DelNeighbour(n) => {
            let (ifindex, ip, _) = neighbour(&n)?;
            Some(KernelEvent::Neighbour { ifindex, ip, mac: None })
        }
        RouteNetlinkMessage::NewRoute(r) => mfc(&r).map(KernelEvent::Mfc),
        RouteNetlinkMessage::DelRoute(r) => {
            let e = mfc(&r)?;
            Some(KernelEvent::MfcGone { table: e.table, source: e.source, group: e.group })
        }
        _ => None,
    }
}

/// Whether a dump failed because the kernel has no such address family (no IPv6).
fn no_family(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EINVAL))
}

/// An ipmr or ip6mr route message as a cache entry (`None` for any other route).
fn mfc(r: &RouteMessage) -> Option<KernelMfc> {
    let any = match u8::from(r.header.address_family) {
        FAMILY_IPMR => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        FAMILY_IP6MR => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    // The crate decodes neither family's addresses: they come as bytes, of the family's size.
    let addr = |a: &RouteAddress| {
        let ip = match a {
            RouteAddress::Inet(v) => IpAddr::V4(*v),
            RouteAddress::Inet6(v) => IpAddr::V6(*v),
            RouteAddress::Other(b) => match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(b.as_slice()).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(b.as_slice()).ok()?),
                _ => return None,
            },
            _ => return None,
        };
        (ip.is_ipv4() == any.is_ipv4()).then_some(ip)
    };
    let mut e = KernelMfc {
        table: u32::from(r.header.table),
        source: any,
        group: any,
        iif: 0,
        oifs: Vec::new(),
        unresolved: r.header.flags.bits() & RTNH_F_UNRESOLVED != 0,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => e.table = *t,
            RouteAttribute::Source(s) => e.source = addr(s)?,
            RouteAttribute::Destination(d) => e.group = addr(d)?,
            RouteAttribute::Iif(i) => e.iif = *i,
            RouteAttribute::MultiPath(hops) => {
                e.oifs = hops.iter().map(|h| (h.interface_index, h.hops)).collect();
            }
            _ => {}
        }
    }
    Some(e)
}

fn netdev(l: &LinkMessage) -> NetDev {
    let flags = l.header.flags;
    let up = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
    let mut d = NetDev { name: String::new(), ifindex: l.header.index, mac: [0; 6], mtu: 0, up };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => d.name.clone_from(n),
            LinkAttribute::Mtu(m) => d.mtu = u16::try_from(*m).unwrap_or(u16::MAX),
            LinkAttribute::Address(a) => {
                d.mac = <[u8; 6]>::try_from(a.as_slice()).unwrap_or_default()
            }
            _ => {}
        }
    }
    d
}

/// (ifindex, address, MAC if the message has one) of an IPv4 or IPv6 neighbour.
fn neighbour(n: &NeighbourMessage) -> Option<(u32, IpAddr, Option<[u8; 6]>)> {
    let (mut ip, mut mac) = (None, None);
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some((*v).into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => ip = Some((*v).into()),
            NeighbourAttribute::LinkLayerAddress(m) => mac = <[u8; 6]>::try_from(m.as_slice()).ok(),
            _ => {}
        }
    }
    Some((n.header.ifindex, ip?, mac))
}

/// States in which the kernel itself would send to the neighbour.
fn usable(s: NeighbourState) -> bool {
    matches!(
        s,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

/// What this host receives itself: its groups per interface (`/proc/net/igmp`,
/// `/proc/net/igmp6` when the kernel has IPv6) and the UDP ports it could receive IPv4
/// multicast on (`/proc/net/udp`, `/proc/net/raw`).
pub fn local_delivery() -> io::Result<KernelEvent> {
    let read = |f| std::fs::read_to_string(f).ok();
    let mut groups = parse_proc_igmp(&std::fs::read_to_string("/proc/net/igmp")?);
    groups.extend(read("/proc/net/igmp6").as_deref().map(parse_proc_igmp6).unwrap_or_default());
    let udp_ports = match (read("/proc/net/udp"), read("/proc/net/raw")) {
        (Some(udp), Some(raw)) if multicast_ports(&raw).all(|proto| proto != 17) => {
            Some(multicast_ports(&udp).collect())
        }
        _ => None,
    };
    Ok(KernelEvent::LocalGroups(Local { groups, udp_ports }))
}

/// The ports of the sockets of a `/proc/net/{udp,raw}` table that can receive multicast
/// (bound to the wildcard or a multicast address); a raw socket's "port" is its protocol.
fn multicast_ports(text: &str) -> impl Iterator<Item = u16> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let local = line.split_whitespace().nth(1)?;
        let (addr, port) = local.split_once(':')?;
        let addr = proc_addr(addr)?;
        let port = u16::from_str_radix(port, 16).ok()?;
        (addr.is_unspecified() || addr.is_multicast()).then_some(port)
    })
}

/// An address as `/proc/net` prints it: the kernel's `__be32` as a native-endian hexadecimal
/// number.
fn proc_addr(hex: &str) -> Option<Ipv4Addr> {
    u32::from_str_radix(hex, 16).ok().map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// `/proc/net/igmp`'s text: `Idx Device : ...` lines, then a line per group.
fn parse_proc_igmp(text: &str) -> BTreeSet<(u32, IpAddr)> {
    let mut out = BTreeSet::new();
    let mut ifindex = None;
    for line in text.lines().skip(1) {
        if !line.starts_with(char::is_whitespace) {
            ifindex = line.split_whitespace().next().and_then(|i| i.parse().ok());
            continue;
        }
        let (Some(i), Some(hex)) = (ifindex, line.split_whitespace().next()) else { continue };
        if let Some(group) = proc_addr(hex) {
            out.insert((i, IpAddr::V4(group)));
        }
    }
    out
}

/// `/proc/net/igmp6`'s text: a line per (interface, group), the group as 32 hexadecimal
/// digits in network order.
fn parse_proc_igmp6(text: &str) -> BTreeSet<(u32, IpAddr)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let ifindex = f.next()?.parse().ok()?;
            let hex = f.nth(1)?;
            let group = u128::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 32)?;
            Some((ifindex, IpAddr::V6(Ipv6Addr::from(group))))
        })
        .collect()
}

/// Makes the kernel resolve `ip` on interface `ifindex` (an empty datagram to the discard
/// port: the ARP or Neighbour Solicitation is the point; the datagram itself is harmless).
/// The next hop must be on-link.
pub fn solicit(ifindex: u32, ip: IpAddr) {
    let sent = match ip {
        IpAddr::V4(ip) => {
            std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(&[], (ip, 9)))
        }
        IpAddr::V6(ip) => std::net::UdpSocket::bind("[::]:0").and_then(|s| {
            // A link-local next hop is reached through its interface (the scope).
            let scope = if ip.is_unicast_link_local() { ifindex } else { 0 };
            s.send_to(&[], std::net::SocketAddrV6::new(ip, 9, 0, scope))
        }),
    };
    if let Err(e) = sent {
        tracing::debug!(%ip, ifindex, error = %e, "soliciting a next hop");
    }
}

/// A raw ICMPv6 socket for the messages mgmd sends itself (Packet Too Big); the kernel
/// chooses the source address, routes the message and fills in its checksum.
pub struct Icmp6(Option<socket2::Socket>);

impl Icmp6 {
    /// Without IPv6 in the kernel (or without CAP_NET_RAW) there is none: said once, and
    /// the messages are not sent.
    pub fn open() -> Self {
        use socket2::{Domain, Protocol, Socket, Type};
        match Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)) {
            Ok(s) => Self(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "no ICMPv6 socket: sources of IPv6 packets too big will not be told");
                Self(None)
            }
        }
    }

    pub fn send(&self, to: Ipv6Addr, message: &[u8]) {
        let Some(s) = &self.0 else { return };
        let addr = std::net::SocketAddrV6::new(to, 0, 0, 0);
        if let Err(e) = s.send_to(message, &addr.into()) {
            tracing::debug!(%to, error = %e, "sending an ICMPv6 message");
        }
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_has_loopback() {
        // No privileges needed; every namespace has lo, with MTU 65536 (saturated) or more.
        let KernelEvent::Snapshot { links, .. } = Monitor::snapshot().unwrap() else {
            panic!("not a snapshot")
        };
        let lo = links.iter().find(|d| d.name == "lo").expect("lo");
        assert_eq!((lo.ifindex, lo.mac), (1, [0; 6]));
        assert!(lo.mtu >= 1500);
    }

    #[test]
    fn one_link_can_be_asked_for() {
        assert_eq!(link(1).unwrap().map(|d| d.name), Some("lo".into()));
        assert_eq!(link(9_999_999).unwrap(), None);
    }

    #[test]
    fn messages_skip_what_cannot_be_decoded() {
        assert_eq!(messages(&[]).count(), 0);
        assert_eq!(messages(&[1, 2, 3]).count(), 0);
        assert_eq!(messages(&[0xff; 64]).count(), 0);
    }

    #[test]
    fn proc_igmp_is_read_per_interface() {
        let text = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    5\tr1        :     2      V3\n\
                    \t\t\t\t010101EF     1 0:00000000\t\t0\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let got = parse_proc_igmp(text);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        if cfg!(target_endian = "little") {
            assert!(got.contains(&(5, IpAddr::V4(ip("239.1.1.1")))), "{got:?}");
        }
        assert_eq!(got.len(), 3);
        assert!(parse_proc_igmp("garbage\n\t\tzz\n").is_empty());
    }

    #[test]
    fn proc_igmp6_is_read_per_line() {
        let text = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
                    7    r1              ff3e0000000000000000000080000001     1 00000004 0\n\
                    8    r2              ff3e00000000                         1 00000004 0\n\
                    junk\n";
        let got: Vec<_> = parse_proc_igmp6(text).into_iter().collect();
        let g = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(got, vec![(1, g("ff02::1")), (7, g("ff3e::8000:1"))]);
    }

    /// ip6mr's messages are read as ipmr's are (the addresses arrive as bytes); a message
    /// whose address does not fit its family is no entry.
    #[test]
    fn ip6mr_route_messages_are_cache_entries() {
        use netlink_packet_route::route::{RouteFlags, RouteNextHop};
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::from(FAMILY_IP6MR);
        r.header.table = 253;
        let v6 = |s: &str| RouteAddress::Other(s.parse::<Ipv6Addr>().unwrap().octets().to_vec());
        let hop = |i| {
            let mut h = RouteNextHop::default();
            (h.interface_index, h.hops) = (i, 1);
            h
        };
        r.attributes = vec![
            RouteAttribute::Source(v6("2001:db8:1::1")),
            RouteAttribute::Destination(v6("ff3e::8000:1")),
            RouteAttribute::Iif(4),
            RouteAttribute::MultiPath(vec![hop(5), hop(6)]),
        ];
        let e = mfc(&r).unwrap();
        assert_eq!(
            (e.source, e.group),
            ("2001:db8:1::1".parse().unwrap(), "ff3e::8000:1".parse().unwrap())
        );
        assert_eq!(
            (e.table, e.iif, e.oifs.clone(), e.unresolved),
            (253, 4, vec![(5, 1), (6, 1)], false)
        );
        r.header.flags = RouteFlags::from_bits_retain(RTNH_F_UNRESOLVED);
        assert!(mfc(&r).unwrap().unresolved);
        r.attributes[0] = RouteAttribute::Source(RouteAddress::Other(vec![10, 1, 0, 1]));
        assert_eq!(mfc(&r), None);
        r.header.address_family = AddressFamily::Inet6;
        assert_eq!(mfc(&r), None, "a unicast route");
    }

    #[test]
    fn sockets_that_can_receive_multicast_are_found() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                   \x20 1: 00000000:1388 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n\
                   \x20 2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n\
                   \x20 3: 010101EF:1389 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n\
                   \x20 4: junk\n";
        let got: Vec<u16> = multicast_ports(udp).collect();
        if cfg!(target_endian = "little") {
            // The wildcard and 239.1.1.1, not 127.0.0.1.
            assert_eq!(got, vec![5000, 5001]);
        }
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(fmt_mac(&[0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
    }
}
