// SPDX-License-Identifier: MIT OR Apache-2.0
//! What leaves the router is what a correct IPv4 multicast router sends, on every forwarding
//! path (the XDP broadcast to interfaces without next hop, the single copy the XDP ingress
//! program sends itself, the TC program for a next hop) and in both XDP modes (native and generic): crafted frames a hostile sender would
//! try, each either refused (left to the kernel) or forwarded as a proper copy: the IP
//! datagram alone, TTL - 1, checksum valid, to the group's MAC (or the neighbour's), from the
//! router's port. Control traffic (IGMP, PIM, Router Alert) goes to the kernel. Large first
//! packets of a flow are held whole and forwarded. Needs root.

use std::time::Duration;

use mgm::proto::{self, MembershipArgs};
use mgm_tests::{
    Ctl, PacketSocket, SOURCE, Topology, fix_ipv4_checksum, group_mac, magic, udp_frame, with_magic,
};

const WAIT: Duration = Duration::from_secs(5);
/// Forwarded on the XDP path as a broadcast (memberships on r1 and r2 without next hop).
const G_XDP: [u8; 4] = [239, 1, 1, 1];
/// Forwarded on the XDP path as a single copy (a membership on r1 alone).
const G_ONE: [u8; 4] = [239, 1, 1, 3];
/// Forwarded by the TC program (a membership on (r1, the receiver as next hop)).
const G_TC: [u8; 4] = [239, 1, 1, 2];
const HOP: &str = "10.2.1.2";

fn dotted(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

/// PIM on rin, r1 and r2 with (*,G_XDP) on r1 and r2, (*,G_ONE) on r1 and (*,G_TC) on
/// (r1, HOP); each MFE created by a first packet. Returns the capture on receiver 1 and its
/// MAC.
fn setup(t: &mut Topology, mode: &str) -> (Ctl, PacketSocket, [u8; 6]) {
    t.start(&["--xdp-mode", mode]).unwrap();
    let rx_mac = t.receivers[0].mac("eth0").unwrap();
    let mac = rx_mac.map(|b| format!("{b:02x}")).join(":");
    t.router
        .exec("ip", &["neigh", "replace", HOP, "lladdr", &mac, "dev", "r1", "nud", "permanent"])
        .unwrap();
    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let r2 = t.router.ifindex("r2").unwrap();
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1, r2], &[r1, r2], &dotted(G_XDP)).unwrap();
    pim.join(h, &dotted(G_ONE), r1).unwrap();
    let nexthop = HOP.parse().unwrap();
    pim.call(proto::TakeInterface { handle: h, ifindex: r1, nexthop }).unwrap();
    let m =
        MembershipArgs { nexthop: Some(nexthop), ..mgm_tests::membership(h, &dotted(G_TC), r1) };
    pim.call(proto::AddMembership(m)).unwrap();
    let cap = PacketSocket::open(&t.receivers[0], "eth0").unwrap();
    for g in [G_XDP, G_ONE, G_TC] {
        t.tx.send(&udp_frame(t.sender_mac, SOURCE, g, 8, b"create")).unwrap();
        pim.answer_creation(h, WAIT).unwrap();
    }
    // All forward before the cases start.
    for g in [G_XDP, G_ONE, G_TC] {
        let tag = magic("ready");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            t.tx.send(&udp_frame(t.sender_mac, SOURCE, g, 8, &tag)).unwrap();
            if !with_magic(&cap.drain(Duration::from_millis(100)).unwrap(), &tag).is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{g:?} never forwarded");
        }
    }
    (pim, cap, rx_mac)
}

/// Sets a frame's IPv4 header length field and fixes the checksum.
fn with_tot_len(mut f: Vec<u8>, len: u16) -> Vec<u8> {
    f[16..18].copy_from_slice(&len.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    f
}

/// Inserts IPv4 options (a multiple of 4 bytes) after the fixed header.
fn with_options(f: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut g = f[..34].to_vec();
    g.extend_from_slice(opts);
    g.extend_from_slice(&f[34..]);
    g[14] = 0x40 | (5 + opts.len() / 4) as u8;
    let tot = (g.len() - 14) as u16;
    with_tot_len(g, tot)
}

/// The crafted frames to `group` that must not leave the router, by name.
fn refused(t: &Topology, group: [u8; 4], tag: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let good = udp_frame(t.sender_mac, SOURCE, group, 8, tag);
    let edit = |e: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        e(&mut f);
        f
    };
    let mut igmp = udp_frame(t.sender_mac, SOURCE, group, 1, tag);
    igmp[23] = 2; // protocol IGMP (a v2 report to the group, TTL 1, from a source)
    let igmp = with_options(&igmp, &[148, 4, 0, 0]);
    vec![
        ("bad header checksum", edit(&|f| f[24] ^= 0x5a)),
        ("tot_len beyond the frame", with_tot_len(good.clone(), (good.len() - 14 + 112) as u16)),
        ("tot_len below IHL", with_tot_len(good.clone(), 12)),
        ("tot_len 0", with_tot_len(good.clone(), 0)),
        (
            "IHL 3",
            edit(&|f| {
                f[14] = 0x43;
                fix_ipv4_checksum(f)
            }),
        ),
        ("VLAN 100", edit(&|f| f.splice(12..12, [0x81, 0x00, 0x00, 100]).for_each(drop))),
        ("priority tag", edit(&|f| f.splice(12..12, [0x81, 0x00, 0xa0, 0]).for_each(drop))),
        ("IGMP report with Router Alert", igmp),
        (
            "PIM",
            edit(&|f| {
                f[23] = 103;
                fix_ipv4_checksum(f)
            }),
        ),
        ("UDP with Router Alert", with_options(&good, &[148, 4, 0, 0])),
        ("option length 255", with_options(&good, &[7, 255, 4, 0])),
        ("unicast destination MAC", edit(&|f| f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]))),
    ]
}

/// The crafted frames to `group` that must leave as proper copies.
fn accepted(t: &Topology, group: [u8; 4], tag: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let good = udp_frame(t.sender_mac, SOURCE, group, 8, tag);
    let edit = |e: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        e(&mut f);
        f
    };
    vec![
        ("wrong group MAC", edit(&|f| f[..6].copy_from_slice(&[1, 0, 0x5e, 0x7f, 0xff, 0xfa]))),
        ("broadcast MAC", edit(&|f| f[..6].copy_from_slice(&[0xff; 6]))),
        ("201 bytes after the datagram", edit(&|f| f.extend(std::iter::repeat_n(0xee, 201)))),
        ("NOP options", with_options(&good, &[1, 1, 1, 0])),
    ]
}

/// A copy as a router sends it: `sent` trimmed to its datagram, TTL - 1, checksum valid,
/// from `src` to `dst`.
fn assert_router_copy(name: &str, sent: &[u8], got: &[u8], dst: [u8; 6], src: [u8; 6]) {
    let tot = usize::from(u16::from_be_bytes([sent[16], sent[17]]));
    let mut want = sent[..14 + tot].to_vec();
    want[..6].copy_from_slice(&dst);
    want[6..12].copy_from_slice(&src);
    want[22] -= 1;
    fix_ipv4_checksum(&mut want);
    assert_eq!(got, want.as_slice(), "{name}: not a router's copy");
}

fn crafted_frames(mode: &str) {
    let mut t = Topology::new(2).unwrap();
    let (mut pim, cap, rx_mac) = setup(&mut t, mode);
    let r1_mac = t.router.mac("r1").unwrap();
    for (group, dst, path) in [
        (G_XDP, group_mac(G_XDP), "XDP"),
        (G_ONE, group_mac(G_ONE), "XDP-single"),
        (G_TC, rx_mac, "TC"),
    ] {
        let control = pim.counter("pass_control").unwrap();
        let tag = magic(&format!("bad{mode}{path}"));
        for (_, f) in refused(&t, group, &tag) {
            t.tx.send(&f).unwrap();
        }
        // Each accepted case with a tag of its own.
        let tags: Vec<Vec<u8>> = (0..4).map(|i| magic(&format!("ok{i}{mode}{path}"))).collect();
        let good: Vec<(&str, Vec<u8>)> =
            (0..tags.len()).map(|i| accepted(&t, group, &tags[i]).swap_remove(i)).collect();
        for (_, f) in &good {
            t.tx.send(f).unwrap();
        }
        let got = cap.drain(Duration::from_millis(300)).unwrap();
        let leaked = with_magic(&got, &tag);
        assert!(leaked.is_empty(), "{mode}/{path}: refused frames left the router: {leaked:02x?}");
        for ((name, sent), tag) in good.iter().zip(&tags) {
            let copies = with_magic(&got, tag);
            assert_eq!(copies.len(), 1, "{mode}/{path}/{name}: {} copies", copies.len());
            assert_router_copy(name, sent, copies[0], dst, r1_mac);
        }
        // IGMP, PIM and the Router Alert frame went to the kernel, untouched (XDP counts
        // them; the TC program leaves them alone).
        if path != "TC" {
            let seen = pim.counter("pass_control").unwrap() - control;
            assert!(seen >= 3, "{mode}: {seen} control frames passed to the kernel, not 3");
        }
    }
}

#[test]
fn crafted_frames_leave_as_router_copies_or_not_at_all_native() {
    crafted_frames("default");
}

#[test]
fn crafted_frames_leave_as_router_copies_or_not_at_all_generic() {
    crafted_frames("skb");
}

/// Held packets are forwarded with XDP live frames, which not every kernel runs.
mod needs_live_frames {
    use super::*;
    use mgm_tests::{Need, needs};

    /// A new flow of 3,000-byte packets (MTU 3,400): its first packets are held whole while the
    /// MFE is created, then forwarded; nothing is counted as replayed that was not.
    #[test]
    fn large_first_packets_are_held_whole_and_forwarded() {
        needs(&[Need::LiveFrames]);
        let mut t = Topology::new(1).unwrap();
        for (ns, dev) in [(&t.sender, "s0"), (&t.router, "rin"), (&t.router, "r1")] {
            ns.exec("ip", &["link", "set", dev, "mtu", "3400"]).unwrap();
        }
        t.receivers[0].exec("ip", &["link", "set", "eth0", "mtu", "3400"]).unwrap();
        t.start(&[]).unwrap();
        let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
        let mut pim = t.ctl().unwrap();
        let h = pim.protocol_with(103, &[rin, r1], &[r1], &dotted(G_XDP)).unwrap();
        let cap = PacketSocket::open(&t.receivers[0], "eth0").unwrap();
        let tag = magic("big");
        let frames: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                let mut p = tag.clone();
                p.push(i);
                p.resize(3000, i);
                udp_frame(t.sender_mac, SOURCE, G_XDP, 8, &p)
            })
            .collect();
        for f in &frames {
            t.tx.send(f).unwrap();
        }
        pim.answer_creation(h, WAIT).unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < frames.len() && std::time::Instant::now() < deadline {
            got.extend(
                with_magic(&cap.drain(Duration::from_millis(100)).unwrap(), &tag)
                    .into_iter()
                    .cloned(),
            );
        }
        let s = pim.status().unwrap();
        assert_eq!(got.len(), frames.len(), "held packets forwarded: {s:?}");
        let r1_mac = t.router.mac("r1").unwrap();
        for (sent, copy) in frames.iter().zip(&got) {
            assert_router_copy("held", sent, copy, group_mac(G_XDP), r1_mac);
        }
        assert_eq!((s.replayed, s.replay_dropped), (4, 0), "{s:?}");
        assert_eq!(pim.counter("upcall_not_held").unwrap(), 0);
    }
}
