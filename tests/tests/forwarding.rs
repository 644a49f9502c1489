// SPDX-License-Identifier: MIT OR Apache-2.0
//! The XDP fast path with real frames through real veth pairs: what arrives where, what never
//! does, and what the counters say. Needs root (namespaces, XDP).

use std::time::Duration;

use mgm::{
    config::StaticMfe,
    proto::{self, ErrorCode},
};
use mgm_tests::{
    GROUP, SOURCE, Topology, assert_forwarded_copy, fix_ipv4_checksum, magic, udp_frame, with_magic,
};

/// How long a receiver stays silent before we decide nothing more is coming. Only used after
/// the router's counters prove every frame was handled, so it bounds reordering, not latency.
const IDLE: Duration = Duration::from_millis(300);
const S: &str = "10.1.0.1";
const G: &str = "239.1.1.1";

fn mfe(iif: &str, oifs: &[&str]) -> String {
    format!("{S},{G},{iif},{}", oifs.join("+"))
}

/// A static MFE (S, G) from `iif` to `oifs`, as `add_mfe` takes it.
fn static_mfe(iif: &str, oifs: &[&str]) -> StaticMfe {
    StaticMfe {
        source: S.parse().unwrap(),
        group: G.parse().unwrap(),
        iif: iif.into(),
        oifs: oifs.iter().map(|o| (*o).to_owned()).collect(),
    }
}

fn payload(magic: &[u8], seq: u32) -> Vec<u8> {
    let mut p = magic.to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xab; 32]);
    p
}

/// Sends `count` numbered frames, waits for the router to handle them, and returns what each
/// receiver got that carries this test's marker.
fn send_numbered(
    t: &Topology,
    tag: &str,
    ttl: u8,
    count: u32,
    counters: &[&str],
) -> (Vec<Vec<u8>>, Vec<Vec<Vec<u8>>>) {
    let caps = t.captures().unwrap();
    let m = magic(tag);
    let mut ctl = t.ctl().unwrap();
    let before: u64 = counters.iter().map(|c| ctl.counter(c).unwrap()).sum();
    let sent: Vec<Vec<u8>> = (0..count).map(|i| t.frame(ttl, &payload(&m, i))).collect();
    for f in &sent {
        t.tx.send(f).unwrap();
    }
    ctl.wait_counters(counters, before + count as u64).unwrap();
    let got = caps
        .iter()
        .map(|c| with_magic(&c.drain(IDLE).unwrap(), &m).into_iter().cloned().collect())
        .collect();
    (sent, got)
}

#[test]
fn forwards_to_one_receiver_and_not_the_other() {
    let mut t = Topology::new(2).unwrap();
    t.start(&["--mfe", &mfe("rin", &["r1"])]).unwrap();
    let (sent, got) = send_numbered(&t, "one", 64, 20, &["forwarded"]);
    assert_eq!(got[0].len(), 20, "receiver 1 is on the OIL");
    assert_eq!(got[1].len(), 0, "receiver 2 is not");
    let r1_mac = t.router.mac("r1").unwrap();
    for (s, g) in sent.iter().zip(&got[0]) {
        assert_forwarded_copy(s, g, r1_mac);
    }
}

/// The copies' source MAC follows an outgoing port's address when the operator changes it,
/// on the broadcast path (MFE to r1 and r2) and the single-copy one (MFE to r3 alone).
#[test]
fn copies_follow_a_changed_port_mac() {
    let mut t = Topology::new(3).unwrap();
    let one = "10.1.0.1,239.1.1.3,rin,r3".to_owned();
    t.start(&["--mfe", &mfe("rin", &["r1", "r2"]), "--mfe", &one]).unwrap();
    for (dev, mac) in [("r1", "02:aa:00:00:00:01"), ("r3", "02:aa:00:00:00:03")] {
        t.router.exec("ip", &["link", "set", dev, "address", mac]).unwrap();
    }
    let want = |dev| t.router.mac(dev).unwrap();
    let (r1, r2, r3) = (want("r1"), want("r2"), want("r3"));
    assert_eq!(r1, [2, 0xaa, 0, 0, 0, 1]);
    let caps = t.captures().unwrap();
    let m = magic("newmac");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // mgmd hears of the change over netlink: wait until the copies show it.
    loop {
        let sent = t.frame(64, &payload(&m, 0));
        let mut other = sent.clone();
        other[30..34].copy_from_slice(&[239, 1, 1, 3]);
        fix_ipv4_checksum(&mut other);
        t.tx.send(&sent).unwrap();
        t.tx.send(&other).unwrap();
        let got: Vec<Vec<Vec<u8>>> = caps
            .iter()
            .map(|c| with_magic(&c.drain(IDLE).unwrap(), &m).into_iter().cloned().collect())
            .collect();
        let src = |copies: &Vec<Vec<u8>>| copies.last().map(|c| c[6..12].to_vec());
        if src(&got[0]) == Some(r1.to_vec()) && src(&got[2]) == Some(r3.to_vec()) {
            assert_eq!(src(&got[1]), Some(r2.to_vec()), "r2's copies keep its MAC");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "copies still from the old MACs: {got:02x?}");
    }
}

#[test]
fn wrong_incoming_interface_is_not_forwarded_and_is_counted() {
    let mut t = Topology::new(2).unwrap();
    // The MFE expects the flow on r2; it arrives on rin.
    t.start(&["--mfe", &mfe("r2", &["r1"])]).unwrap();
    let (_, got) = send_numbered(&t, "wrongif", 64, 10, &["drop_wrong_iif"]);
    assert!(got.iter().all(Vec::is_empty), "nothing forwarded");
    let m = t.ctl().unwrap().mfe(S, G).unwrap().unwrap();
    assert_eq!((m.counters().wrong_interface, m.counters().in_packets), (10, 0));
    assert_eq!(t.ctl().unwrap().counter("forwarded").unwrap(), 0);
}

#[test]
fn ttl_one_and_zero_are_not_forwarded_ttl_two_is() {
    let mut t = Topology::new(1).unwrap();
    t.start(&["--mfe", &mfe("rin", &["r1"])]).unwrap();
    let (_, got) = send_numbered(&t, "ttl1", 1, 5, &["drop_ttl"]);
    assert!(got[0].is_empty(), "TTL 1 not forwarded");
    let (_, got) = send_numbered(&t, "ttl0", 0, 5, &["drop_ttl"]);
    assert!(got[0].is_empty(), "TTL 0 not forwarded");
    let (sent, got) = send_numbered(&t, "ttl2", 2, 5, &["forwarded"]);
    assert_eq!(got[0].len(), 5, "TTL 2 forwarded");
    let mac = t.router.mac("r1").unwrap();
    for (s, g) in sent.iter().zip(&got[0]) {
        assert_forwarded_copy(s, g, mac);
    }
    let m = t.ctl().unwrap().mfe(S, G).unwrap().unwrap();
    assert_eq!((m.counters().ttl_expired, m.counters().in_packets), (10, 15));
}

#[test]
fn mfes_added_and_removed_over_the_socket_take_effect() {
    let mut t = Topology::new(2).unwrap();
    t.start(&[]).unwrap();
    let mut ctl = t.ctl().unwrap();
    let (_, got) = send_numbered(&t, "none", 64, 5, &["pass_no_mfe"]);
    assert!(got.iter().all(Vec::is_empty), "no MFE, no forwarding");

    ctl.call(static_mfe("rin", &["r1"])).unwrap();
    let (_, got) = send_numbered(&t, "add", 64, 5, &["forwarded"]);
    assert_eq!((got[0].len(), got[1].len()), (5, 0));

    // Replacing the OIL moves the flow in one step.
    ctl.call(static_mfe("rin", &["r2"])).unwrap();
    let (_, got) = send_numbered(&t, "move", 64, 5, &["forwarded"]);
    assert_eq!((got[0].len(), got[1].len()), (0, 5));

    let del = proto::DelMfe { source: S.parse().unwrap(), group: G.parse().unwrap() };
    ctl.call(del.clone()).unwrap();
    let (_, got) = send_numbered(&t, "del", 64, 5, &["pass_no_mfe"]);
    assert!(got.iter().all(Vec::is_empty), "removed MFE no longer forwards");
    assert_eq!(ctl.call_err(del).unwrap(), ErrorCode::NotFound);
}

#[test]
fn empty_oil_drops_matching_traffic() {
    let mut t = Topology::new(1).unwrap();
    t.start(&["--mfe", &format!("{S},{G},rin,")]).unwrap();
    let (_, got) = send_numbered(&t, "neg", 64, 5, &["drop_empty_oil"]);
    assert!(got[0].is_empty());
    assert_eq!(t.ctl().unwrap().mfe(S, G).unwrap().unwrap().counters().in_packets, 5);
}

/// End to end with ordinary sockets: the sender's kernel builds the packets, the receivers'
/// kernels accept them (checksums, group membership) and deliver them to joined sockets.
#[test]
fn real_udp_sockets_receive_what_the_sender_sent() {
    let mut t = Topology::new(3).unwrap();
    t.add_addresses().unwrap();
    t.start(&["--mfe", &mfe("rin", &["r1", "r3"])]).unwrap();
    let rx: Vec<_> = (0..3).map(|i| t.udp_receiver(i, GROUP, 5000).unwrap()).collect();
    let tx = t.udp_sender(4).unwrap();
    let m = magic("udp");
    for i in 0..30u32 {
        tx.send_to(&payload(&m, i), ("239.1.1.1", 5000)).unwrap();
    }
    let mut ctl = t.ctl().unwrap();
    ctl.wait_counters(&["forwarded"], 30).unwrap();
    for (i, sock) in rx.iter().enumerate() {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!(from.ip().to_string(), S, "source address preserved");
            got.push(buf[..n].to_vec());
        }
        let expected: Vec<Vec<u8>> =
            if i == 1 { Vec::new() } else { (0..30).map(|n| payload(&m, n)).collect() };
        assert_eq!(got, expected, "receiver {}", i + 1);
    }
    assert_eq!(ctl.mfe(S, G).unwrap().unwrap().counters().in_packets, 30);
}

/// A port whose MTU is more than one XDP buffer holds (jumbo frames on veth: above 3506)
/// cannot take mgm's programs: mgmd refuses it, naming the MTU and what to do. At the largest
/// MTU that fits, the largest datagram is forwarded whole.
#[test]
fn a_jumbo_mtu_port_is_refused_by_name_and_the_largest_frame_that_fits_is_forwarded() {
    let mut t = Topology::new(1).unwrap();
    t.add_addresses().unwrap();
    let set_mtu = |t: &Topology, mtu: u32| {
        let links =
            [(&t.sender, "s0"), (&t.router, "rin"), (&t.router, "r1"), (&t.receivers[0], "eth0")];
        for (ns, dev) in links {
            ns.exec("ip", &["link", "set", dev, "mtu", &mtu.to_string()]).unwrap();
        }
    };
    set_mtu(&t, 9000);
    let err = format!("{:#}", t.start(&["--mfe", &mfe("rin", &["r1"])]).unwrap_err());
    assert!(err.contains("MTU (9000 on rin") && err.contains("--xdp-mode skb"), "{err}");
    set_mtu(&t, 3506);
    t.start(&["--mfe", &mfe("rin", &["r1"])]).unwrap();
    let rx = t.udp_receiver(0, GROUP, 5000).unwrap();
    let tx = t.udp_sender(4).unwrap();
    // 3506 bytes of IP: a 3520-byte frame, the most one 4 KiB XDP buffer carries on veth.
    let big: Vec<u8> = (0..3506 - 28).map(|i| (i % 251) as u8).collect();
    tx.send_to(&big, (G, 5000)).unwrap();
    let mut buf = vec![0u8; 9000];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &big[..], "the datagram arrived whole");
    let mut ctl = t.ctl().unwrap();
    assert_eq!(ctl.mfe(S, G).unwrap().unwrap().counters().in_packets, 1);
}

/// Generic (skb) XDP, for drivers without native XDP: same forwarding, same checks.
#[test]
fn generic_xdp_mode_forwards_the_same() {
    let mut t = Topology::new(2).unwrap();
    t.start(&["--xdp-mode", "skb", "--mfe", &mfe("rin", &["r1"])]).unwrap();
    assert!(t.router.exec("ip", &["link", "show", "rin"]).unwrap().contains("xdpgeneric"));
    let (sent, got) = send_numbered(&t, "skb", 64, 10, &["forwarded"]);
    assert_eq!((got[0].len(), got[1].len()), (10, 0));
    let mac = t.router.mac("r1").unwrap();
    for (s, g) in sent.iter().zip(&got[0]) {
        assert_forwarded_copy(s, g, mac);
    }
}

/// The fast path's core case on every kernel of the matrix: the ingress program hands each
/// copy its MFE through XDP metadata where the kernel allows it, and the egress program looks
/// it up again where it does not; both must give the same copies and counters.
mod every_kernel {
    use super::*;

    #[test]
    fn forwards_to_three_receivers_with_per_mfe_counters() {
        let mut t = Topology::new(4).unwrap();
        t.start(&["--mfe", &mfe("rin", &["r1", "r2", "r3"])]).unwrap();
        let (sent, got) = send_numbered(&t, "three", 10, 25, &["forwarded"]);
        for (i, copies) in got.iter().take(3).enumerate() {
            assert_eq!(copies.len(), 25, "receiver {} is on the OIL", i + 1);
            let mac = t.router.mac(&format!("r{}", i + 1)).unwrap();
            for (s, g) in sent.iter().zip(copies) {
                assert_forwarded_copy(s, g, mac);
            }
        }
        assert_eq!(got[3].len(), 0, "receiver 4 is not on the OIL");
        let m = t.ctl().unwrap().mfe(S, G).unwrap().expect("mfe listed");
        assert_eq!(
            (m.counters().in_packets, m.counters().in_octets, m.counters().wrong_interface),
            (25, 25 * sent[0].len() as u64, 0)
        );
        assert_eq!(t.ctl().unwrap().counter("egress_tx").unwrap(), 75, "one egress run per copy");
    }

    #[test]
    fn ip_options_are_forwarded_with_a_valid_checksum() {
        let mut t = Topology::new(1).unwrap();
        t.start(&["--mfe", &mfe("rin", &["r1"])]).unwrap();
        let caps = t.captures().unwrap();
        let m = magic("opts");
        let plain = t.frame(32, &payload(&m, 0));
        // Insert a 4-byte option (NOP, NOP, NOP, End) after the 20-byte header: IHL 6.
        let mut f = plain[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&plain[34..]);
        f[14] = 0x46;
        let tot = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        fix_ipv4_checksum(&mut f);
        t.tx.send(&f).unwrap();
        t.ctl().unwrap().wait_counters(&["forwarded"], 1).unwrap();
        let got = caps[0].drain(IDLE).unwrap();
        let got = with_magic(&got, &m);
        assert_eq!(got.len(), 1);
        let g = got[0];
        assert_eq!(g[14], 0x46, "options kept");
        assert_eq!(g[22], 31, "TTL decremented");
        let h = etherparse::Ipv4Header::from_slice(&g[14..]).unwrap().0;
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "checksum over options valid");
    }

    /// Every odd frame is passed to the stack (or dropped) and never forwarded; each lands in the
    /// counter that names why.
    #[test]
    fn malformed_and_foreign_frames_are_never_forwarded() {
        let mut t = Topology::new(2).unwrap();
        t.start(&["--mfe", &mfe("rin", &["r1", "r2"])]).unwrap();
        let caps = t.captures().unwrap();
        let mut ctl = t.ctl().unwrap();
        let m = magic("odd");
        let good = t.frame(64, &payload(&m, 0));
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut f = good.clone();
            edit(&mut f);
            f
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated IPv4 header", good[..14 + 12].to_vec(), "pass_malformed"),
            (
                "truncated payload (tot_len beyond frame)",
                good[..good.len() - 4].to_vec(),
                "pass_malformed",
            ),
            ("bad header checksum", with(&|f| f[25] ^= 0xff), "pass_malformed"),
            (
                "IHL 4",
                with(&|f| {
                    f[14] = 0x44;
                    fix_ipv4_checksum(f)
                }),
                "pass_malformed",
            ),
            (
                "IHL 15 beyond the frame",
                good[..14 + 40]
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(i, b)| if i == 14 { 0x4f } else { b })
                    .collect(),
                "pass_malformed",
            ),
            (
                "version 6 under ethertype IPv4",
                with(&|f| {
                    f[14] = 0x65;
                    fix_ipv4_checksum(f)
                }),
                "pass_malformed",
            ),
            (
                "tot_len below IHL",
                with(&|f| {
                    f[16] = 0;
                    f[17] = 10;
                    fix_ipv4_checksum(f)
                }),
                "pass_malformed",
            ),
            (
                "VLAN-tagged",
                with(&|f| {
                    f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
                }),
                "pass_not_ipv4",
            ),
            (
                // The IPv6 checks see version 4 in the header.
                "IPv6 ethertype on an IPv4 header",
                with(&|f| {
                    f[12] = 0x86;
                    f[13] = 0xdd
                }),
                "pass_malformed",
            ),
            (
                "ARP ethertype",
                with(&|f| {
                    f[12] = 0x08;
                    f[13] = 0x06
                }),
                "pass_not_ipv4",
            ),
            (
                "unicast destination",
                with(&|f| {
                    f[30..34].copy_from_slice(&[10, 1, 0, 99]);
                    fix_ipv4_checksum(f)
                }),
                "pass_not_multicast",
            ),
            (
                "link-local group 224.0.0.5",
                with(&|f| {
                    f[30..34].copy_from_slice(&[224, 0, 0, 5]);
                    fix_ipv4_checksum(f)
                }),
                "pass_link_local",
            ),
            (
                "group without MFE",
                udp_frame(t.sender_mac, SOURCE, [239, 9, 9, 9], 64, &payload(&m, 1)),
                "pass_no_mfe",
            ),
            (
                "source without MFE",
                udp_frame(t.sender_mac, [10, 1, 0, 2], GROUP, 64, &payload(&m, 2)),
                "pass_no_mfe",
            ),
        ];
        for (name, frame, counter) in &cases {
            let before = ctl.counter(counter).unwrap();
            t.tx.send(frame).unwrap();
            ctl.wait_counters(&[counter], before + 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // A good frame last: it must arrive, and be the only thing that did.
        t.tx.send(&good).unwrap();
        ctl.wait_counters(&["forwarded"], 1).unwrap();
        for (i, c) in caps.iter().enumerate() {
            let got = c.drain(IDLE).unwrap();
            assert_eq!(
                got.len(),
                1,
                "receiver {}: only the good frame arrives, got {got:02x?}",
                i + 1
            );
            assert_forwarded_copy(&good, &got[0], t.router.mac(&format!("r{}", i + 1)).unwrap());
        }
        assert_eq!(ctl.counter("forwarded").unwrap(), 1);
    }
}
