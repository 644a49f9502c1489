// SPDX-License-Identifier: MIT OR Apache-2.0
//! ICMPv6 Packet Too Big (RFC 4443 §3.2) for IPv6 packets too long for an outgoing link. A
//! router never fragments IPv6, and neither does the fast path: it drops the copy and tells
//! mgmd (one report per flow and incoming interface every 100 ms), and mgmd tells the
//! source the MTU, as the kernel's ip6mr does, so the source lowers its path MTU and
//! fragments itself. A budget like the kernel's own (`icmp_msgs_per_sec`,
//! `icmp_msgs_burst`) caps what all flows together make mgmd send.

use std::{net::Ipv6Addr, time::Duration};

/// IPv6's minimum MTU: the whole message fits in it (RFC 4443 §2.4 (c)).
const MIN_MTU: usize = 1280;
/// Messages per second at most, and in one burst.
const RATE: u64 = 1000;
const BURST: u64 = 50;
const TOKEN_US: u64 = 1_000_000 / RATE;

/// The Packet Too Big message for `ip` (the invoking packet, from its IPv6 header) and the
/// link's `mtu`, and where it goes (the packet's source); `None` when no error may be sent
/// about this packet (RFC 4443 §2.4 (e): a source that is no unicast address of a node).
pub fn message(ip: &[u8], mtu: u32) -> Option<(Ipv6Addr, Vec<u8>)> {
    let source: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let source = Ipv6Addr::from(source);
    if source.is_unspecified() || source.is_multicast() || source.is_loopback() {
        return None;
    }
    // The datagram, without any Ethernet padding after it, as much as fits.
    let payload = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
    let invoking = &ip[..ip.len().min(40 + payload).min(MIN_MTU - 40 - 8)];
    let mut m = Vec::with_capacity(8 + invoking.len());
    // Type 2, code 0; the checksum is the kernel's (a raw ICMPv6 socket fills it in).
    m.extend_from_slice(&[2, 0, 0, 0]);
    m.extend_from_slice(&mtu.to_be_bytes());
    m.extend_from_slice(invoking);
    Some((source, m))
}

/// A token bucket over all messages.
#[derive(Debug)]
pub struct Budget {
    /// Credit in microseconds of refill (a message costs [`TOKEN_US`]).
    credit_us: u64,
    last: Duration,
    pub sent: u64,
    pub limited: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self { credit_us: BURST * TOKEN_US, last: Duration::ZERO, sent: 0, limited: 0 }
    }
}

impl Budget {
    /// Whether one more message may go at `now` (and counts it either way).
    pub fn allow(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last).as_micros().min(u128::from(u64::MAX)) as u64;
        self.last = self.last.max(now);
        self.credit_us = self.credit_us.saturating_add(elapsed).min(BURST * TOKEN_US);
        if self.credit_us >= TOKEN_US {
            self.credit_us -= TOKEN_US;
            self.sent += 1;
            true
        } else {
            self.limited += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(source: &str, payload: usize, padding: usize) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        ip.extend_from_slice(&source.parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"ff3e::8000:1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend((0..payload + padding).map(|i| i as u8));
        ip
    }

    #[test]
    fn the_message_carries_the_mtu_and_as_much_of_the_packet_as_fits_in_1280_bytes() {
        let ip = packet("2001:db8:1::1", 1400, 0);
        let (to, m) = message(&ip, 1280).unwrap();
        assert_eq!(to, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m[..8], [2, 0, 0, 0, 0, 0, 0x05, 0x00]);
        assert_eq!(m.len() + 40, 1280, "a whole message fits the minimum MTU");
        assert_eq!(m[8..], ip[..1232]);
        // A short packet whole, without the Ethernet padding after it.
        let ip = packet("2001:db8:1::1", 20, 6);
        let (_, m) = message(&ip, 1500).unwrap();
        assert_eq!(m[8..], ip[..60]);
    }

    #[test]
    fn no_message_about_a_source_that_is_no_node() {
        for s in ["::", "ff02::1", "::1"] {
            assert_eq!(message(&packet(s, 100, 0), 1280), None, "{s}");
        }
        assert_eq!(message(&[0x60; 20], 1280), None, "cut short");
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let mut b = Budget::default();
        let t = Duration::from_secs(10);
        let burst = (0..200).filter(|_| b.allow(t)).count();
        assert_eq!(burst as u64, BURST);
        // One second later: the bucket is full again (no more than the burst).
        let later = (0..200).filter(|_| b.allow(t + Duration::from_secs(1))).count();
        assert_eq!(later as u64, BURST);
        // Steady: one message per millisecond.
        let mut steady = 0;
        for ms in 0..1000u64 {
            steady += usize::from(b.allow(t + Duration::from_millis(2000 + ms)));
        }
        assert!((950..=1050).contains(&steady), "{steady}");
        assert_eq!((b.sent + b.limited), 400 + 1000);
    }
}
