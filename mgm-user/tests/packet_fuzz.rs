// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet fuzzing of every forwarding path through BPF_PROG_TEST_RUN: the XDP ingress
//! program (broadcast copies, and the single copy it sends itself) and the TC program
//! (copies to a next hop). Thousands of
//! generated frames (valid ones, truncated ones, IP options good and bad, Router Alert,
//! IGMP and PIM, fragments, bad checksums, VLAN tags, ARP, other protocols, TTL
//! 0/1/255, unicast addresses and MACs, link-local groups, padding and junk after the
//! datagram, up to 3 KB; and IPv6 frames with chains of extension headers, Router Alert,
//! MLD, PIM, scopes, hop limits and lengths good and bad), each run through the loaded
//! program and compared with a model written from the specification of the fast path
//! (README: "what the fast path does with each packet"; docs/protocol.md for IPv6): nothing
//! malformed or control is forwarded, and a forwarded packet is a router's copy: the
//! datagram alone, TTL (hop limit) - 1, IPv4's checksum valid, addressed to the group's MAC
//! (or the neighbour's), nothing else changed.
//! Needs root.

use mgm::manager::Sg;
use mgm::{
    dataplane::{BpfFastPath, LoadOptions},
    fastpath::{Mirror, Oif},
};
use mgm_common::{LEASE_STATIC, PortValue};
use mgm_tests::{Netns, require_root, veth};
use proptest::{
    prelude::*,
    strategy::ValueTree as _,
    test_runner::{Config, TestRunner},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const SRC: [u8; 4] = [10, 1, 0, 1];
const GRP: [u8; 4] = [239, 1, 1, 1];
/// 2001:db8:1::1 and ff3e::8000:1.
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const GRP6: [u8; 16] = [0xff, 0x3e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1];
const FRAMES: u32 = 4_500;

/// What the specification says becomes of `f` arriving on the MFE's incoming interface
/// (`on_iif`) or another managed one: the kernel gets it (`XDP_PASS`), it is dropped, or it
/// is forwarded (`XDP_REDIRECT`).
fn model(f: &[u8], on_iif: bool) -> u32 {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return XDP_PASS; // truncated, or not IPv4 (VLAN, IPv6, ARP...)
    }
    if f[0] & 1 == 0 {
        return XDP_PASS; // not sent to a multicast (or broadcast) MAC
    }
    let ip = &f[14..];
    let (version, ihl) = (ip[0] >> 4, usize::from(ip[0] & 0x0f) * 4);
    let tot_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    if version != 4 || dst[0] & 0xf0 != 0xe0 || dst[..3] == [224, 0, 0] {
        return XDP_PASS;
    }
    if ihl < 20 || tot_len < ihl || tot_len > ip.len() || !checksum_ok(&ip[..ihl]) {
        return XDP_PASS;
    }
    if ip[9] == 2 || ip[9] == 103 || !options_forwardable(&ip[20..ihl]) {
        return XDP_PASS; // IGMP, PIM, Router Alert, or a malformed option: the kernel's
    }
    if ip[12..16] != SRC || dst != GRP {
        return XDP_PASS; // no MFE
    }
    if !on_iif || ip[8] <= 1 {
        return XDP_DROP; // wrong interface, TTL expired
    }
    XDP_REDIRECT
}

/// What the specification says becomes of the IPv6 frame `f` (docs/protocol.md, "Both
/// address families"), with an MFE for (SRC6, GRP6) when `mfe`.
fn model6(f: &[u8], on_iif: bool, mfe: bool) -> u32 {
    if f.len() < 14 + 40 || f[12..14] != [0x86, 0xdd] || f[0] & 1 == 0 {
        return XDP_PASS; // truncated, not IPv6, or not to a multicast MAC
    }
    let ip = &f[14..];
    let dst: [u8; 16] = ip[24..40].try_into().unwrap();
    if ip[0] >> 4 != 6 || dst[0] != 0xff || matches!(dst[1] & 0x0f, 0 | 1 | 2 | 15) {
        return XDP_PASS; // not IPv6, not multicast, or a scope that never leaves the link
    }
    let tot_len = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if tot_len > ip.len() || !chain_forwardable(ip[6], &ip[40..tot_len]) {
        return XDP_PASS;
    }
    if !mfe || ip[8..24] != SRC6 || dst[2..] != GRP6[2..] || dst[1] >> 4 != 3 {
        return XDP_PASS; // no MFE (there is one for GRP6 in every scope)
    }
    if !on_iif || ip[7] <= 1 {
        return XDP_DROP;
    }
    XDP_REDIRECT
}

/// Whether the extension headers from `nh` on, in `rest` (the datagram after the fixed
/// header), let a router forward the packet: at most 4 of them; a Hop-by-Hop header only
/// first, of at most 64 bytes, with padding options only (Router Alert: control); Destination
/// Options and Fragment headers skipped (a non-first fragment ends the walk); no Routing
/// header; not MLD or PIM; every header within the datagram.
fn chain_forwardable(mut nh: u8, rest: &[u8]) -> bool {
    let mut off = 0;
    for i in 0..=4 {
        let len = match nh {
            0 if i == 0 => {
                let Some(&[next, ext]) = rest.get(off..off + 2) else { return false };
                let len = (usize::from(ext) + 1) * 8;
                if len > 64
                    || off + len > rest.len()
                    || !hbh_options_padding(&rest[off + 2..off + len])
                {
                    return false;
                }
                nh = next;
                len
            }
            60 => {
                let Some(&[next, ext]) = rest.get(off..off + 2) else { return false };
                nh = next;
                (usize::from(ext) + 1) * 8
            }
            44 => {
                let Some(h) = rest.get(off..off + 4) else { return false };
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return true; // a later fragment: no upper-layer header in it
                }
                nh = h[0];
                8
            }
            0 | 43 | 103 => return false, // Hop-by-Hop not first, Routing, PIM
            58 => return rest.get(off).is_some_and(|t| ![130, 131, 132, 143].contains(t)),
            _ => return true,
        };
        if off + len > rest.len() {
            return false;
        }
        off += len;
    }
    false // deeper than the walk goes
}

/// Hop-by-Hop options (RFC 8200 §4.2): Pad1 and PadN only, each within the header.
fn hbh_options_padding(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => i += 1,
            1 => {
                let Some(&len) = opts.get(i + 1) else { return false };
                i += 2 + usize::from(len);
                if i > opts.len() {
                    return false;
                }
            }
            _ => return false, // Router Alert, Jumbo, or one a router must act on
        }
    }
    true
}

/// The copy a router sends of the IPv6 frame `f`: the datagram alone, hop limit - 1, to the
/// group's MAC (or the neighbour's); the source MAC as given (None: left as it came).
fn router_copy6(f: &[u8], dst_mac: Option<[u8; 6]>, src_mac: Option<[u8; 6]>) -> Vec<u8> {
    let tot_len = 40 + usize::from(u16::from_be_bytes([f[18], f[19]]));
    let mut c = f[..14 + tot_len].to_vec();
    c[..6].copy_from_slice(&dst_mac.unwrap_or([0x33, 0x33, f[50], f[51], f[52], f[53]]));
    if let Some(src) = src_mac {
        c[6..12].copy_from_slice(&src);
    }
    c[14 + 7] -= 1;
    c
}

/// RFC 791 options: each well formed (a length of at least 2 that fits), none a Router Alert.
fn options_forwardable(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return true,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { return false };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() || kind == 148 {
                    return false;
                }
                i += len;
            }
        }
    }
    true
}

/// The copy a router sends of `f` to `dst_mac`: the IP datagram alone (no padding after
/// tot_len), TTL - 1, checksum valid; the source MAC as given (None: left as it came).
fn router_copy(f: &[u8], dst_mac: [u8; 6], src_mac: Option<[u8; 6]>) -> Vec<u8> {
    let tot_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let mut c = f[..14 + tot_len].to_vec();
    c[..6].copy_from_slice(&dst_mac);
    if let Some(src) = src_mac {
        c[6..12].copy_from_slice(&src);
    }
    c[14 + 8] -= 1;
    set_checksum(&mut c[14..14 + ihl]);
    c
}

const GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x01, 0x01, 0x01];

fn checksum_ok(h: &[u8]) -> bool {
    let mut sum: u32 = h.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn set_checksum(h: &mut [u8]) {
    h[10..12].fill(0);
    let mut sum: u32 = h.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// A well-formed IPv4 frame, then one of many ways of spoiling it (or none).
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let base = (
        prop_oneof![4 => Just(SRC), 1 => any::<[u8; 4]>()],
        prop_oneof![
            4 => Just(GRP),
            1 => Just([224, 0, 0, 5]),
            1 => Just([10, 2, 0, 1]),
            1 => any::<[u8; 4]>()
        ],
        prop_oneof![Just(0u8), Just(1), Just(2), Just(255), any::<u8>()],
        0usize..=10, // option words (IHL 5..=15)
        prop_oneof![4 => Just(17u8), 1 => Just(2), 1 => Just(103), 1 => any::<u8>()], // protocol
        prop_oneof![6 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)], // option kind
        prop_oneof![Just(0u16), Just(0x2000), Just(0x0001), any::<u16>()], // flags/fragment
        prop::collection::vec(any::<u8>(), 0..2900),
    )
        .prop_map(|(src, dst, ttl, opts, proto, options, frag, payload)| {
            let ihl = 5 + opts;
            let tot = ihl * 4 + payload.len();
            let mut f = vec![0x01, 0x00, 0x5e, 0x01, 0x01, 0x01, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            let mut ip = vec![0u8; ihl * 4];
            ip[0] = 0x40 | ihl as u8;
            ip[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
            ip[6..8].copy_from_slice(&frag.to_be_bytes());
            ip[8] = ttl;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&src);
            ip[16..20].copy_from_slice(&dst);
            for (i, b) in ip[20..].iter_mut().enumerate() {
                *b = if i % 4 == 0 { 1 } else { 0 }; // NOP options
            }
            if opts > 0 {
                let first: &[u8] = match options {
                    1 => &[148, 4, 0, 0],        // Router Alert
                    2 => &[7, 255, 4, 0],        // Record Route with a length past the header
                    3 => &[0, 0x55, 0x55, 0x55], // end of list, then junk
                    _ => &[1, 1, 1, 1],
                };
                ip[20..24].copy_from_slice(first);
            }
            set_checksum(&mut ip);
            f.extend(ip);
            f.extend(payload);
            f
        });
    (base, 0usize..9, any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut f, how, at, byte)| {
            match how {
                // Truncated anywhere (down to 14 bytes, the least the kernel accepts).
                0 => f.truncate(14.max(at.index(f.len()))),
                // One byte changed anywhere (header bytes most of the time).
                1 => {
                    let i = at.index(f.len().min(60));
                    f[i] ^= byte | 1;
                }
                // A VLAN tag in front of the IPv4 header.
                2 => {
                    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
                }
                // IPv6 or ARP ethertype.
                3 => f[12..14].copy_from_slice(if byte % 2 == 0 {
                    &[0x86, 0xdd]
                } else {
                    &[0x08, 0x06]
                }),
                // tot_len larger than the frame, or smaller than the header.
                4 => {
                    let v = if byte % 2 == 0 { 9000u16 } else { 12 };
                    f[16..18].copy_from_slice(&v.to_be_bytes());
                    let ihl = usize::from(f[14] & 0x0f) * 4;
                    set_checksum(&mut f[14..14 + ihl]);
                }
                // Ethernet padding or junk after the IP packet (valid: not copied).
                5 => f.extend(std::iter::repeat_n(byte, 1 + usize::from(byte) % 200)),
                // Sent to a unicast MAC.
                6 => f[0] = 0x02,
                // Left as built.
                _ => {}
            }
            f
        },
    )
}

/// One IPv6 extension header the generator may chain.
#[derive(Clone, Copy, Debug)]
enum Ext {
    /// Hop-by-Hop with these option bytes (padded to a multiple of 8 with Pad1).
    HopByHop(&'static [u8]),
    /// Hop-by-Hop of this many bytes, one PadN filling it.
    PaddedHopByHop(usize),
    DestOpts,
    /// A Fragment header at this offset (in 8-byte units).
    Fragment(u16),
    Routing,
}

/// A well-formed IPv6 frame (a chain of extension headers, then UDP, ICMPv6, PIM or
/// anything), then one of many ways of spoiling it (or none).
fn frame6() -> impl Strategy<Value = Vec<u8>> {
    let ext = prop_oneof![
        Just(Ext::HopByHop(&[1, 4, 0, 0, 0, 0])),    // PadN
        Just(Ext::HopByHop(&[5, 2, 0, 0])),          // Router Alert (MLD)
        Just(Ext::HopByHop(&[0xc2, 4, 0, 1, 0, 0])), // Jumbo payload
        Just(Ext::HopByHop(&[1, 9, 0, 0])),          // PadN running past the header
        Just(Ext::PaddedHopByHop(64)),               // the longest the walk reads
        Just(Ext::PaddedHopByHop(72)),               // longer
        Just(Ext::HopByHop(&[0, 0, 0, 1, 0])),       // Pad1s, then PadN cut short
        Just(Ext::DestOpts),
        Just(Ext::Fragment(0)),
        Just(Ext::Fragment(185)),
        Just(Ext::Routing),
    ];
    let base = (
        prop_oneof![4 => Just(SRC6), 1 => any::<[u8; 16]>()],
        prop_oneof![
            4 => Just(GRP6),
            // The same group in every scope: each has an MFE (see `run`), and scopes 0, 1,
            // 2 and 15 must be passed all the same.
            2 => (0u8..16).prop_map(|scope| {
                let mut g = GRP6;
                g[1] = 0x30 | scope;
                g
            }),
            1 => Just([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            1 => Just([0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            1 => Just([0xff, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1]),
            1 => any::<[u8; 16]>()
        ],
        prop_oneof![Just(0u8), Just(1), Just(2), Just(255), any::<u8>()],
        prop_oneof![
            3 => Just(vec![]),
            4 => prop::collection::vec(ext, 1..6),
            // Chains around the walk's depth.
            1 => (3usize..=6).prop_map(|n| vec![Ext::DestOpts; n])
        ],
        // The upper layer: UDP, ICMPv6 (an echo request or MLD), PIM, No Next Header, any.
        prop_oneof![
            4 => Just((17u8, 0u8)),
            1 => Just((58, 128)),
            2 => prop::sample::select(vec![130u8, 131, 132, 143]).prop_map(|t| (58, t)),
            1 => Just((103, 0)),
            1 => Just((59, 0)),
            1 => any::<(u8, u8)>()
        ],
        prop::collection::vec(any::<u8>(), 0..2900),
    )
        .prop_map(|(src, dst, hop_limit, chain, (proto, first), payload)| {
            let mut headers: Vec<(u8, Vec<u8>)> = chain
                .iter()
                .map(|e| match *e {
                    Ext::HopByHop(opts) => {
                        let mut h = vec![0, 0];
                        h.extend_from_slice(opts);
                        h.resize(h.len().div_ceil(8) * 8, 0);
                        h[1] = (h.len() / 8 - 1) as u8;
                        (0, h)
                    }
                    Ext::PaddedHopByHop(len) => {
                        let mut h = vec![0; len];
                        h[1] = (len / 8 - 1) as u8;
                        (h[2], h[3]) = (1, (len - 4) as u8);
                        (0, h)
                    }
                    Ext::DestOpts => (60, vec![0, 0, 1, 4, 0, 0, 0, 0]),
                    Ext::Fragment(at) => {
                        let mut h = vec![0; 8];
                        h[2..4].copy_from_slice(&(at << 3).to_be_bytes());
                        (44, h)
                    }
                    Ext::Routing => (43, vec![0, 0, 0, 0, 0, 0, 0, 0]),
                })
                .collect();
            let mut upper = payload;
            if let Some(b) = upper.first_mut() {
                *b = first;
            }
            // Each header's first byte names the next one.
            let kinds: Vec<u8> = headers.iter().map(|(k, _)| *k).chain([proto]).collect();
            for (i, (_, h)) in headers.iter_mut().enumerate() {
                h[0] = kinds[i + 1];
            }
            let body: Vec<u8> = headers.into_iter().flat_map(|(_, h)| h).chain(upper).collect();
            let mut f = vec![0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(body.len() as u16).to_be_bytes());
            f.extend_from_slice(&[kinds[0], hop_limit]);
            f.extend_from_slice(&src);
            f.extend_from_slice(&dst);
            f.extend(body);
            f
        });
    (base, 0usize..9, any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut f, how, at, byte)| {
            match how {
                0 => f.truncate(14.max(at.index(f.len()))),
                // One byte changed in the headers (fixed and extension) most of the time.
                1 => {
                    let i = at.index(f.len().min(120));
                    f[i] ^= byte | 1;
                }
                // The payload length past the frame, or short of the headers.
                2 => {
                    let v = if byte % 2 == 0 { 9000u16 } else { u16::from(byte % 16) };
                    f[18..20].copy_from_slice(&v.to_be_bytes());
                }
                3 => f[12..14].copy_from_slice(&[0x08, 0x00]),
                4 => f[14] = (f[14] & 0x0f) | (byte & 0xf0),
                5 => f.extend(std::iter::repeat_n(byte, 1 + usize::from(byte) % 200)),
                6 => f[0] = 0x02,
                _ => {}
            }
            f
        },
    )
}

/// Which program the frames go through.
#[derive(Clone, Copy)]
enum Path {
    /// The XDP ingress program, an MFE with two outgoing interfaces without next hops
    /// (broadcast copies; the source MAC is each port's, written by the egress program).
    Xdp,
    /// The XDP ingress program, an MFE with one outgoing interface (the copy made and sent
    /// by the ingress program itself, from the port's MAC).
    XdpSingle,
    /// The TC program, an MFE with a next hop (one copy to the neighbour's MAC).
    Tc,
}

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const HOP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x77];

/// The verdict and the frame after the program that the model expects on `path`.
fn expected(path: Path, f: &[u8], on_iif: bool) -> (u32, Option<Vec<u8>>) {
    if f.len() >= 14 && f[12..14] == [0x86, 0xdd] {
        let v = model6(f, on_iif, true);
        return match path {
            Path::Tc if v == XDP_REDIRECT => {
                (TC_ACT_SHOT, Some(router_copy6(f, Some(HOP_MAC), Some(PORT_MAC))))
            }
            Path::Tc => (TC_ACT_OK, None),
            Path::Xdp | Path::XdpSingle => {
                let src = matches!(path, Path::XdpSingle).then_some(PORT_MAC);
                (v, (v == XDP_REDIRECT).then(|| router_copy6(f, None, src)))
            }
        };
    }
    let v = model(f, on_iif);
    match path {
        Path::Xdp => (v, (v == XDP_REDIRECT).then(|| router_copy(f, GROUP_MAC, None))),
        Path::XdpSingle => {
            (v, (v == XDP_REDIRECT).then(|| router_copy(f, GROUP_MAC, Some(PORT_MAC))))
        }
        // TC acts only on what it forwards; what XDP drops never reaches it.
        Path::Tc if v == XDP_REDIRECT => {
            (TC_ACT_SHOT, Some(router_copy(f, HOP_MAC, Some(PORT_MAC))))
        }
        Path::Tc => (TC_ACT_OK, None),
    }
}

fn cases() -> Vec<(Vec<u8>, bool)> {
    // From a fixed seed: a failure names the frame, rerunning reproduces it.
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..Config::default()
    });
    let strategy = (prop_oneof![2 => frame(), 1 => frame6()], any::<bool>());
    (0..FRAMES).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

/// Runs every generated frame through the program of `path` and returns the mismatches.
fn run(path: Path) -> Vec<String> {
    require_root();
    let ns = Netns::new("pfuzz").unwrap();
    let peer = Netns::new("pfuzzp").unwrap();
    veth(&ns, "in", &peer, "pin").unwrap();
    veth(&ns, "out", &peer, "pout").unwrap();
    veth(&ns, "out2", &peer, "pout2").unwrap();
    let (ifin, ifout) = (ns.ifindex("in").unwrap(), ns.ifindex("out").unwrap());
    let ifout2 = ns.ifindex("out2").unwrap();
    let cases = cases();
    ns.enter(move || {
        let (fp, _log) = BpfFastPath::load(&LoadOptions::default())?;
        let mut m = Mirror::new(fp);
        m.add_port(ifin, PortValue::new([2, 0, 0, 0, 0, 1], 9000))?;
        m.add_port(ifout, PortValue::new(PORT_MAC, 9000))?;
        m.add_port(ifout2, PortValue::new([2, 0, 0, 0, 0, 3], 9000))?;
        let key = Sg::v4(SRC, GRP);
        // GRP6 in every scope, those never forwarded too: the program must pass them anyway.
        let keys6 = (0..16u8).map(|scope| {
            let mut g = GRP6;
            g[1] = 0x30 | scope;
            Sg::new(std::net::Ipv6Addr::from(SRC6), std::net::Ipv6Addr::from(g))
        });
        match path {
            Path::Xdp => {
                m.install_static(key, ifin, &[ifout, ifout2])?;
                for k in keys6 {
                    m.install_static(k, ifin, &[ifout, ifout2])?;
                }
            }
            Path::XdpSingle => {
                m.install_static(key, ifin, &[ifout])?;
                for k in keys6 {
                    m.install_static(k, ifin, &[ifout])?;
                }
            }
            Path::Tc => {
                let hop = std::net::Ipv4Addr::new(10, 9, 0, 7);
                m.install(key, ifin, &[Oif::new(ifout, hop, vec![LEASE_STATIC])])?;
                m.set_neighbour(ifout, hop.into(), HOP_MAC)?;
                let hop6: std::net::Ipv6Addr = "fe80::77".parse().unwrap();
                for k in keys6 {
                    m.install(k, ifin, &[Oif::new(ifout, hop6, vec![LEASE_STATIC])])?;
                }
                m.set_neighbour(ifout, hop6.into(), HOP_MAC)?;
            }
        }
        let fp = m.fast_path();
        // Each test run waits ~16 ms in the kernel (not CPU): run them side by side.
        let chunks: Vec<&[(Vec<u8>, bool)]> = cases.chunks(cases.len() / 16 + 1).collect();
        let failures = std::thread::scope(|s| {
            let hs: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut bad = Vec::new();
                        for (f, on_iif) in chunk {
                            let ingress = if *on_iif { ifin } else { ifout };
                            let (want, copy) = expected(path, f, *on_iif);
                            let r = match path {
                                Path::Xdp | Path::XdpSingle => fp.test_run(f, ingress, 1),
                                Path::Tc => fp.test_run_tc(f, ingress),
                            };
                            match r {
                                Ok(r) if r.action != want => bad.push(format!(
                                    "action {} instead of {want} for {}",
                                    r.action,
                                    head(f)
                                )),
                                Ok(r) => {
                                    if let Some(c) = copy
                                        && r.frame != c
                                    {
                                        bad.push(format!(
                                            "copy {}\ninstead of {}\nfor {}",
                                            head(&r.frame),
                                            head(&c),
                                            head(f)
                                        ));
                                    }
                                }
                                // The kernel builds no test skb from a frame shorter than an
                                // IP header (a real one would reach TC, and be passed).
                                Err(e)
                                    if matches!(path, Path::Tc)
                                        && f.len()
                                            < if f[12..14] == [0x86, 0xdd] { 54 } else { 34 }
                                        && e.raw_os_error() == Some(libc::EINVAL) => {}
                                Err(e) => {
                                    bad.push(format!("test run failed ({e}) for {}", head(f)))
                                }
                            }
                        }
                        bad
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().expect("worker")).collect::<Vec<_>>()
        });
        Ok(failures)
    })
    .unwrap()
}

/// A frame's length and its first 120 bytes (the headers), for a failure message.
fn head(f: &[u8]) -> String {
    format!("{} bytes {:02x?}", f.len(), &f[..f.len().min(120)])
}

fn assert_none(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {FRAMES} frames:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

#[test]
fn the_model_is_not_trivial() {
    // The generator reaches every verdict, so the comparison above can fail in each way.
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..Config::default()
    });
    let (mut seen, mut seen6) =
        (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for _ in 0..FRAMES {
        let (f, on_iif) = (frame(), any::<bool>()).new_tree(&mut runner).unwrap().current();
        seen.insert(model(&f, on_iif));
        let (f, on_iif) = (frame6(), any::<bool>()).new_tree(&mut runner).unwrap().current();
        seen6.insert(model6(&f, on_iif, true));
    }
    assert_eq!(seen, [XDP_DROP, XDP_PASS, XDP_REDIRECT].into());
    assert_eq!(seen6, [XDP_DROP, XDP_PASS, XDP_REDIRECT].into());
}

/// The matrix runs these on this machine and in every guest: the programs' verdicts must be
/// the specification's on every kernel whose verifier takes them.
mod every_kernel {
    use super::*;

    #[test]
    fn generated_frames_do_exactly_what_the_specification_says_on_the_xdp_path() {
        assert_none(&run(Path::Xdp));
    }

    #[test]
    fn generated_frames_do_exactly_what_the_specification_says_on_the_single_copy_xdp_path() {
        assert_none(&run(Path::XdpSingle));
    }

    #[test]
    fn generated_frames_do_exactly_what_the_specification_says_on_the_tc_path() {
        assert_none(&run(Path::Tc));
    }
}
