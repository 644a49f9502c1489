// SPDX-License-Identifier: MIT OR Apache-2.0
//! The XDP fast path with IPv6 frames through real veth pairs: what arrives where (hop limit,
//! MAC, payload and UDP checksum), what never does (low scopes, hop limit, control traffic,
//! extension headers it does not walk, the wrong interface), and the counters. Needs root.

use std::time::Duration;

use mgm::config::StaticMfe;
use mgm_tests::{Topology, assert_forwarded_copy, magic, with_magic};

const IDLE: Duration = Duration::from_millis(300);
const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// A global-scope group (ff3e::8000:1).
const G6: [u8; 16] = [0xff, 0x3e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1];
const S: &str = "2001:db8:1::1";
const G: &str = "ff3e::8000:1";

const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_DEST_OPTS: u8 = 60;

fn static_mfe(group: &str, iif: &str, oifs: &[&str]) -> StaticMfe {
    StaticMfe {
        source: S.parse().unwrap(),
        group: group.parse().unwrap(),
        iif: iif.into(),
        oifs: oifs.iter().map(|o| (*o).to_owned()).collect(),
    }
}

/// An Ethernet/IPv6/UDP frame from the source `S6`.
fn udp6_frame(src_mac: [u8; 6], group: [u8; 16], hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    mgm_tests::udp6_frame(src_mac, S6, group, hop_limit, payload)
}

/// `frame` with extension header `ext` (whose first byte, its next header, is filled in)
/// inserted after the fixed header as header `kind`. The UDP checksum does not cover
/// extension headers, so it stays valid.
fn with_ext(frame: &[u8], kind: u8, ext: &[u8]) -> Vec<u8> {
    let mut out = frame[..54].to_vec();
    let mut ext = ext.to_vec();
    ext[0] = out[20];
    out[20] = kind;
    let payload = u16::from_be_bytes([out[18], out[19]]) + ext.len() as u16;
    out[18..20].copy_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&ext);
    out.extend_from_slice(&frame[54..]);
    out
}

fn payload(magic: &[u8], seq: u32) -> Vec<u8> {
    let mut p = magic.to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xab; 32]);
    p
}

/// Sends the frames, waits until the router's counters account for each, and returns what
/// each receiver got with this marker.
fn send_and_capture(t: &Topology, frames: &[Vec<u8>], marker: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let caps = t.captures().unwrap();
    let mut ctl = t.ctl().unwrap();
    let seen = |ctl: &mut mgm_tests::Ctl| -> u64 {
        let s = ctl.show().unwrap();
        s.counters
            .iter()
            .filter(|(n, _)| {
                !n.starts_with("egress") && !n.starts_with("upcall") && !n.starts_with("tc_")
            })
            .map(|(_, v)| v)
            .sum()
    };
    let before = seen(&mut ctl);
    for f in frames {
        t.tx.send(f).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Every frame the sender's stack adds (router solicitations...) counts too: at least ours.
    while seen(&mut ctl) < before + frames.len() as u64 {
        assert!(std::time::Instant::now() < deadline, "the router did not see every frame");
        std::thread::sleep(Duration::from_millis(20));
    }
    caps.iter()
        .map(|c| {
            let got = c.drain(IDLE).unwrap();
            with_magic(&got, marker).into_iter().cloned().collect()
        })
        .collect()
}

fn topology(receivers: usize, oifs: &[&str]) -> Topology {
    let mut t = Topology::new(receivers).unwrap();
    let spec = format!("{S},{G},rin,{}", oifs.join("+"));
    t.start(&["--mfe", &spec]).unwrap();
    t
}

#[test]
fn ipv6_hop_limit_zero_and_one_are_dropped_two_is_forwarded() {
    let t = topology(1, &["r1"]);
    let m = magic("v6hl");
    let frames: Vec<Vec<u8>> = [0u8, 1, 2]
        .iter()
        .map(|&hl| udp6_frame(t.sender_mac, G6, hl, &payload(&m, hl.into())))
        .collect();
    let got = send_and_capture(&t, &frames, &m);
    assert_eq!(got[0].len(), 1, "only hop limit 2 is forwarded");
    assert_eq!(got[0][0][21], 1, "and leaves with hop limit 1");
    let mut ctl = t.ctl().unwrap();
    assert_eq!(ctl.counter("drop_ttl").unwrap(), 2);
    assert_eq!(ctl.mfe(S, G).unwrap().unwrap().counters().ttl_expired, 2);
}

#[test]
fn ipv6_on_the_wrong_interface_is_not_forwarded() {
    let t = topology(2, &["r2"]);
    let m = magic("v6wrong");
    // The MFE's list, seen from r1: a frame from there is on the wrong interface.
    let tx1 = mgm_tests::PacketSocket::open(&t.receivers[0], "eth0").unwrap();
    let caps = t.captures().unwrap();
    let mac = t.receivers[0].mac("eth0").unwrap();
    for i in 0..5 {
        tx1.send(&udp6_frame(mac, G6, 64, &payload(&m, i))).unwrap();
    }
    let mut ctl = t.ctl().unwrap();
    ctl.wait_counters(&["drop_wrong_iif"], 5).unwrap();
    assert!(with_magic(&caps[1].drain(IDLE).unwrap(), &m).is_empty());
    assert_eq!(ctl.mfe(S, G).unwrap().unwrap().counters().wrong_interface, 5);
}

#[test]
fn ipv6_link_and_interface_local_scopes_and_mld_are_never_forwarded() {
    let t = topology(1, &["r1"]);
    let m = magic("v6scope");
    let mut ff02 = G6;
    ff02[1] = 0x02;
    let mut ff01 = G6;
    ff01[1] = 0x01;
    // An MLDv2 report without a Router Alert: ICMPv6 type 143 to the group is still MLD.
    let mut mld = udp6_frame(t.sender_mac, G6, 1, &payload(&m, 9));
    mld[20] = 58;
    mld[54] = 143;
    let frames = vec![
        udp6_frame(t.sender_mac, ff02, 64, &payload(&m, 1)),
        udp6_frame(t.sender_mac, ff01, 64, &payload(&m, 2)),
        mld,
    ];
    let got = send_and_capture(&t, &frames, &m);
    assert!(got[0].is_empty(), "nothing of these is forwarded");
    let mut ctl = t.ctl().unwrap();
    assert_eq!(ctl.counter("pass_link_local").unwrap(), 2);
    assert_eq!(ctl.counter("pass_control").unwrap(), 1);
    // And the configuration refuses to route them.
    let e = ctl.call_err(static_mfe("ff02::1:3", "rin", &["r1"])).unwrap();
    assert_eq!(e, mgm::proto::ErrorCode::InvalidParams);
}

#[test]
fn a_scope_boundary_keeps_site_local_groups_inside_both_ways() {
    // ff<scope>::8000:<n>
    let group = |scope: u8, n: u8| {
        let mut g = G6;
        g[1] = scope;
        g[15] = n;
        g
    };
    let name = |g: [u8; 16]| std::net::Ipv6Addr::from(g).to_string();
    let mut t = Topology::new(2).unwrap();
    // r2 is the site's edge: site-local (5) and smaller stay off it; organisation-local (8)
    // and global (e) pass. Entries 1 come in on rin, entries 2 through the boundary.
    let mut args = vec!["--scope-boundary".to_owned(), "r2:site".to_owned()];
    for scope in [0x05, 0x08, 0x0e] {
        args.push("--mfe".into());
        args.push(format!("{S},{},rin,r1+r2", name(group(scope, 1))));
        args.push("--mfe".into());
        args.push(format!("{S},{},r2,r1", name(group(scope, 2))));
    }
    t.start(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    let scopes = |copies: &[Vec<u8>]| -> Vec<u8> { copies.iter().map(|f| f[39]).collect() };

    let m = magic("v6bound");
    let frames: Vec<Vec<u8>> = [0x05, 0x08, 0x0e]
        .iter()
        .map(|&s| udp6_frame(t.sender_mac, group(s, 1), 64, &payload(&m, s.into())))
        .collect();
    let got = send_and_capture(&t, &frames, &m);
    assert_eq!(scopes(&got[0]), [0x05, 0x08, 0x0e], "inside the site: every scope");
    assert_eq!(scopes(&got[1]), [0x08, 0x0e], "across the boundary: no site-local group");
    let mut ctl = t.ctl().unwrap();
    let r1 = t.router.ifindex("r1").unwrap();
    let site = ctl.mfe(S, &name(group(0x05, 1))).unwrap().unwrap();
    assert_eq!(site.oif_indexes(), [r1], "the fast path lists what it really copies to");

    // Through the boundary, inwards: the site-local group goes nowhere.
    let tx2 = mgm_tests::PacketSocket::open(&t.receivers[1], "eth0").unwrap();
    let mac = t.receivers[1].mac("eth0").unwrap();
    let caps = t.captures().unwrap();
    let m2 = magic("v6bound-in");
    for scope in [0x05, 0x08, 0x0e] {
        tx2.send(&udp6_frame(mac, group(scope, 2), 64, &payload(&m2, scope.into()))).unwrap();
    }
    ctl.wait_counters(&["drop_empty_oil"], 1).unwrap();
    ctl.wait_counters(&["forwarded"], 5).unwrap();
    let inside = caps[0].drain(IDLE).unwrap();
    let got: Vec<u8> = with_magic(&inside, &m2).iter().map(|f| f[39]).collect();
    assert_eq!(got, [0x08, 0x0e], "only groups beyond the site cross inwards");
    assert_eq!(
        ctl.mfe(S, &name(group(0x05, 2))).unwrap().unwrap().oif_indexes(),
        Vec::<u32>::new()
    );
}

/// A copy too long for its link is never fragmented by a router: it is dropped, and the
/// source is told the link's MTU (ICMPv6 Packet Too Big, as the kernel's ip6mr does). The
/// sender's own kernel takes it: its next datagrams leave it in fragments that fit, which
/// the fast path forwards and the receivers reassemble. The first datagram, sent before the
/// source knew, reaches only the link it fits.
#[test]
fn a_packet_too_big_for_a_link_is_dropped_and_its_source_told_the_mtu() {
    use mgm_tests::Family;
    let mut t = Topology::new(2).unwrap();
    t.add_addresses_for(Family::V6).unwrap();
    // The router's own IPv6 address on the sender's link: the message comes from it.
    mgm_tests::ipv6_on(&t.router, "rin").unwrap();
    t.router
        .exec("ip", &["-6", "addr", "add", "2001:db8:1::fe/64", "dev", "rin", "nodad"])
        .unwrap();
    t.router.exec("ip", &["link", "set", "r1", "mtu", "1280"]).unwrap();
    t.start(&["--mfe", &format!("{S},{G},rin,r1+r2")]).unwrap();
    let mut ctl = t.ctl().unwrap();
    let rx: Vec<_> = (0..2).map(|i| t.udp_receiver_for(Family::V6, i, 5000).unwrap()).collect();
    let tx = t.udp_sender_for(Family::V6, 8).unwrap();
    let datagram = |tag: &str| {
        let mut d = tag.as_bytes().to_vec();
        d.resize(1400, 0x5a);
        d
    };
    let count = |s: &std::net::UdpSocket, tag: &str| {
        let (mut got, mut buf) = (0, [0u8; 2048]);
        while let Ok(len) = s.recv(&mut buf) {
            got += usize::from(len == 1400 && buf.starts_with(tag.as_bytes()));
        }
        got
    };

    tx.send_to(&datagram("first"), (G, 5000)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ctl.status().unwrap().too_big_sent == 0 {
        assert!(std::time::Instant::now() < deadline, "no Packet Too Big sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!((count(&rx[0], "first"), count(&rx[1], "first")), (0, 1));
    assert_eq!(ctl.counter("egress_too_big").unwrap(), 1, "r1's copy, counted");

    let forwarded = ctl.counter("forwarded").unwrap();
    for i in 0..10 {
        tx.send_to(&datagram(&format!("next-{i}")), (G, 5000)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((count(&rx[0], "next-"), count(&rx[1], "next-")), (10, 10));
    // In fragments, forwarded in XDP.
    assert!(ctl.counter("forwarded").unwrap() - forwarded >= 20);
    assert_eq!(ctl.status().unwrap().too_big_sent, 1, "nothing too big since");
}

/// The matrix runs these on this machine and in every guest (Debian 12's 6.1 and 6.12, 7.x):
/// what must hold on every kernel mgm supports.
mod every_kernel {
    use super::*;

    #[test]
    fn ipv6_is_forwarded_to_one_and_to_three_receivers() {
        for oifs in [&["r2"][..], &["r1", "r2", "r3"][..]] {
            let t = topology(3, oifs);
            let m = magic("v6fwd");
            let frames: Vec<Vec<u8>> =
                (0..20).map(|i| udp6_frame(t.sender_mac, G6, 64, &payload(&m, i))).collect();
            let got = send_and_capture(&t, &frames, &m);
            for (i, copies) in got.iter().enumerate() {
                let name = format!("r{}", i + 1);
                if !oifs.contains(&name.as_str()) {
                    assert!(copies.is_empty(), "{name} is not in the list: {}", copies.len());
                    continue;
                }
                assert_eq!(copies.len(), frames.len(), "{name}: every frame once");
                let out_mac = t.router.mac(&name).unwrap();
                for (sent, copy) in frames.iter().zip(copies) {
                    assert_forwarded_copy(sent, copy, out_mac);
                }
            }
            let mut ctl = t.ctl().unwrap();
            let mfe = ctl.mfe(S, G).unwrap().expect("the static IPv6 MFE is listed");
            assert_eq!(mfe.counters().in_packets, frames.len() as u64);
            assert_eq!(ctl.counter("forwarded").unwrap(), frames.len() as u64);
        }
    }

    #[test]
    fn ipv6_extension_headers_are_walked_and_control_traffic_stays_with_the_kernel() {
        let t = topology(1, &["r1"]);
        let m = magic("v6ext");
        let base = |i: u32| udp6_frame(t.sender_mac, G6, 64, &payload(&m, i));
        // Hop-by-Hop with PadN only; with a Router Alert (MLD's); with a Jumbo option.
        let hbh_pad = [0, 0, 1, 4, 0, 0, 0, 0];
        let hbh_ra = [0, 0, 5, 2, 0, 0, 1, 0];
        let hbh_jumbo = [0, 0, 0xc2, 4, 0, 0, 0, 0];
        // Destination Options (PadN), a first fragment (offset 0, more fragments), a Routing header.
        let dest = [0, 0, 1, 4, 0, 0, 0, 0];
        let frag = [0, 0, 0, 1, 0, 0, 0, 7];
        let routing = [0, 0, 0, 0, 0, 0, 0, 0];
        let forwarded = [
            with_ext(&base(0), NH_HOP_BY_HOP, &hbh_pad),
            with_ext(&base(1), NH_DEST_OPTS, &dest),
            with_ext(&base(2), NH_FRAGMENT, &frag),
            with_ext(&with_ext(&base(3), NH_DEST_OPTS, &dest), NH_HOP_BY_HOP, &hbh_pad),
        ];
        let kept = [
            with_ext(&base(10), NH_HOP_BY_HOP, &hbh_ra),
            with_ext(&base(11), NH_HOP_BY_HOP, &hbh_jumbo),
            with_ext(&base(12), NH_ROUTING, &routing),
            // Hop-by-Hop anywhere but first is malformed.
            with_ext(&with_ext(&base(13), NH_HOP_BY_HOP, &hbh_pad), NH_DEST_OPTS, &dest),
            // Five Destination Options headers: more than the walk takes.
            (0..5).fold(base(14), |f, _| with_ext(&f, NH_DEST_OPTS, &dest)),
        ];
        let all: Vec<Vec<u8>> = forwarded.iter().chain(&kept).cloned().collect();
        let got = send_and_capture(&t, &all, &m);
        let seqs: Vec<u32> = got[0]
            .iter()
            .map(|f| {
                let at = f.windows(m.len()).position(|w| w == m.as_slice()).unwrap() + m.len();
                u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
            })
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3], "exactly the frames with headers the walk understands");
        for (sent, copy) in forwarded.iter().zip(&got[0]) {
            assert_eq!(copy.len(), sent.len(), "extension headers kept");
            assert_eq!(copy[21], sent[21] - 1, "hop limit decremented");
            assert_eq!(copy[54..], sent[54..], "headers after the fixed one untouched");
        }
        let mut ctl = t.ctl().unwrap();
        assert_eq!(ctl.counter("pass_control").unwrap(), 1, "the Router Alert");
        assert_eq!(ctl.counter("pass_ext_headers").unwrap(), 3, "Jumbo, Routing, too many");
        assert_eq!(ctl.counter("pass_malformed").unwrap(), 1, "Hop-by-Hop second");
    }
}
