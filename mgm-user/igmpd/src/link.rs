// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP on the wire, one interface: the edge between the pure router logic and a link.
//!
//! A router that does not own the kernel's mroute socket (mgm-igmpd must not: FRR or smcroute
//! may) is not handed hosts' reports by the IP layer, which delivers a datagram for a group
//! only to a host that joined it. So reports are read below IP: a packet socket bound to the
//! interface, filtered in the kernel to IPv4 IGMP, with the interface in all-multicast mode
//! (IGMPv2 reports go to each group's address, v3 reports to 224.0.0.22). The all-multicast
//! membership belongs to the socket: the kernel drops it when the socket closes, however the
//! process ends. Queries leave through the same socket, with the IPv4 header built here
//! (TTL 1, Router Alert, precedence Internetwork Control, RFC 3376 §4).

use std::{
    io,
    mem::size_of,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

use super::packet::checksum;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// A packet socket on one interface, for IGMP.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    ifindex: u32,
}

/// cBPF: load a byte at `k` of the network header (`ldb [k]`).
const fn ldb(k: u32) -> libc::sock_filter {
    libc::sock_filter { code: 0x30, jt: 0, jf: 0, k }
}

/// cBPF: `jeq #k, jt, jf`.
const fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: 0x15, jt, jf, k }
}

/// cBPF: `ret #k` (0 drops, u32::MAX keeps all).
const fn ret(k: u32) -> libc::sock_filter {
    libc::sock_filter { code: 0x06, jt: 0, jf: 0, k }
}

impl Link {
    /// Opens the socket for IGMP in the calling thread's network namespace and puts the
    /// interface in all-multicast mode for as long as it is open.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // Only IGMP: the IP header's protocol byte.
        Self::open_with(ifindex, ETH_P_IP, &[ldb(9), jeq(2, 0, 1), ret(u32::MAX), ret(0)])
    }

    /// The same for MLD: IPv6 whose first header is Hop-by-Hop (where MLD's Router Alert
    /// is), followed by ICMPv6 of an MLD type (RFC 3810 puts nothing else between them).
    pub fn open_mld(ifindex: u32) -> io::Result<Self> {
        let filter = [
            ldb(6),         // next header
            jeq(0, 0, 8),   // Hop-by-Hop, else drop
            ldb(40),        // its next header
            jeq(58, 0, 6),  // ICMPv6, else drop
            ldb(48),        // ICMPv6 type (a Hop-by-Hop header of 8 bytes)
            jeq(130, 3, 0), // query
            jeq(131, 2, 0), // v1 report
            jeq(132, 1, 0), // v1 done
            jeq(143, 0, 1), // v2 report
            ret(u32::MAX),
            ret(0),
        ];
        Self::open_with(ifindex, ETH_P_IPV6, &filter)
    }

    fn open_with(ifindex: u32, proto: u16, filter: &[libc::sock_filter]) -> io::Result<Self> {
        // SAFETY: plain socket call; the fd is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                i32::from(proto.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let link = Self { fd: unsafe { OwnedFd::from_raw_fd(fd) }, ifindex };
        // The filter goes on before the socket is bound, so nothing else is ever queued.
        let prog =
            libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
        link.set(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        // SAFETY: sockaddr_ll is plain data, valid all zero.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                link.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let mr = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_ALLMULTI as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        link.set(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)?;
        Ok(link)
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn set<T>(&self, level: i32, opt: i32, v: &T) -> io::Result<()> {
        // SAFETY: `v` is a live value of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (v as *const T).cast(),
                size_of::<T>() as u32,
            )
        };
        if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Waits at most `timeout` for a datagram (an IPv4 datagram carrying IGMP, received on
    /// this interface, not sent by this host); its length in `buf`.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.recv(buf)
    }

    /// One datagram if one is queued (`WouldBlock` otherwise): for an async reactor.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Our own queries, looped back to taps, are not reports.
            match recv_frame(self.fd.as_fd(), buf)? {
                (_, true) => continue,
                (n, false) => return Ok(n),
            }
        }
    }

    /// Sends the IGMP message `igmp` from `source` to `to` (a multicast address), as a
    /// router must: TTL 1, Router Alert, precedence Internetwork Control.
    pub fn send(&self, source: Ipv4Addr, to: Ipv4Addr, igmp: &[u8]) -> io::Result<()> {
        let o = to.octets();
        self.send_datagram(
            ETH_P_IP,
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]],
            &datagram(source, to, igmp),
        )
    }

    /// Sends the MLD message `icmp` (checksummed for this source and destination) from
    /// `source` to `to`: hop limit 1, the Hop-by-Hop Router Alert, to 33:33 and the group's
    /// low 32 bits.
    pub fn send_mld(&self, source: Ipv6Addr, to: Ipv6Addr, icmp: &[u8]) -> io::Result<()> {
        let o = to.octets();
        let mac = [0x33, 0x33, o[12], o[13], o[14], o[15]];
        self.send_datagram(ETH_P_IPV6, mac, &super::mld::datagram(source, to, icmp))
    }

    fn send_datagram(&self, proto: u16, mac: [u8; 6], d: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data, valid all zero.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
        // SAFETY: valid buffer and address of the sizes given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                d.as_ptr().cast(),
                d.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One frame from a packet socket: its length in `buf`, and whether this host sent it (a
/// copy of an outgoing frame, `PACKET_OUTGOING`).
pub fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    // SAFETY: sockaddr_ll is plain data, valid all zero.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as u32;
    // SAFETY: valid buffer and address storage of the sizes given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, from.sll_pkttype == libc::PACKET_OUTGOING))
}

/// The IPv4 datagram of a router's IGMP message.
pub fn datagram(source: Ipv4Addr, to: Ipv4Addr, igmp: &[u8]) -> Vec<u8> {
    const IHL: usize = 24;
    let len = (IHL + igmp.len()) as u16;
    let mut d = Vec::with_capacity(usize::from(len));
    d.extend([0x46, 0xc0]);
    d.extend(len.to_be_bytes());
    d.extend([0, 0, 0, 0, 1, 2, 0, 0]);
    d.extend(source.octets());
    d.extend(to.octets());
    d.extend([148, 4, 0, 0]); // Router Alert
    let c = checksum(&d);
    d[10..12].copy_from_slice(&c.to_be_bytes());
    d.extend(igmp);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Message, Query, encode_query, parse};

    #[test]
    fn a_sent_query_is_one_a_router_would_accept() {
        let q = Query {
            version: 3,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp: Duration::from_secs(10),
            suppress: false,
            qrv: 2,
            qqi: Duration::from_secs(125),
            sources: vec![],
        };
        let d =
            datagram(Ipv4Addr::new(10, 2, 1, 1), Ipv4Addr::new(224, 0, 0, 1), &encode_query(&q));
        let (ip, m) = parse(&d).unwrap();
        assert_eq!(ip.source, Ipv4Addr::new(10, 2, 1, 1));
        assert_eq!(m, Message::Query(q));
    }
}
