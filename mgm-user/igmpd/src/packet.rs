// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP messages (v1, RFC 1112; v2, RFC 2236; v3, RFC 3376) as a router receives and sends
//! them: the IP datagram a raw IGMP socket reads is validated and decoded, queries are
//! encoded. Pure: no sockets, no clock.
//!
//! What a router accepts (anything else is rejected with the reason, which is counted):
//! - a well-formed IPv4 header with a valid checksum, TTL 1, and an IGMP message that fits
//!   its total length with a valid IGMP checksum;
//! - for IGMPv3 messages (queries and reports), the Router Alert option (RFC 3376 §4: every
//!   v3 message carries it). v1 and v2 messages are accepted without it: v1 hosts never send
//!   it, and RFC 2236 routers accept messages from them;
//! - whether the source is on the link (or 0.0.0.0 for a v3 report, RFC 3376 §4.2.13) is for
//!   the caller, which knows the link's subnets.

use std::{net::Ipv4Addr, time::Duration};

pub const MEMBERSHIP_QUERY: u8 = 0x11;
pub const V1_REPORT: u8 = 0x12;
pub const V2_REPORT: u8 = 0x16;
pub const V2_LEAVE: u8 = 0x17;
pub const V3_REPORT: u8 = 0x22;
/// IP option: Router Alert (RFC 2113), four bytes, value 0.
const IPOPT_RA: u8 = 148;

/// A decoded IGMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<A = Ipv4Addr> {
    Query(Query<A>),
    /// A v1 or v2 membership report (`version` 1 or 2).
    Report {
        version: u8,
        group: A,
    },
    /// A v2 leave (sent to 224.0.0.2 or the group).
    Leave {
        group: A,
    },
    /// A v3 report: its group records.
    ReportV3(Vec<GroupRecord<A>>),
}

/// A membership query of any version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query<A = Ipv4Addr> {
    /// 1, 2 or 3 (by length and maximum response code, RFC 3376 §7.1).
    pub version: u8,
    /// 0.0.0.0 for a general query.
    pub group: A,
    /// How long hosts may wait before answering (v1: 10 s, fixed).
    pub max_resp: Duration,
    /// v3 only: suppress router-side processing (S flag), the querier's robustness variable
    /// and query interval (0 when absent), and the sources of a group-and-source query.
    pub suppress: bool,
    pub qrv: u8,
    pub qqi: Duration,
    pub sources: Vec<A>,
}

/// One group record of a v3 report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord<A = Ipv4Addr> {
    pub kind: RecordType,
    pub group: A,
    pub sources: Vec<A>,
}

/// RFC 3376 §4.2.12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    ModeIsInclude = 1,
    ModeIsExclude = 2,
    ChangeToInclude = 3,
    ChangeToExclude = 4,
    AllowNewSources = 5,
    BlockOldSources = 6,
}

/// Why a datagram was not taken (each is counted by the daemon).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reject {
    /// Shorter than its headers say, or not IPv4, or not IGMP.
    Malformed,
    IpChecksum,
    IgmpChecksum,
    /// TTL other than 1.
    Ttl,
    /// A v3 message without the Router Alert option.
    NoRouterAlert,
    /// A type or length the router does not handle (a v3 report's records not fitting it).
    Unknown,
    /// MLD from a source that is not link-local (RFC 3810 §5.1.14; reports may come from ::).
    NotLinkLocal,
    /// A v3 report naming as a source an address no host sends from (multicast,
    /// unspecified, broadcast, loopback): the whole report is refused.
    InvalidSource,
}

/// The IP fields the caller needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
}

/// Validates and decodes one IPv4 datagram carrying IGMP (what a raw IGMP socket reads).
pub fn parse(datagram: &[u8]) -> Result<(Ip, Message), Reject> {
    let h = datagram.get(..20).ok_or(Reject::Malformed)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let tot_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if h[0] >> 4 != 4 || ihl < 20 || tot_len < ihl || tot_len > datagram.len() || h[9] != 2 {
        return Err(Reject::Malformed);
    }
    if checksum(&datagram[..ihl]) != 0 {
        return Err(Reject::IpChecksum);
    }
    if h[8] != 1 {
        return Err(Reject::Ttl);
    }
    let ip = Ip {
        source: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        destination: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
    };
    let router_alert = has_router_alert(&datagram[20..ihl]);
    let igmp = &datagram[ihl..tot_len];
    if igmp.len() < 8 {
        return Err(Reject::Malformed);
    }
    if checksum(igmp) != 0 {
        return Err(Reject::IgmpChecksum);
    }
    let msg = decode(igmp)?;
    let v3 = matches!(&msg, Message::ReportV3(_) | Message::Query(Query { version: 3, .. }));
    if v3 && !router_alert {
        return Err(Reject::NoRouterAlert);
    }
    Ok((ip, msg))
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Decodes an IGMP message whose checksum was checked.
fn decode(m: &[u8]) -> Result<Message, Reject> {
    let group = addr(&m[4..8]);
    match m[0] {
        MEMBERSHIP_QUERY => decode_query(m, group).map(Message::Query),
        V1_REPORT => Ok(Message::Report { version: 1, group }),
        V2_REPORT => Ok(Message::Report { version: 2, group }),
        V2_LEAVE => Ok(Message::Leave { group }),
        V3_REPORT => decode_report(m).map(Message::ReportV3),
        _ => Err(Reject::Unknown),
    }
}

fn decode_query(m: &[u8], group: Ipv4Addr) -> Result<Query, Reject> {
    let mut q = Query {
        version: 2,
        group,
        // v2: tenths of a second, linear (RFC 2236 §2.2).
        max_resp: Duration::from_millis(u64::from(m[1]) * 100),
        suppress: false,
        qrv: 0,
        qqi: Duration::ZERO,
        sources: Vec::new(),
    };
    match m.len() {
        8 if m[1] == 0 => {
            q.version = 1;
            q.max_resp = Duration::from_secs(10);
        }
        8 => {}
        9..=11 => return Err(Reject::Unknown),
        _ => {
            q.max_resp = decode_time(m[1]);
            v3_query(&mut q, &m[8..], 4, addr)?;
        }
    }
    Ok(q)
}

/// The part a v3 query adds (IGMPv3 from byte 8, MLDv2 from byte 24, `width` 4 or 16): the
/// S flag and QRV, QQIC (seconds, the same 8-bit code in both), the source count and the
/// sources. The caller decodes the Max Resp Code, whose form differs.
pub(crate) fn v3_query<A>(
    q: &mut Query<A>,
    tail: &[u8],
    width: usize,
    addr: fn(&[u8]) -> A,
) -> Result<(), Reject> {
    let head = tail.get(..4).ok_or(Reject::Unknown)?;
    let n = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let sources = tail.get(4..4 + width * n).ok_or(Reject::Unknown)?;
    q.version = 3;
    q.suppress = head[0] & 0x08 != 0;
    q.qrv = head[0] & 0x07;
    q.qqi = decode_time(head[1]) * 10;
    q.sources = sources.chunks_exact(width).map(addr).collect();
    Ok(())
}

/// The encoder's side of [`v3_query`]: the S flag and QRV, QQIC, the source count and the
/// sources (each written by `put`), appended to `m`.
pub(crate) fn encode_v3_query<A>(q: &Query<A>, m: &mut Vec<u8>, put: fn(&A, &mut Vec<u8>)) {
    m.push(u8::from(q.suppress) << 3 | q.qrv.min(7));
    m.push(encode_time(u32::try_from(q.qqi.as_secs()).unwrap_or(u32::MAX)));
    let n = q.sources.len().min(usize::from(u16::MAX));
    m.extend((n as u16).to_be_bytes());
    for s in &q.sources[..n] {
        put(s, m);
    }
}

fn decode_report(m: &[u8]) -> Result<Vec<GroupRecord>, Reject> {
    records(m, 4, addr)
}

/// The group records of a v3 report (IGMPv3, or MLDv2 with `width` 16): the count at bytes
/// 6..8, then each record's type, auxiliary length, source count, group and sources.
pub(crate) fn records<A: super::addr::Addr>(
    m: &[u8],
    width: usize,
    addr: fn(&[u8]) -> A,
) -> Result<Vec<GroupRecord<A>>, Reject> {
    let n = usize::from(u16::from_be_bytes([m[6], m[7]]));
    let mut rest = &m[8..];
    let mut records = Vec::with_capacity(n.min(rest.len() / (4 + width)));
    for _ in 0..n {
        let (head, tail) = rest.split_at_checked(4 + width).ok_or(Reject::Unknown)?;
        let aux = usize::from(head[1]) * 4;
        let count = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let body = tail.get(..width * count + aux).ok_or(Reject::Unknown)?;
        rest = &tail[width * count + aux..];
        let kind = match head[0] {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            // RFC 3376 §4.2.12, RFC 3810 §5.2.12: records of unknown types are ignored.
            _ => continue,
        };
        let sources: Vec<A> = body[..width * count].chunks_exact(width).map(addr).collect();
        if !sources.iter().all(A::is_valid_source) {
            return Err(Reject::InvalidSource);
        }
        records.push(GroupRecord { kind, group: addr(&head[4..]), sources });
    }
    Ok(records)
}

fn has_router_alert(mut options: &[u8]) -> bool {
    while let Some(&kind) = options.first() {
        match kind {
            0 => return false,
            1 => options = &options[1..],
            _ => {
                let Some(&len) = options.get(1) else { return false };
                if kind == IPOPT_RA && len == 4 {
                    return true;
                }
                if len < 2 || usize::from(len) > options.len() {
                    return false;
                }
                options = &options[usize::from(len)..];
            }
        }
    }
    false
}

/// RFC 3376 §4.1.1 (Max Resp Code) and §4.1.7 (QQIC): tenths of a second (the caller scales
/// QQIC's seconds), exact below 128, a floating-point form above.
pub(crate) fn decode_time(code: u8) -> Duration {
    let v = if code < 128 {
        u64::from(code)
    } else {
        let mant = u64::from(code & 0x0f);
        let exp = u32::from((code >> 4) & 0x07);
        (mant | 0x10) << (exp + 3)
    };
    Duration::from_millis(v * 100)
}

/// The code for `value` units (tenths of a second for Max Resp Code, seconds for QQIC): the
/// largest representable value not above it (at most 31,744).
pub fn encode_time(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    let value = value.min(31_744);
    // value = (mant | 0x10) << (exp + 3), with mant < 16 and exp < 8.
    let exp = (31 - value.leading_zeros()) - 4 - 3;
    let mant = (value >> (exp + 3)) & 0x0f;
    0x80 | ((exp as u8) << 4) | mant as u8
}

/// Encodes a query of `version` (2 or 3; v1 routers' queries are v2 queries with code 0 only
/// on v1 links, which the caller asks for with `version` 1). The IGMP message only: the
/// socket adds the IP header (TTL 1, Router Alert).
pub fn encode_query(q: &Query) -> Vec<u8> {
    let mut m = vec![MEMBERSHIP_QUERY, 0, 0, 0];
    if q.version >= 2 {
        let tenths = u32::try_from(q.max_resp.as_millis() / 100).unwrap_or(u32::MAX);
        m[1] = if q.version == 2 { tenths.min(255) as u8 } else { encode_time(tenths) };
    }
    m.extend(q.group.octets());
    if q.version == 3 {
        encode_v3_query(q, &mut m, |s, m| m.extend(s.octets()));
    }
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The Internet checksum (RFC 1071) of `b`: 0 over data that includes a valid checksum.
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 datagram around `igmp`, with TTL `ttl` and the Router Alert option if `ra`.
    fn datagram(igmp: &[u8], ttl: u8, ra: bool) -> Vec<u8> {
        let ihl = if ra { 24 } else { 20 };
        let mut d = vec![0x40 | (ihl / 4) as u8, 0xc0, 0, 0, 0, 0, 0, 0, ttl, 2, 0, 0];
        d.extend([10, 0, 0, 2, 224, 0, 0, 22]);
        if ra {
            d.extend([IPOPT_RA, 4, 0, 0]);
        }
        d.extend(igmp);
        let len = d.len() as u16;
        d[2..4].copy_from_slice(&len.to_be_bytes());
        let c = checksum(&d[..ihl]);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        d
    }

    fn with_checksum(mut m: Vec<u8>) -> Vec<u8> {
        m[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    fn v3_report() -> Vec<u8> {
        let mut m = vec![V3_REPORT, 0, 0, 0, 0, 0, 0, 3];
        // INCLUDE {10.1.0.1} for 239.1.1.1, with one word of auxiliary data.
        m.extend([1, 1, 0, 1, 239, 1, 1, 1, 10, 1, 0, 1, 9, 9, 9, 9]);
        // A record of an unknown type: skipped.
        m.extend([9, 0, 0, 0, 239, 1, 1, 2]);
        // TO_EX {} for 239.1.1.3.
        m.extend([4, 0, 0, 0, 239, 1, 1, 3]);
        with_checksum(m)
    }

    #[test]
    fn reports_and_leaves_of_every_version_are_decoded() {
        let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
        let v2 = with_checksum(vec![V2_REPORT, 0, 0, 0, 239, 1, 1, 1]);
        assert_eq!(
            parse(&datagram(&v2, 1, true)).unwrap().1,
            Message::Report { version: 2, group: g }
        );
        let v1 = with_checksum(vec![V1_REPORT, 0, 0, 0, 239, 1, 1, 1]);
        // v1 hosts send no Router Alert.
        assert_eq!(
            parse(&datagram(&v1, 1, false)).unwrap().1,
            Message::Report { version: 1, group: g }
        );
        let leave = with_checksum(vec![V2_LEAVE, 0, 0, 0, 239, 1, 1, 1]);
        assert_eq!(parse(&datagram(&leave, 1, true)).unwrap().1, Message::Leave { group: g });
        let (ip, m) = parse(&datagram(&v3_report(), 1, true)).unwrap();
        assert_eq!(ip.source, Ipv4Addr::new(10, 0, 0, 2));
        let Message::ReportV3(r) = m else { panic!("{m:?}") };
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind, r[0].group, r[0].sources.clone()),
            (RecordType::ModeIsInclude, g, vec!["10.1.0.1".parse().unwrap()])
        );
        assert_eq!((r[1].kind, r[1].sources.len()), (RecordType::ChangeToExclude, 0));
    }

    #[test]
    fn what_a_router_must_not_take_is_rejected_with_its_reason() {
        let v3 = v3_report();
        assert_eq!(parse(&datagram(&v3, 2, true)), Err(Reject::Ttl));
        assert_eq!(parse(&datagram(&v3, 1, false)), Err(Reject::NoRouterAlert));
        let mut bad = datagram(&v3, 1, true);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(parse(&bad), Err(Reject::IgmpChecksum));
        let mut bad = datagram(&v3, 1, true);
        bad[8] = 1;
        bad[11] ^= 1;
        assert_eq!(parse(&bad), Err(Reject::IpChecksum));
        // A record count beyond the message.
        let mut m = v3.clone();
        m[7] = 9;
        assert_eq!(parse(&datagram(&with_checksum(m), 1, true)), Err(Reject::Unknown));
        let unknown = with_checksum(vec![0x13, 0, 0, 0, 239, 1, 1, 1]);
        assert_eq!(parse(&datagram(&unknown, 1, true)), Err(Reject::Unknown));
        // Truncated anywhere: never a panic.
        let d = datagram(&v3, 1, true);
        for n in 0..d.len() {
            assert!(parse(&d[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn queries_round_trip_in_every_version() {
        let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
        let q = Query {
            version: 3,
            group: g,
            max_resp: Duration::from_secs(10),
            suppress: true,
            qrv: 2,
            qqi: Duration::from_secs(130),
            sources: vec!["10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap()],
        };
        let (_, m) = parse(&datagram(&encode_query(&q), 1, true)).unwrap();
        // 130 s is not representable: the code rounds down to 128 s.
        assert_eq!(m, Message::Query(Query { qqi: Duration::from_secs(128), ..q.clone() }));
        let v2 = Query {
            version: 2,
            suppress: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: vec![],
            ..q.clone()
        };
        assert_eq!(
            parse(&datagram(&encode_query(&v2), 1, false)).unwrap().1,
            Message::Query(v2.clone())
        );
        let v1 = Query {
            version: 1,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp: Duration::from_secs(10),
            ..v2.clone()
        };
        assert_eq!(parse(&datagram(&encode_query(&v1), 1, false)).unwrap().1, Message::Query(v1));
    }

    #[test]
    fn the_floating_point_time_code_is_the_rfcs() {
        for v in [0, 1, 127] {
            assert_eq!(decode_time(encode_time(v)), Duration::from_millis(u64::from(v) * 100));
        }
        // Every code decodes to a value that encodes back to it.
        for code in 0..=255u8 {
            let tenths = (decode_time(code).as_millis() / 100) as u32;
            assert_eq!(encode_time(tenths), code, "{tenths}");
        }
        // Between two codes: the lower one; beyond the largest: the largest.
        assert_eq!(decode_time(encode_time(129)), Duration::from_millis(12_800));
        assert_eq!(encode_time(100_000), 0xff);
    }

    proptest::proptest! {
        /// Any bytes, raw or inside a valid IP header with a fixed-up IGMP checksum: an
        /// answer, never a panic.
        #[test]
        fn any_input_is_decoded_or_rejected(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = parse(&bytes);
            if bytes.len() >= 8 {
                let _ = parse(&datagram(&with_checksum(bytes), 1, true));
            }
        }
    }
}
