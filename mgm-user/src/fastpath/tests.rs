// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mirror against the in-memory data plane: write order, interning, leases, counters
//! across changes, adoption after a restart.

use super::*;
use crate::testing::{MemFastPath, Write};

fn o(ifindex: u32, leases: Vec<u32>) -> Oif {
    Oif::new(ifindex, Ipv4Addr::UNSPECIFIED, leases)
}

/// The map value of a static MFE.
fn static_value(iif: u32, oil: u32, slot: u32) -> MfeValue {
    MfeValue { flags: MFE_F_STATIC, ..MfeValue::new(iif, oil, slot) }
}

fn key(s: u8, g: u8) -> Sg {
    Sg::v4([10, 0, 0, s], [239, 1, 1, g])
}

fn mirror(ports: &[u32]) -> Mirror<MemFastPath> {
    let mut m = Mirror::new(MemFastPath::with_capacity(8));
    for &p in ports {
        m.add_port(p, PortValue::new([2, 0, 0, 0, 0, p as u8], 0)).unwrap();
    }
    m.fast_path_mut().log.clear();
    m
}

/// Copies out per interface of `key`, as the daemon reports them.
fn outs(m: &Mirror<MemFastPath>, k: &Sg) -> Vec<(u32, u64, u64)> {
    m.oif_stats(k).unwrap().iter().map(|(i, s)| (*i, s.out_packets, s.out_bytes)).collect()
}

/// What the programs count for `n` packets of 100 bytes matched by the MFE in `slot`:
/// the ingress program once per packet, the TC program each copy it sends.
fn forward(m: &mut Mirror<MemFastPath>, k: &Sg, n: u64) {
    let i = m.get(k).unwrap().clone();
    let fp = m.fast_path_mut();
    let s = fp.stats.entry(i.slot).or_default();
    s.packets += n;
    s.bytes += 100 * n;
    if has_hops(&i.legs) {
        for l in &i.legs {
            let o = fp.oif_stats.entry((i.slot, l.ifindex)).or_default();
            o.out_packets = o.out_packets.wrapping_add(n);
            o.out_bytes = o.out_bytes.wrapping_add(100 * n);
        }
    }
}

#[test]
fn scope_boundaries_keep_groups_on_their_side_both_ways() {
    let mut m = mirror(&[1, 2, 3]);
    let site =
        |g: &str| Sg::new("2001:db8::1".parse::<IpAddr>().unwrap(), g.parse::<IpAddr>().unwrap());
    let (s5, s8, s14) = (site("ff05::1"), site("ff08::1"), site("ff0e::1"));
    let v4_local = Sg::v4([10, 0, 0, 1], [239, 255, 0, 1]);
    for k in [s5, s8, s14, v4_local] {
        m.install_static(k, 1, &[2, 3]).unwrap();
    }
    // Drawn after the entries: the ones it stops lose the interface at once.
    m.set_boundary(3, Some("site".parse().unwrap())).unwrap();
    assert_eq!(m.get(&s5).unwrap().oifs(), [2]);
    assert_eq!(m.get(&v4_local).unwrap().oifs(), [2]);
    assert_eq!(m.get(&s8).unwrap().oifs(), [2, 3]);
    assert_eq!(m.get(&s14).unwrap().oifs(), [2, 3]);
    // Installed later: the same.
    m.install_static(s5, 1, &[2, 3]).unwrap();
    assert_eq!(m.get(&s5).unwrap().oifs(), [2]);
    // Arriving on the boundary: forwarded nowhere (a negative entry), beyond its scope as usual.
    m.install_static(s5, 3, &[1, 2]).unwrap();
    assert_eq!(m.get(&s5).unwrap().oifs(), Vec::<u32>::new());
    assert_eq!(m.get(&s5).unwrap().oil, OIL_EMPTY);
    m.install_static(s8, 3, &[1, 2]).unwrap();
    assert_eq!(m.get(&s8).unwrap().oifs(), [1, 2]);
    // A wider boundary stops organisation-local too; removed, the next install crosses.
    m.set_boundary(3, Some("8".parse().unwrap())).unwrap();
    assert_eq!(m.get(&s8).unwrap().oifs(), Vec::<u32>::new());
    assert_eq!(m.get(&s14).unwrap().oifs(), [2, 3]);
    m.set_boundary(3, None).unwrap();
    m.install_static(s5, 1, &[2, 3]).unwrap();
    assert_eq!(m.get(&s5).unwrap().oifs(), [2, 3]);
}

#[test]
fn copy_counts_go_on_across_list_and_path_changes() {
    let mut m = mirror(&[1, 2, 3, 4]);
    let k = key(1, 1);
    m.install_static(k, 1, &[2, 3]).unwrap();
    forward(&mut m, &k, 10);
    // TTL-expired packets are no copies.
    let slot = m.get(&k).unwrap().slot;
    let s = m.fast_path_mut().stats.get_mut(&slot).unwrap();
    s.packets += 5;
    s.bytes += 500;
    s.ttl_expired += 5;
    s.ttl_expired_bytes += 500;
    assert_eq!(outs(&m, &k), vec![(2, 10, 1000), (3, 10, 1000)]);
    // A copy the egress program dropped is taken back (wrapping) from that interface.
    let d = m.fast_path_mut().oif_stats.entry((slot, 3)).or_default();
    d.out_packets = d.out_packets.wrapping_sub(1);
    d.out_bytes = d.out_bytes.wrapping_sub(100);
    d.out_discards += 1;
    assert_eq!(outs(&m, &k), vec![(2, 10, 1000), (3, 9, 900)]);

    // 4 joins from zero, 2 leaves; back in the list, 2 is a new row from zero too (the
    // discard it counted before is gone with it).
    m.install_static(k, 1, &[3, 4]).unwrap();
    forward(&mut m, &k, 7);
    assert_eq!(outs(&m, &k), vec![(3, 16, 1600), (4, 7, 700)]);
    let d = m.fast_path_mut().oif_stats.entry((slot, 2)).or_default();
    d.out_discards += 1;
    m.install_static(k, 1, &[2, 3, 4]).unwrap();
    forward(&mut m, &k, 1);
    assert_eq!(outs(&m, &k), vec![(2, 1, 100), (3, 17, 1700), (4, 8, 800)]);
    assert_eq!(m.oif_stats(&k).unwrap()[0].1.out_discards, 0);

    // A next hop moves the MFE to the TC path (which counts each copy), and back: the
    // counts go on.
    let nh = Ipv4Addr::new(10, 0, 0, 9);
    let oifs = [Oif::new(2, nh, vec![LEASE_STATIC]), o(3, vec![LEASE_STATIC])];
    m.install_as(k, 1, &oifs, Origin::Static).unwrap();
    forward(&mut m, &k, 4);
    assert_eq!(outs(&m, &k), vec![(2, 5, 500), (3, 21, 2100)]);
    m.install_static(k, 1, &[2, 3]).unwrap();
    forward(&mut m, &k, 2);
    assert_eq!(outs(&m, &k), vec![(2, 7, 700), (3, 23, 2300)]);

    // Removed, the slot's next MFE starts from zero.
    assert!(m.remove(&k).unwrap());
    let k2 = key(2, 1);
    m.install_static(k2, 1, &[2]).unwrap();
    assert_eq!(m.get(&k2).unwrap().slot, slot);
    assert_eq!(outs(&m, &k2), vec![(2, 0, 0)]);
}

#[test]
fn install_writes_oil_before_mfe() {
    let mut m = mirror(&[1, 2, 3]);
    m.install_static(key(1, 1), 1, &[3, 2]).unwrap();
    let log = &m.fast_path().log;
    assert_eq!(log[0], Write::SetOil(1, vec![2, 3]));
    assert_eq!(log[1], Write::ClearStats(0));
    assert_eq!(log[2], Write::SetMfe(key(1, 1), static_value(1, 1, 0)));
}

#[test]
fn iif_is_never_in_the_oil_and_duplicates_fold() {
    let mut m = mirror(&[1, 2]);
    m.install_static(key(1, 1), 1, &[1, 2, 2]).unwrap();
    assert_eq!(m.get(&key(1, 1)).unwrap().oifs(), vec![2]);
}

#[test]
fn identical_oils_are_shared_and_freed_with_the_last_user() {
    let mut m = mirror(&[1, 2, 3]);
    m.install_static(key(1, 1), 1, &[2, 3]).unwrap();
    m.install_static(key(2, 1), 1, &[3, 2]).unwrap();
    assert_eq!(m.oil_count(), 1);
    assert_eq!(m.get(&key(1, 1)).unwrap().oil, m.get(&key(2, 1)).unwrap().oil);
    assert!(m.remove(&key(1, 1)).unwrap());
    assert_eq!(m.fast_path().oils.len(), 1);
    assert!(m.remove(&key(2, 1)).unwrap());
    assert!(m.fast_path().oils.is_empty());
    // The MFE went before its OIL.
    let log = &m.fast_path().log;
    let n = log.len();
    assert_eq!(log[n - 2], Write::RemoveMfe(key(2, 1)));
    assert_eq!(log[n - 1], Write::RemoveOil(1));
}

#[test]
fn changing_an_oil_swaps_ids_with_one_mfe_write() {
    let mut m = mirror(&[1, 2, 3]);
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    m.fast_path_mut().log.clear();
    m.install_static(key(1, 1), 1, &[2, 3]).unwrap();
    let log = m.fast_path().log.clone();
    assert_eq!(
        log,
        vec![
            Write::SetOil(2, vec![2, 3]),
            Write::SetMfe(key(1, 1), static_value(1, 2, 0)),
            Write::RemoveOil(1),
        ]
    );
}

#[test]
fn reinstalling_the_same_mfe_writes_nothing() {
    let mut m = mirror(&[1, 2]);
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    m.fast_path_mut().log.clear();
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    assert!(m.fast_path().log.is_empty());
}

#[test]
fn empty_oil_is_a_negative_cache_entry() {
    let mut m = mirror(&[1]);
    m.install_static(key(1, 1), 1, &[]).unwrap();
    assert_eq!(m.fast_path().mfes[&key(1, 1)].oil, OIL_EMPTY);
    assert!(m.fast_path().oils.is_empty());
}

#[test]
fn unknown_ports_are_refused_without_writes() {
    let mut m = mirror(&[1, 2]);
    assert!(matches!(m.install_static(key(1, 1), 1, &[9]), Err(FastPathError::UnknownPort(9))));
    assert!(matches!(m.install_static(key(1, 1), 9, &[2]), Err(FastPathError::UnknownPort(9))));
    assert!(m.fast_path().log.is_empty());
}

#[test]
fn capacity_is_enforced_and_slots_are_reused_after_clearing() {
    let mut m = Mirror::new(MemFastPath::with_capacity(2));
    m.add_port(1, PortValue::new([0; 6], 0)).unwrap();
    m.add_port(2, PortValue::new([0; 6], 0)).unwrap();
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    m.install_static(key(2, 1), 1, &[2]).unwrap();
    assert!(matches!(m.install_static(key(3, 1), 1, &[2]), Err(FastPathError::Full { .. })));
    assert!(!m.fast_path().mfes.contains_key(&key(3, 1)));
    m.fast_path_mut().stats.insert(0, MfeStats { packets: 7, ..Default::default() });
    m.remove(&key(1, 1)).unwrap();
    m.install_static(key(3, 1), 1, &[2]).unwrap();
    assert_eq!(m.get(&key(3, 1)).unwrap().slot, 0);
    assert_eq!(m.stats(&key(3, 1)).unwrap().unwrap().packets, 0);
}

#[test]
fn ports_in_use_cannot_be_removed() {
    let mut m = mirror(&[1, 2]);
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    assert!(matches!(m.remove_port(2), Err(FastPathError::PortInUse(2, 1))));
    assert!(matches!(m.remove_port(1), Err(FastPathError::PortInUse(1, 1))));
    m.remove(&key(1, 1)).unwrap();
    m.remove_port(2).unwrap();
}

#[test]
fn removing_an_absent_mfe_is_a_no_op() {
    let mut m = mirror(&[1]);
    assert!(!m.remove(&key(1, 1)).unwrap());
    assert!(m.fast_path().log.is_empty());
}

#[test]
fn killing_a_lease_stops_every_copy_it_kept_with_one_write() {
    let mut m = Mirror::new(MemFastPath::with_capacity(2000));
    for p in 1..=3 {
        m.add_port(p, PortValue::new([0; 6], 0)).unwrap();
    }
    let pim2 = m.open_lease().unwrap();
    let pim3 = m.open_lease().unwrap();
    for s in 0..1000u32 {
        let k = Sg::v4(s.to_be_bytes(), [239, 1, 1, 1]);
        m.install(k, 1, &[o(2, vec![pim2]), o(3, vec![pim3])]).unwrap();
    }
    assert_eq!(m.oil_count(), 1, "one shared list");
    m.fast_path_mut().log.clear();
    m.kill_lease(pim2).unwrap();
    assert_eq!(m.fast_path().log, vec![Write::SetLease(pim2, false)]);
    for s in 0..1000u32 {
        let k = Sg::v4(s.to_be_bytes(), [239, 1, 1, 1]);
        assert!(!m.fast_path().forwards(&k, 2), "copy to 2 after the release");
        assert!(m.fast_path().forwards(&k, 3), "the other interface keeps flowing");
    }
}

#[test]
fn a_leg_kept_by_two_owners_survives_one_release() {
    let mut m = mirror(&[1, 2]);
    let (pim, igmp) = (m.open_lease().unwrap(), m.open_lease().unwrap());
    m.install(key(1, 1), 1, &[o(2, vec![pim]), o(2, vec![igmp])]).unwrap();
    assert_eq!(m.get(&key(1, 1)).unwrap().oifs(), vec![2], "one copy per interface");
    m.kill_lease(pim).unwrap();
    assert!(m.fast_path().forwards(&key(1, 1), 2));
    m.kill_lease(igmp).unwrap();
    assert!(!m.fast_path().forwards(&key(1, 1), 2));
}

#[test]
fn a_dead_lease_is_reused_only_once_no_oil_names_it() {
    let mut m = mirror(&[1, 2]);
    let l = m.open_lease().unwrap();
    m.install(key(1, 1), 1, &[o(2, vec![l])]).unwrap();
    m.kill_lease(l).unwrap();
    m.reap_leases();
    assert_ne!(m.open_lease().unwrap(), l, "still named by an OIL: not reusable");
    assert_eq!(m.lease_counts(), (1, 1));
    m.install(key(1, 1), 1, &[]).unwrap();
    m.reap_leases();
    assert_eq!(m.lease_counts(), (1, 0));
    let again = m.open_lease().unwrap();
    assert_eq!(again, l, "recycled");
    assert!(m.fast_path().leases[&l], "and alive again");
}

#[test]
fn statics_forward_without_a_lease_and_unknown_leases_are_refused() {
    let mut m = mirror(&[1, 2]);
    m.install_static(key(1, 1), 1, &[2]).unwrap();
    assert!(m.fast_path().forwards(&key(1, 1), 2));
    assert!(matches!(
        m.install(key(2, 1), 1, &[o(2, vec![77])]),
        Err(FastPathError::UnknownLease(77))
    ));
    let many: Vec<Oif> = (0..5).map(|_| o(2, vec![m.open_lease().unwrap()])).collect();
    assert!(matches!(m.install(key(2, 1), 1, &many), Err(FastPathError::TooManyLeases(2))));
}

/// What a BPF fast path would report after a restart, from the in-memory maps.
fn pinned(fp: &MemFastPath) -> Adopted {
    let named: BTreeSet<u32> = fp
        .oils
        .values()
        .flatten()
        .flat_map(|l| l.leases().collect::<Vec<_>>())
        .filter(|&l| l != LEASE_STATIC)
        .collect();
    Adopted {
        ports: fp.ports.iter().map(|(i, p)| (*i, *p)).collect(),
        oils: fp.oils.clone(),
        mfes: fp.mfes.iter().map(|(k, v)| (*k, *v)).collect(),
        leases: named.into_iter().map(|l| (l, fp.leases[&l])).collect(),
    }
}

#[test]
fn a_restarted_mirror_adopts_the_maps_without_rewriting_them() {
    let mut m = mirror(&[1, 2, 3]);
    let (a, b) = (m.open_lease().unwrap(), m.open_lease().unwrap());
    m.install(key(1, 1), 1, &[o(2, vec![a]), o(3, vec![b])]).unwrap();
    m.install(key(2, 1), 1, &[o(2, vec![a]), o(3, vec![b])]).unwrap();
    m.install(key(3, 1), 1, &[o(3, vec![b])]).unwrap();
    m.install_static(key(4, 1), 1, &[2]).unwrap();
    // A static negative entry: nothing but its mark tells it from an MGM one.
    m.install_static(key(6, 1), 1, &[]).unwrap();
    m.kill_lease(b).unwrap();
    // A list nobody references any more (a crash before it was emptied).
    m.fast_path_mut().oils.insert(40, vec![Leg::new(2, LegValue::default())]);
    let state = pinned(m.fast_path());

    let mut fresh = Mirror::new(MemFastPath::with_capacity(8));
    fresh.fast_path_mut().ports = m.fast_path().ports.clone();
    fresh.fast_path_mut().oils = m.fast_path().oils.clone();
    fresh.fast_path_mut().mfes = m.fast_path().mfes.clone();
    fresh.fast_path_mut().leases = m.fast_path().leases.clone();
    let keys = fresh.adopt(state).unwrap();
    assert_eq!(keys.len(), 5);
    let statics: Vec<Sg> =
        fresh.mfes().filter(|(_, m)| m.origin == Origin::Static).map(|(k, _)| *k).collect();
    assert_eq!(statics, vec![key(4, 1), key(6, 1)], "statics are told apart");
    assert_eq!(fresh.fast_path().log, vec![Write::RemoveOil(40)], "only the orphan list goes");
    assert_eq!(fresh.oil_count(), 3);
    assert_eq!(fresh.lease_counts(), (1, 1), "a alive, b released but named");
    assert!(fresh.fast_path().forwards(&key(1, 1), 2));
    assert!(!fresh.fast_path().forwards(&key(1, 1), 3));
    assert!(fresh.fast_path().forwards(&key(4, 1), 2), "the static entry");
    assert_eq!(fresh.live_leases(), BTreeMap::from([(a, 2)]));

    // Life goes on: new ids do not collide with adopted ones, and freeing works.
    let c = fresh.open_lease().unwrap();
    assert!(c != a && c != b);
    fresh.install(key(5, 1), 1, &[o(3, vec![c])]).unwrap();
    assert_ne!(fresh.get(&key(5, 1)).unwrap().slot, fresh.get(&key(1, 1)).unwrap().slot);
    for k in [1, 2, 3, 4, 5, 6] {
        assert!(fresh.remove(&key(k, 1)).unwrap());
    }
    assert!(fresh.fast_path().oils.is_empty() && fresh.fast_path().mfes.is_empty());
    fresh.reap_leases();
    assert_eq!(fresh.lease_counts(), (2, 0));
}

#[test]
fn next_hops_get_a_leg_each_and_follow_their_neighbour() {
    let mut m = mirror(&[1, 2, 3]);
    let (a, b) = (m.open_lease().unwrap(), m.open_lease().unwrap());
    let nh = |s: &str| -> IpAddr { s.parse().unwrap() };
    let oifs = [
        Oif::new(2, nh("10.5.0.2"), vec![a]),
        Oif::new(2, nh("10.5.0.3"), vec![b]),
        Oif::new(3, Ipv4Addr::UNSPECIFIED, vec![a]),
    ];
    m.install(key(1, 1), 1, &oifs).unwrap();
    let mfe = m.get(&key(1, 1)).unwrap().clone();
    assert_eq!(mfe.legs.len(), 3, "two copies on interface 2, one on 3");
    assert_eq!(m.fast_path().mfes[&key(1, 1)].flags, MFE_F_HOPS, "made by the TC program");
    assert!(m.has_unresolved_neighbours());
    assert_eq!(m.wanted_neighbours(), BTreeSet::from([(2, nh("10.5.0.2")), (2, nh("10.5.0.3"))]));

    // A MAC appears: one new list, swapped in by one MFE write; the old list goes.
    m.fast_path_mut().log.clear();
    m.set_neighbour(2, nh("10.5.0.2"), [2, 0, 0, 0, 0, 2]).unwrap();
    let log = m.fast_path().log.clone();
    assert!(
        matches!(log.as_slice(), [Write::SetOil(..), Write::SetMfe(..), Write::RemoveOil(_)]),
        "{log:?}"
    );
    let legs = &m.get(&key(1, 1)).unwrap().legs;
    assert_eq!(legs.iter().filter(|l| l.mac == [2, 0, 0, 0, 0, 2]).count(), 1);
    m.fast_path_mut().log.clear();
    m.set_neighbour(2, nh("10.5.0.2"), [2, 0, 0, 0, 0, 2]).unwrap();
    assert!(m.fast_path().log.is_empty(), "an unchanged MAC writes nothing");
    assert!(m.has_unresolved_neighbours(), "10.5.0.3 still has no MAC");
    m.set_neighbour(2, nh("10.5.0.3"), [2, 0, 0, 0, 0, 3]).unwrap();
    assert!(!m.has_unresolved_neighbours());

    // Plain lists stay XDP broadcasts.
    m.install(key(2, 1), 1, &[o(3, vec![a])]).unwrap();
    assert_eq!(m.fast_path().mfes[&key(2, 1)].flags, 0);
    let too_many: Vec<Oif> = (0..=MAX_HOPS as u8)
        .map(|i| Oif::new(2, Ipv4Addr::new(10, 6, 0, i + 1), vec![a]))
        .collect();
    assert!(matches!(m.install(key(3, 1), 1, &too_many), Err(FastPathError::OilTooLong(_))));
    // The last MFE sending to next hops goes: nothing left to keep resolved.
    m.remove(&key(1, 1)).unwrap();
    assert!(m.wanted_neighbours().is_empty());
}

/// IPv6 next hops (link-local, as routing protocols give them) work as IPv4's; a next hop
/// of the other family than the entry's is refused.
#[test]
fn ipv6_next_hops_get_a_leg_each_and_follow_their_neighbour() {
    let mut m = mirror(&[1, 2, 3]);
    let a = m.open_lease().unwrap();
    let nh = |s: &str| -> IpAddr { s.parse().unwrap() };
    let k = Sg::new(nh("2001:db8:1::1"), nh("ff3e::8000:1"));
    let oifs = [
        Oif::new(2, nh("fe80::2"), vec![a]),
        Oif::new(2, nh("fe80::3"), vec![a]),
        Oif::new(3, nh("::"), vec![a]),
    ];
    m.install(k, 1, &oifs).unwrap();
    assert_eq!(m.get(&k).unwrap().legs.len(), 3);
    assert_eq!(m.fast_path().mfes[&k].flags, MFE_F_HOPS);
    assert_eq!(m.wanted_neighbours(), BTreeSet::from([(2, nh("fe80::2")), (2, nh("fe80::3"))]));
    m.set_neighbour(2, nh("fe80::2"), [2, 0, 0, 0, 0, 2]).unwrap();
    let legs = &m.get(&k).unwrap().legs;
    assert_eq!(legs.iter().filter(|l| l.mac == [2, 0, 0, 0, 0, 2]).count(), 1);
    assert_eq!(m.unresolved_neighbours(), vec![(2, nh("fe80::3"))]);
    // The same address of the other family is another neighbour.
    m.set_neighbour(2, nh("10.0.0.3"), [2, 0, 0, 0, 0, 3]).unwrap();
    assert!(m.has_unresolved_neighbours());
    let mixed = [Oif::new(2, nh("10.5.0.2"), vec![a])];
    assert!(matches!(m.install(k, 1, &mixed), Err(FastPathError::Family(..))));
    m.remove(&k).unwrap();
    assert!(m.wanted_neighbours().is_empty());
}

/// A packet that read its MFE just before the MFE was given another list may still be on
/// its way through the old one: the old list stays whole, its id and its leases unused,
/// until a grace period that began after the switch has ended.
#[test]
fn a_replaced_list_stays_whole_until_a_grace_period_has_passed() {
    let mut m = mirror(&[1, 2, 3, 4]);
    m.fast_path_mut().hold_graces = true;
    let (a, b) = (m.open_lease().unwrap(), m.open_lease().unwrap());
    let k = key(1, 1);
    m.install(k, 1, &[o(2, vec![a]), o(3, vec![a])]).unwrap();
    let old = m.get(&k).unwrap().oil;
    m.install(k, 1, &[o(2, vec![b]), o(3, vec![b]), o(4, vec![b])]).unwrap();
    let new = m.get(&k).unwrap().oil;
    assert_ne!(old, new);
    let whole = |m: &Mirror<MemFastPath>| {
        m.fast_path().oils.get(&old).map(|l| l.iter().map(|l| l.ifindex).collect::<Vec<_>>())
    };
    assert_eq!(whole(&m), Some(vec![2, 3]));
    assert_eq!(m.retired_oils(), 1);
    // Its lease, killed and reaped, is not recycled while the old list names it.
    m.kill_lease(a).unwrap();
    m.reap_leases();
    assert_eq!(m.lease_counts(), (1, 1));
    // Another MFE's new list does not get its id.
    let k2 = key(2, 1);
    m.install(k2, 1, &[o(4, vec![b])]).unwrap();
    assert_ne!(m.get(&k2).unwrap().oil, old);
    m.reclaim().unwrap();
    assert_eq!(whole(&m), Some(vec![2, 3]), "emptied before its grace period ended");

    m.fast_path_mut().end_graces();
    m.reclaim().unwrap();
    assert_eq!(whole(&m), None);
    assert_eq!(m.retired_oils(), 0);
    m.reap_leases();
    assert_eq!(m.lease_counts(), (1, 0));
    // Now free: the next new list takes its id.
    m.install(key(3, 1), 1, &[o(2, vec![b])]).unwrap();
    assert_eq!(m.get(&key(3, 1)).unwrap().oil, old);
}

/// Removing the MFE retires its list the same way.
#[test]
fn a_removed_mfes_list_waits_for_a_grace_period_too() {
    let mut m = mirror(&[1, 2]);
    m.fast_path_mut().hold_graces = true;
    let k = key(1, 1);
    m.install_static(k, 1, &[2]).unwrap();
    let oil = m.get(&k).unwrap().oil;
    m.remove(&k).unwrap();
    assert!(m.fast_path().oils.contains_key(&oil));
    m.fast_path_mut().end_graces();
    m.reclaim().unwrap();
    assert!(!m.fast_path().oils.contains_key(&oil));
}

/// After a restart a list no adopted MFE names (a crash before it was emptied, or a merged
/// duplicate that was named until the merge) is retired like any other: emptied after a
/// grace period, and a lease only it names recycled then.
#[test]
fn an_adopted_orphan_list_waits_for_a_grace_period() {
    let mut m = mirror(&[1, 2]);
    let a = m.open_lease().unwrap();
    m.install(key(1, 1), 1, &[o(2, vec![a])]).unwrap();
    let orphan_lease = m.open_lease().unwrap();
    let mut leases = LegValue::default();
    leases.leases[0] = orphan_lease;
    m.fast_path_mut().oils.insert(40, vec![Leg::new(2, leases)]);
    let state = pinned(m.fast_path());

    let mut fresh = Mirror::new(MemFastPath::with_capacity(8));
    fresh.fast_path_mut().hold_graces = true;
    fresh.fast_path_mut().ports = m.fast_path().ports.clone();
    fresh.fast_path_mut().oils = m.fast_path().oils.clone();
    fresh.fast_path_mut().mfes = m.fast_path().mfes.clone();
    fresh.adopt(state).unwrap();
    assert!(fresh.fast_path().oils.contains_key(&40));
    assert_eq!(fresh.retired_oils(), 1);
    // Dead to the mirror at once, recycled only once the list is gone.
    assert_eq!(fresh.lease_counts(), (1, 1));
    fresh.reap_leases();
    assert_eq!(fresh.lease_counts(), (1, 1));
    fresh.fast_path_mut().end_graces();
    fresh.reclaim().unwrap();
    fresh.reap_leases();
    assert!(!fresh.fast_path().oils.contains_key(&40));
    assert_eq!(fresh.lease_counts(), (1, 0));
    assert_eq!(fresh.open_lease().unwrap(), orphan_lease);
}
