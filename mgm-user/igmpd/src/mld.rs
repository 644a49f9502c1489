// SPDX-License-Identifier: MIT OR Apache-2.0
//! MLD on the wire (RFC 3810, MLDv2; RFC 2710, MLDv1): IPv6's IGMP, carried in ICMPv6. Decodes
//! and validates what hosts and routers send into the same [`Message`]s IGMP gives, so the
//! group and interface logic runs unchanged: in IGMP's version terms, MLDv2 is version 3 and
//! MLDv1 version 2 (MLD has nothing like IGMPv1). Encodes queries. Pure, no I/O.
//!
//! Validation (RFC 3810 §5 and §6.2): hop limit 1; a Hop-by-Hop header carrying the Router
//! Alert option (value 0, MLD) before the ICMPv6 header; a link-local source, or the
//! unspecified address for reports (a host still without an address); the ICMPv6 checksum
//! over the pseudo-header.

use std::{net::Ipv6Addr, time::Duration};

use super::packet::{Message, Query, Reject, checksum, encode_v3_query, records, v3_query};

pub const QUERY: u8 = 130;
pub const V1_REPORT: u8 = 131;
pub const V1_DONE: u8 = 132;
pub const V2_REPORT: u8 = 143;

/// Next header values.
const HOP_BY_HOP: u8 = 0;
const ICMPV6: u8 = 58;
/// The Router Alert option (RFC 2711) and its MLD value.
const OPT_ROUTER_ALERT: u8 = 5;

/// The IPv6 fields the caller needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip6 {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Validates and decodes one IPv6 datagram carrying MLD.
pub fn parse(d: &[u8]) -> Result<(Ip6, Message<Ipv6Addr>), Reject> {
    let h = d.get(..40).ok_or(Reject::Malformed)?;
    let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if h[0] >> 4 != 6 || 40 + payload > d.len() {
        return Err(Reject::Malformed);
    }
    let ip = Ip6 { source: addr(&h[8..24]), destination: addr(&h[24..40]) };
    if h[7] != 1 {
        return Err(Reject::Ttl);
    }
    // Hop-by-Hop, with the Router Alert, then ICMPv6: MLD comes in no other shape.
    if h[6] != HOP_BY_HOP {
        return Err(if h[6] == ICMPV6 { Reject::NoRouterAlert } else { Reject::Malformed });
    }
    let rest = &d[40..40 + payload];
    let hbh_len = usize::from(*rest.get(1).ok_or(Reject::Malformed)?) * 8 + 8;
    let hbh = rest.get(..hbh_len).ok_or(Reject::Malformed)?;
    if hbh[0] != ICMPV6 {
        return Err(Reject::Malformed);
    }
    if !has_router_alert(&hbh[2..]) {
        return Err(Reject::NoRouterAlert);
    }
    let m = &rest[hbh_len..];
    if m.len() < 4 {
        return Err(Reject::Malformed);
    }
    if checksum(&pseudo(&ip, m)) != 0 {
        return Err(Reject::IgmpChecksum);
    }
    let msg = decode(m)?;
    let report = !matches!(msg, Message::Query(_));
    let allowed = is_link_local(&ip.source) || (report && ip.source.is_unspecified());
    if !allowed {
        return Err(Reject::NotLinkLocal);
    }
    Ok((ip, msg))
}

/// The pseudo-header (RFC 8200 §8.1) followed by the ICMPv6 message.
fn pseudo(ip: &Ip6, m: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + m.len());
    p.extend(ip.source.octets());
    p.extend(ip.destination.octets());
    p.extend((m.len() as u32).to_be_bytes());
    p.extend([0, 0, 0, ICMPV6]);
    p.extend(m);
    p
}

fn has_router_alert(mut opts: &[u8]) -> bool {
    while let Some(&kind) = opts.first() {
        if kind == 0 {
            opts = &opts[1..]; // Pad1
            continue;
        }
        let Some(&len) = opts.get(1) else { return false };
        let Some(value) = opts.get(2..2 + usize::from(len)) else { return false };
        if kind == OPT_ROUTER_ALERT && value == [0, 0] {
            return true;
        }
        opts = &opts[2 + usize::from(len)..];
    }
    false
}

fn decode(m: &[u8]) -> Result<Message<Ipv6Addr>, Reject> {
    let need = |n: usize| if m.len() < n { Err(Reject::Malformed) } else { Ok(()) };
    match m[0] {
        QUERY => {
            need(24)?;
            decode_query(m).map(Message::Query)
        }
        V1_REPORT => {
            need(24)?;
            Ok(Message::Report { version: 2, group: addr(&m[8..24]) })
        }
        V1_DONE => {
            need(24)?;
            Ok(Message::Leave { group: addr(&m[8..24]) })
        }
        V2_REPORT => {
            need(8)?;
            records(m, 16, addr).map(Message::ReportV3)
        }
        _ => Err(Reject::Unknown),
    }
}

fn decode_query(m: &[u8]) -> Result<Query<Ipv6Addr>, Reject> {
    let code = u16::from_be_bytes([m[4], m[5]]);
    let mut q = Query {
        version: 2,
        group: addr(&m[8..24]),
        max_resp: Duration::from_millis(u64::from(code)),
        suppress: false,
        qrv: 0,
        qqi: Duration::ZERO,
        sources: Vec::new(),
    };
    match m.len() {
        24 => {}
        25..=27 => return Err(Reject::Unknown),
        _ => {
            q.max_resp = Duration::from_millis(decode_resp(code));
            v3_query(&mut q, &m[24..], 16, addr)?;
        }
    }
    Ok(q)
}

/// RFC 3810 §5.1.3: milliseconds, exact below 32768, a floating-point form above.
fn decode_resp(code: u16) -> u64 {
    if code < 0x8000 {
        return u64::from(code);
    }
    let mant = u64::from(code & 0x0fff);
    let exp = u32::from((code >> 12) & 0x07);
    (mant | 0x1000) << (exp + 3)
}

/// The Maximum Response Code for `ms` milliseconds: the largest representable value not
/// above it (at most 8,387,584 ms).
pub fn encode_resp(ms: u64) -> u16 {
    if ms < 0x8000 {
        return ms as u16;
    }
    let v = ms.min(0x1fff << 10);
    let exp = (63 - v.leading_zeros()) - 12 - 3;
    let mant = (v >> (exp + 3)) & 0x0fff;
    0x8000 | ((exp as u16) << 12) | mant as u16
}

/// The ICMPv6 message of a query of `q.version` (3: MLDv2, 2: MLDv1), checksummed for the
/// datagram from `source` to `destination` (the socket adds the IPv6 header with hop limit 1
/// and the Hop-by-Hop Router Alert).
pub fn encode_query(q: &Query<Ipv6Addr>, source: Ipv6Addr, destination: Ipv6Addr) -> Vec<u8> {
    let ms = u64::try_from(q.max_resp.as_millis()).unwrap_or(u64::MAX);
    let code = if q.version >= 3 { encode_resp(ms) } else { ms.min(0xffff) as u16 };
    let mut m = vec![QUERY, 0, 0, 0];
    m.extend(code.to_be_bytes());
    m.extend([0, 0]);
    m.extend(q.group.octets());
    if q.version >= 3 {
        encode_v3_query(q, &mut m, |s, m| m.extend(s.octets()));
    }
    let c = checksum(&pseudo(&Ip6 { source, destination }, &m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The IPv6 datagram of a router's MLD message: hop limit 1, a Hop-by-Hop header with the
/// Router Alert (MLD), then the ICMPv6 message.
pub fn datagram(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
    let payload = (8 + icmp.len()) as u16;
    let mut d = vec![0x60, 0, 0, 0];
    d.extend(payload.to_be_bytes());
    d.extend([HOP_BY_HOP, 1]);
    d.extend(source.octets());
    d.extend(destination.octets());
    // Hop-by-Hop: next header ICMPv6, length 0 (8 bytes), Router Alert (MLD), PadN of 0.
    d.extend([ICMPV6, 0, OPT_ROUTER_ALERT, 2, 0, 0, 1, 0]);
    d.extend(icmp);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{GroupRecord, RecordType};
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const HOST: &str = "fe80::2";

    /// An MLDv2 report from `src` with one record per (kind, group, sources).
    fn report(src: Ipv6Addr, records: &[(u8, Ipv6Addr, &[Ipv6Addr])]) -> Vec<u8> {
        let mut m = vec![V2_REPORT, 0, 0, 0, 0, 0];
        m.extend((records.len() as u16).to_be_bytes());
        for (kind, g, s) in records {
            m.extend([*kind, 0]);
            m.extend((s.len() as u16).to_be_bytes());
            m.extend(g.octets());
            for a in *s {
                m.extend(a.octets());
            }
        }
        let dst = ip("ff02::16");
        let c = checksum(&pseudo(&Ip6 { source: src, destination: dst }, &m));
        m[2..4].copy_from_slice(&c.to_be_bytes());
        datagram(src, dst, &m)
    }

    #[test]
    fn a_v2_report_decodes_into_igmpv3_terms() {
        let g = ip("ff05::1:3");
        let d = report(ip(HOST), &[(4, g, &[]), (1, ip("ff0e::9"), &[ip("2001:db8::1")])]);
        let (h, m) = parse(&d).unwrap();
        assert_eq!(h.source, ip(HOST));
        let Message::ReportV3(r) = m else { panic!("{m:?}") };
        assert_eq!(
            r[0],
            GroupRecord { kind: RecordType::ChangeToExclude, group: g, sources: vec![] }
        );
        assert_eq!(r[1].kind, RecordType::ModeIsInclude);
        assert_eq!(r[1].sources, [ip("2001:db8::1")]);
        // From :: (a host without an address yet) too.
        assert!(parse(&report(Ipv6Addr::UNSPECIFIED, &[(4, g, &[])])).is_ok());
    }

    #[test]
    fn bad_messages_are_rejected_by_reason() {
        let g = ip("ff05::1:3");
        let good = report(ip(HOST), &[(4, g, &[])]);
        let mut bad_sum = good.clone();
        *bad_sum.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&bad_sum), Err(Reject::IgmpChecksum));
        let mut hop2 = good.clone();
        hop2[7] = 2;
        assert_eq!(parse(&hop2), Err(Reject::Ttl));
        let mut no_ra = good.clone();
        no_ra[44] = 1; // the option becomes PadN
        assert_eq!(parse(&no_ra), Err(Reject::NoRouterAlert));
        assert_eq!(parse(&report(ip("2001:db8::2"), &[(4, g, &[])])), Err(Reject::NotLinkLocal));
        assert_eq!(parse(&good[..good.len() - 8]), Err(Reject::Malformed));
        assert_eq!(parse(&good[..30]), Err(Reject::Malformed));
    }

    #[test]
    fn queries_round_trip_in_both_versions() {
        for version in [2, 3] {
            let q = Query {
                version,
                group: ip("ff05::1:3"),
                max_resp: Duration::from_millis(if version == 3 { 10_000 } else { 1_000 }),
                suppress: version == 3,
                qrv: if version == 3 { 2 } else { 0 },
                qqi: Duration::from_secs(if version == 3 { 125 } else { 0 }),
                sources: if version == 3 { vec![ip("2001:db8::1")] } else { vec![] },
            };
            let (src, dst) = (ip("fe80::1"), ip("ff05::1:3"));
            let d = datagram(src, dst, &encode_query(&q, src, dst));
            assert_eq!(parse(&d), Ok((Ip6 { source: src, destination: dst }, Message::Query(q))));
        }
    }

    #[test]
    fn the_response_code_is_rfc_3810_s() {
        assert_eq!(decode_resp(10_000), 10_000);
        for ms in [0u64, 32_767, 32_768, 100_000, 1_000_000, 8_387_584] {
            let c = encode_resp(ms);
            assert!(decode_resp(c) <= ms, "{ms}");
            assert!(decode_resp(c) * 101 / 100 + 8 >= ms, "{ms} → {}", decode_resp(c));
        }
    }

    proptest! {
        /// Any bytes: a decision, never a panic; a reader never over-reads.
        #[test]
        fn arbitrary_bytes_never_panic(d in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&d);
        }

        /// A valid report with its bytes mutated at one place is rejected or decoded, never
        /// a panic, and a changed ICMPv6 byte never passes the checksum.
        #[test]
        fn mutations_are_caught(at in 48usize..68, x in 1u8..=255) {
            let mut d = report(ip(HOST), &[(4, ip("ff05::1:3"), &[])]);
            d[at] ^= x;
            let r = parse(&d);
            prop_assert!(r.is_err(), "{r:?}");
        }
    }
}
