// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet fuzzing of the XDP ingress program through BPF_PROG_TEST_RUN: thousands of
//! generated frames (valid ones, truncated ones, IP options, fragments, bad checksums, VLAN
//! tags, IPv6, ARP, other protocols, TTL 0/1/255, unicast, link-local groups, up to 3 KB),
//! each run through the loaded program and compared with a model written from the
//! specification of the fast path (README: "what the fast path does with each packet"):
//! nothing malformed is forwarded, well-formed packets are forwarded exactly as the MFE says
//! (TTL - 1, checksum valid, nothing else changed), and no other action ever comes back.
//! Needs root.

use mgm::{
    dataplane::{BpfFastPath, LoadOptions},
    fastpath::Mirror,
};
use mgm_common::{MfeKey, PortValue};
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

/// What the specification says the program does with `f` arriving on the MFE's incoming
/// interface (`on_iif`) or another managed one.
fn model(f: &[u8], on_iif: bool) -> u32 {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return XDP_PASS; // truncated, or not IPv4 (VLAN, IPv6, ARP...)
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
    if ip[12..16] != SRC || dst != GRP {
        return XDP_PASS; // no MFE
    }
    if !on_iif || ip[8] <= 1 {
        return XDP_DROP; // wrong interface, TTL expired
    }
    XDP_REDIRECT
}

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
        any::<u8>(), // protocol
        prop_oneof![Just(0u16), Just(0x2000), Just(0x0001), any::<u16>()], // flags/fragment
        prop::collection::vec(any::<u8>(), 0..2900),
    )
        .prop_map(|(src, dst, ttl, opts, proto, frag, payload)| {
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
            set_checksum(&mut ip);
            f.extend(ip);
            f.extend(payload);
            f
        });
    (base, 0usize..8, any::<prop::sample::Index>(), any::<u8>()).prop_map(
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
                // Ethernet padding after the IP packet (valid).
                5 => f.extend([0u8; 20]),
                // Left as built.
                _ => {}
            }
            f
        },
    )
}

#[test]
fn generated_frames_do_exactly_what_the_specification_says() {
    require_root();
    let ns = Netns::new("pfuzz").unwrap();
    let peer = Netns::new("pfuzzp").unwrap();
    veth(&ns, "in", &peer, "pin").unwrap();
    veth(&ns, "out", &peer, "pout").unwrap();
    let (ifin, ifout) = (ns.ifindex("in").unwrap(), ns.ifindex("out").unwrap());

    // The frames, from a fixed seed (a failure names the frame; rerunning reproduces it).
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..Config::default()
    });
    let strategy = (frame(), any::<bool>());
    let cases: Vec<(Vec<u8>, bool)> =
        (0..FRAMES).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();

    let failures = ns
        .enter(move || {
            let (fp, _log) = BpfFastPath::load(&LoadOptions::default())?;
            let mut m = Mirror::new(fp);
            m.add_port(ifin, PortValue::new([2, 0, 0, 0, 0, 1], 1500))?;
            m.add_port(ifout, PortValue::new([2, 0, 0, 0, 0, 2], 1500))?;
            m.install_static(MfeKey::new(SRC, GRP), ifin, &[ifout])?;
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
                                let want = model(f, *on_iif);
                                match fp.test_run(f, ingress, 1) {
                                    Ok(r) if r.action != want => bad.push(format!(
                                        "action {} instead of {want} for {:02x?}",
                                        r.action, f
                                    )),
                                    Ok(r) if want == XDP_REDIRECT => {
                                        let mut expect = f.clone();
                                        expect[14 + 8] -= 1;
                                        let ihl = usize::from(f[14] & 0x0f) * 4;
                                        set_checksum(&mut expect[14..14 + ihl]);
                                        if r.frame != expect {
                                            bad.push(format!(
                                                "forwarded frame differs for {f:02x?}"
                                            ));
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        bad.push(format!("test run failed ({e}) for {f:02x?}"))
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
        .unwrap();
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
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..FRAMES {
        let (f, on_iif) = (frame(), any::<bool>()).new_tree(&mut runner).unwrap().current();
        seen.insert(model(&f, on_iif));
    }
    assert_eq!(seen, [XDP_DROP, XDP_PASS, XDP_REDIRECT].into());
}
