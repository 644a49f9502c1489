// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames: a packet socket to inject and capture, builders for IPv4/IPv6 UDP frames, the checks of
//! a forwarded copy, numbered flows.

use super::*;

/// An AF_PACKET socket bound to one interface of one namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

const ETH_P_ALL: u16 = 0x0003;

impl PacketSocket {
    pub fn open(ns: &Netns, ifname: &str) -> anyhow::Result<Self> {
        let ifname = ifname.to_owned();
        ns.enter(move || {
            let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())?;
            // SAFETY: plain socket(2); the fd is owned right away.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, ETH_P_ALL.to_be() as i32) };
            ensure!(raw >= 0, "socket(AF_PACKET): {}", std::io::Error::last_os_error());
            // SAFETY: raw is a fresh, valid fd.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: zeroed sockaddr_ll is valid; the fields we need are set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: sll is a valid sockaddr_ll of the given size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            ensure!(rc == 0, "bind(AF_PACKET, {ifname}): {}", std::io::Error::last_os_error());
            // Bursts of frames must not overflow the capture before the test drains it.
            set_rcvbuf(&fd, 8 << 20)?;
            Ok(Self { fd })
        })
    }

    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        // SAFETY: frame is a valid buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        ensure!(n == frame.len() as isize, "send: {}", std::io::Error::last_os_error());
        Ok(())
    }

    /// Receives incoming frames (not our own outgoing ones) until `idle` passes without one.
    pub fn drain(&self, idle: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let mut pfd =
                libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, idle.as_millis() as i32) };
            ensure!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
            if rc == 0 {
                return Ok(out);
            }
            let (n, outgoing) = mgm_igmpd::link::recv_frame(self.fd.as_fd(), &mut buf)?;
            if !outgoing {
                out.push(buf[..n].to_vec());
            }
        }
    }
}

impl std::os::fd::AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sets an int socket option (`what` names it in the error).
pub fn setsockopt_int(
    s: &impl std::os::fd::AsRawFd,
    level: i32,
    name: i32,
    value: i32,
    what: &str,
) -> anyhow::Result<()> {
    // SAFETY: setsockopt with a valid fd and a pointer to an int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as u32,
        )
    };
    ensure!(rc == 0, "{what}: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Sets IP_RECVERR (IPV6_RECVERR): a datagram the sender's device drops fails the send
/// with ENOBUFS instead of vanishing.
pub fn set_recverr(s: &impl std::os::fd::AsRawFd, family: Family) -> anyhow::Result<()> {
    match family {
        Family::V4 => setsockopt_int(s, libc::IPPROTO_IP, libc::IP_RECVERR, 1, "IP_RECVERR"),
        Family::V6 => setsockopt_int(s, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1, "IPV6_RECVERR"),
    }
}

/// Sets SO_RCVBUFFORCE (root may exceed net.core.rmem_max).
pub fn set_rcvbuf(s: &impl std::os::fd::AsRawFd, bytes: i32) -> anyhow::Result<()> {
    setsockopt_int(s, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes, "SO_RCVBUFFORCE")
}

/// The multicast MAC for an IPv4 group (RFC 1112: 01:00:5e + low 23 bits).
pub fn group_mac(group: [u8; 4]) -> [u8; 6] {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// An Ethernet/IPv4/UDP frame carrying `payload`.
pub fn udp_frame(
    src_mac: [u8; 6],
    source: [u8; 4],
    group: [u8; 4],
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, group_mac(group))
        .ipv4(source, group, ttl)
        .udp(40000, 5000);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).expect("writing to a Vec cannot fail");
    out
}

/// Recomputes the IPv4 header checksum of a frame in place (after a test edited the header).
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let mut sum: u32 = 0;
    for w in frame[14..14 + ihl].chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// IPv6 multicast's destination MAC: 33:33 and the group's low 32 bits.
pub fn group_mac6(g: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, g[12], g[13], g[14], g[15]]
}

/// An Ethernet/IPv6/UDP frame from `src_mac` and `source` to `group`.
pub fn udp6_frame(
    src_mac: [u8; 6],
    source: [u8; 16],
    group: [u8; 16],
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, group_mac6(&group))
        .ipv6(source, group, hop_limit)
        .udp(40000, 5000);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).expect("writing to a Vec cannot fail");
    out
}

/// One forwarded copy against the frame that was sent, in either family: the destination
/// MAC is the group's (01:00:5e or 33:33 and the group's low bits), the source MAC the
/// router's outgoing port, the TTL or hop limit one less (IPv4: the header checksum valid),
/// addresses and length unchanged, the UDP payload intact and its checksum valid.
pub fn assert_forwarded_copy(sent: &[u8], got: &[u8], out_mac: [u8; 6]) {
    use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
    let s = SlicedPacket::from_ethernet(sent).expect("sent frame parses");
    let g = SlicedPacket::from_ethernet(got).expect("forwarded frame parses");
    let Some(LinkSlice::Ethernet2(ge)) = &g.link else {
        panic!("forwarded frame is not Ethernet: {got:02x?}");
    };
    assert_eq!(ge.source(), out_mac, "source MAC is the router's outgoing port");
    let (Some(TransportSlice::Udp(gu)), Some(TransportSlice::Udp(su))) =
        (&g.transport, &s.transport)
    else {
        panic!("not UDP: {got:02x?}");
    };
    assert_eq!(gu.payload(), su.payload(), "payload intact");
    let udp = gu.to_header();
    let (group_mac, checksum) = match (&g.net, &s.net) {
        (Some(NetSlice::Ipv4(gi)), Some(NetSlice::Ipv4(si))) => {
            let (gh, sh) = (gi.header().to_header(), si.header().to_header());
            assert_eq!(gh.time_to_live, sh.time_to_live - 1, "TTL decremented by exactly one");
            assert_eq!(gh.header_checksum, gh.calc_header_checksum(), "IPv4 header checksum valid");
            assert_eq!((gh.source, gh.destination), (sh.source, sh.destination));
            (group_mac(gh.destination), udp.calc_checksum_ipv4(&gh, gu.payload()).unwrap())
        }
        (Some(NetSlice::Ipv6(gi)), Some(NetSlice::Ipv6(si))) => {
            let (gh, sh) = (gi.header().to_header(), si.header().to_header());
            assert_eq!(gh.hop_limit, sh.hop_limit - 1, "hop limit decremented by exactly one");
            assert_eq!((gh.source, gh.destination), (sh.source, sh.destination));
            assert_eq!(gh.payload_length, sh.payload_length);
            (group_mac6(&gh.destination), udp.calc_checksum_ipv6(&gh, gu.payload()).unwrap())
        }
        _ => panic!("forwarded frame is not of the sent frame's family: {got:02x?}"),
    };
    assert_eq!(ge.destination(), group_mac, "destination MAC is the group's");
    assert_eq!(udp.checksum, checksum, "UDP checksum valid");
}

/// Frames among `frames` whose UDP payload starts with `magic`.
pub fn with_magic<'a>(frames: &'a [Vec<u8>], magic: &[u8]) -> Vec<&'a Vec<u8>> {
    frames.iter().filter(|f| f.windows(magic.len()).any(|w| w == magic)).collect()
}

/// A unique payload marker for one test.
pub fn magic(tag: &str) -> Vec<u8> {
    format!("MGMTEST-{}-", unique(tag)).into_bytes()
}

/// A paced flow of `seq:<n>` datagrams from the sender (a real UDP socket) to [`GROUP`]:5000,
/// and a thread per receiver recording every number that arrives.
pub struct SeqFlow {
    last_sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop_tx: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop_rx: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: std::thread::JoinHandle<u64>,
    receivers: Vec<std::thread::JoinHandle<std::collections::BTreeSet<u64>>>,
    /// Numbers that arrived more than once at a receiver.
    duplicates: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Sends the sender's device refused (the router's receive ring was full) and made again.
    resent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SeqFlow {
    /// Starts receivers `0..receivers` (UDP sockets joined on eth0) and the sender at `pps`.
    /// Needs [`Topology::add_addresses`].
    pub fn start(t: &Topology, receivers: usize, pps: u64) -> anyhow::Result<Self> {
        Self::start_for(t, Family::V4, receivers, pps)
    }

    /// The same in `family` (addresses from [`Topology::add_addresses_for`]).
    pub fn start_for(
        t: &Topology,
        family: Family,
        receivers: usize,
        pps: u64,
    ) -> anyhow::Result<Self> {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        };
        let stop_rx = Arc::new(AtomicBool::new(false));
        let duplicates = Arc::new(AtomicU64::new(0));
        let mut rx = Vec::new();
        for i in 0..receivers {
            let s = t.udp_receiver_for(family, i, 5000)?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            let stop = stop_rx.clone();
            let dups = duplicates.clone();
            rx.push(std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                let mut buf = [0u8; 256];
                loop {
                    match s.recv(&mut buf) {
                        Ok(n) => {
                            if let Some(v) = std::str::from_utf8(&buf[..n])
                                .ok()
                                .and_then(|t| t.strip_prefix("seq:"))
                                .and_then(|t| t.parse().ok())
                                && !seen.insert(v)
                            {
                                dups.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => return seen,
                        Err(_) => {}
                    }
                }
            }));
        }
        let tx = t.udp_sender_for(family, 8)?;
        set_recverr(&tx, family)?;
        let group = family.group();
        let last_sent = Arc::new(AtomicU64::new(0));
        let stop_tx = Arc::new(AtomicBool::new(false));
        let resent = Arc::new(AtomicU64::new(0));
        let sender = {
            let (last_sent, stop, resent) = (last_sent.clone(), stop_tx.clone(), resent.clone());
            std::thread::spawn(move || {
                let gap = Duration::from_nanos(1_000_000_000 / pps);
                let start = Instant::now();
                let mut seq = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    // Published before the send: a number read after some event bounds
                    // everything sent before that event.
                    last_sent.store(seq, Ordering::SeqCst);
                    let datagram = format!("seq:{seq}");
                    // A number the router never took in is not one it could lose: when the
                    // router's receive ring is full (an emulated guest stalls), the sender's
                    // veth drops the datagram and says so (ENOBUFS, with IP_RECVERR); it is
                    // sent again, so every number counted as sent entered the router.
                    while let Err(e) = tx.send_to(datagram.as_bytes(), (group, 5000)) {
                        if e.raw_os_error() != Some(libc::ENOBUFS) || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        resent.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    seq += 1;
                    let next = start + gap * seq as u32;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                seq - 1
            })
        };
        Ok(Self { last_sent, stop_tx, stop_rx, sender, receivers: rx, duplicates, resent })
    }

    /// The highest number sent so far (or being sent).
    pub fn last_sent(&self) -> u64 {
        self.last_sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts datagrams that arrive at a receiver that already had their number (read it
    /// after [`SeqFlow::finish`] for the whole flow).
    pub fn duplicates(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.duplicates.clone()
    }

    /// How many sends so far the sender's device refused and the sender made again.
    pub fn resent(&self) -> u64 {
        self.resent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the sender, lets the last packets arrive, and returns the last number sent and
    /// what each receiver saw.
    pub fn finish(self) -> (u64, Vec<std::collections::BTreeSet<u64>>) {
        use std::sync::atomic::Ordering;
        self.stop_tx.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender thread");
        std::thread::sleep(Duration::from_millis(200));
        self.stop_rx.store(true, Ordering::Relaxed);
        (sent, self.receivers.into_iter().map(|r| r.join().expect("receiver thread")).collect())
    }
}

/// Numbers missing between the first one `seen` and `last`.
pub fn gaps(seen: &std::collections::BTreeSet<u64>, last: u64) -> Vec<u64> {
    let Some(&first) = seen.first() else { return (1..=last).collect() };
    gaps_between(seen, first, last)
}

/// Numbers in `from..=to` missing from `seen`.
pub fn gaps_between(seen: &std::collections::BTreeSet<u64>, from: u64, to: u64) -> Vec<u64> {
    (from..=to).filter(|s| !seen.contains(s)).collect()
}

/// An Ethernet frame carrying the IPv4 datagram `ip` to the multicast address in it.
pub fn ip_frame(src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend(group_mac([ip[16], ip[17], ip[18], ip[19]]));
    f.extend(src_mac);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f
}

/// Whether `m` is a v3 report (IGMPv3 or MLDv2) with a record of `kind` for `group`.
pub fn has_record<A: PartialEq>(
    m: &mgm_igmpd::packet::Message<A>,
    group: A,
    kind: mgm_igmpd::packet::RecordType,
) -> bool {
    use mgm_igmpd::packet::Message;
    matches!(m, Message::ReportV3(r) if r.iter().any(|r| r.group == group && r.kind == kind))
}
