// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet fuzzing of every forwarding path through BPF_PROG_TEST_RUN: the XDP ingress
//! program (broadcast copies, and the single copy it sends itself) and the TC program
//! (copies to a next hop). Thousands of
//! generated frames (valid ones, truncated ones, IP options good and bad, Router Alert,
//! IGMP and PIM, fragments, bad checksums, VLAN tags, IPv6, ARP, other protocols, TTL
//! 0/1/255, unicast addresses and MACs, link-local groups, padding and junk after the
//! datagram, up to 3 KB), each run through the loaded program and compared with a model
//! written from the specification of the fast path (README: "what the fast path does with
//! each packet"): nothing malformed or control is forwarded, and a forwarded packet is a
//! router's copy: the datagram alone, TTL - 1, checksum valid, addressed to the group's MAC
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
const FRAMES: u32 = 3_000;

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
    let strategy = (frame(), any::<bool>());
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
        match path {
            Path::Xdp => m.install_static(key, ifin, &[ifout, ifout2])?,
            Path::XdpSingle => m.install_static(key, ifin, &[ifout])?,
            Path::Tc => {
                let hop = std::net::Ipv4Addr::new(10, 9, 0, 7);
                m.install(key, ifin, &[Oif::new(ifout, hop, vec![LEASE_STATIC])])?;
                m.set_neighbour(ifout, hop, HOP_MAC)?;
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
                                    "action {} instead of {want} for {f:02x?}",
                                    r.action
                                )),
                                Ok(r) => {
                                    if let Some(c) = copy
                                        && r.frame != c
                                    {
                                        bad.push(format!(
                                            "copy {:02x?}\ninstead of {c:02x?}\nfor {f:02x?}",
                                            r.frame
                                        ));
                                    }
                                }
                                // The kernel builds no test skb from a frame shorter than an
                                // IPv4 header (a real one would reach TC, and be passed).
                                Err(e)
                                    if matches!(path, Path::Tc)
                                        && f.len() < 34
                                        && e.raw_os_error() == Some(libc::EINVAL) => {}
                                Err(e) => bad.push(format!("test run failed ({e}) for {f:02x?}")),
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

fn assert_none(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {FRAMES} frames:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

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

#[test]
fn the_model_is_not_trivial() {
    // The generator reaches every verdict, so the comparison above can fail in each way.
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..Config::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..FRAMES {
        let (f, on_iif) = (frame(), any::<bool>()).new_tree(&mut runner).unwrap().current();
        seen.insert(model(&f, on_iif));
    }
    assert_eq!(seen, [XDP_DROP, XDP_PASS, XDP_REDIRECT].into());
}
