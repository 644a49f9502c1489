// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the MGM core, one per edge case of docs/mgm-reference.md §6 (named
//! `eNN_...` after it), and property tests over random call sequences.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const T0: Duration = Duration::ZERO;
const BOTH: u32 = MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG;
const PIM: u32 = 103;
const DVMRP: u32 = 104;

thread_local! {
    /// The family the edge cases run in: each runs as written (IPv4), and again in IPv6
    /// (the `ipv6` module at the end), with every address mapped by [`ip`].
    static FAMILY: std::cell::Cell<Family> = const { std::cell::Cell::new(Family::Ipv4) };
}

/// An address of the test's family: the IPv4 address written, or its IPv6 image, of the same
/// kind and in the same order (unspecified, all-ones, link-local group, group, unicast).
fn ip(s: &str) -> IpAddr {
    ip_n(s.parse::<Ipv4Addr>().unwrap().to_bits())
}
fn ip_n(x: u32) -> IpAddr {
    let a = Ipv4Addr::from_bits(x);
    if FAMILY.get() == Family::Ipv4 {
        return a.into();
    }
    let x = u128::from(x);
    let v6 = match a {
        _ if a.is_unspecified() => 0,
        Ipv4Addr::BROADCAST => u128::MAX,
        _ if a.octets()[..3] == [224, 0, 0] => 0xff02 << 112 | x,
        _ if a.is_multicast() => 0xff0e << 112 | x,
        _ => 0x2001_0db8 << 96 | x,
    };
    Ipv6Addr::from_bits(v6).into()
}
fn ifc(i: u32) -> Iface {
    Iface::new(i, FAMILY.get().any())
}
fn sg(s: &str, g: &str) -> Sg {
    Sg::new(ip(s), ip(g))
}
fn p_sg(s: &str, g: &str) -> Pattern {
    Pattern::sg(sg(s, g))
}
fn p_g(g: &str) -> Pattern {
    Pattern::star_g(ip(g))
}
fn p_all() -> Pattern {
    Pattern::any(FAMILY.get())
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mgr() -> Manager {
    Manager::new(Settings::default())
}

/// Events delivered to `to`, in order.
fn events(effects: &[Effect], to: Handle) -> Vec<Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { to: t, event } if *t == to => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn all_events(effects: &[Effect]) -> Vec<(Handle, Event)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { to, event } => Some((*to, event.clone())),
            _ => None,
        })
        .collect()
}

/// A fast-path write with the outgoing interfaces only (who justifies them is checked by the
/// lease tests).
#[derive(Debug, PartialEq, Eq)]
enum W {
    Install(Sg, Iface, Vec<Iface>),
    Remove(Sg),
}

/// Fast-path writes only.
fn writes(effects: &[Effect]) -> Vec<W> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Install { sg, iif, oifs } => {
                Some(W::Install(*sg, *iif, oifs.keys().copied().collect()))
            }
            Effect::Remove { sg } => Some(W::Remove(*sg)),
            Effect::Notify { .. } | Effect::Owner { .. } => None,
        })
        .collect()
}

fn oifs(m: &Manager, s: Sg) -> Vec<Iface> {
    m.get_mfe(s, 1, T0).unwrap().oifs
}

/// Drives MFE creation for `s` arriving on `ifindex`: answers RPF with the proposal and every
/// creation alert with "all enabled". Returns every effect of the process.
fn create(m: &mut Manager, s: Sg, ifindex: u32) -> Vec<Effect> {
    m.new_packet(s, ifindex, b"hdr", T0);
    let mut all = Vec::new();
    loop {
        let eff = m.take_effects();
        if eff.is_empty() {
            return all;
        }
        for (to, ev) in all_events(&eff) {
            match ev {
                Event::Rpf { request, iif, upstream, .. } => {
                    m.answer_rpf(to, request, iif, upstream, T0).unwrap()
                }
                Event::CreationAlert { request, .. } => {
                    m.answer_creation(to, request, &[], T0).unwrap()
                }
                _ => {}
            }
        }
        all.extend(eff);
    }
}

/// Standard set-up: PIM owns interfaces 1..=4, a membership (*,G) forward on 2 and 3.
fn pim_with_members() -> (Manager, Handle) {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    for i in 1..=4 {
        m.take_interface(pim, ifc(i)).unwrap();
    }
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    m.take_effects();
    (m, pim)
}

#[test]
fn e01_register_twice_with_the_same_ids_already_exists_other_component_ok() {
    let mut m = mgr();
    let a = m.register(PIM, 1).unwrap();
    assert_eq!(m.register(PIM, 1), Err(MgmError::AlreadyExists));
    let b = m.register(PIM, 2).unwrap();
    assert_ne!(a, b);
}

#[test]
fn e02_unknown_or_deregistered_handle_is_invalid_parameter_and_changes_nothing() {
    let mut m = mgr();
    let h = m.register(PIM, 1).unwrap();
    m.deregister(h, T0).unwrap();
    let bogus = Handle(999);
    for bad in [h, bogus] {
        assert_eq!(m.deregister(bad, T0), Err(MgmError::InvalidParameter));
        assert_eq!(m.take_interface(bad, ifc(1)), Err(MgmError::InvalidParameter));
        assert_eq!(m.release_interface(bad, ifc(1), T0), Err(MgmError::InvalidParameter));
        assert_eq!(
            m.add_membership(bad, p_g("239.1.1.1"), ifc(1), BOTH, T0),
            Err(MgmError::InvalidParameter)
        );
        assert_eq!(
            m.delete_membership(bad, p_g("239.1.1.1"), ifc(1), BOTH, T0),
            Err(MgmError::InvalidParameter)
        );
        assert_eq!(
            m.set_mfe(bad, sg("10.0.0.1", "239.1.1.1"), ifc(1), ip("0.0.0.0"), T0),
            Err(MgmError::InvalidParameter)
        );
        assert_eq!(m.enum_start(bad, EnumType::AllSources), Err(MgmError::InvalidParameter));
    }
    assert_eq!(m.protocol_on_interface(ifc(1)), Err(MgmError::NotFound));
    assert!(m.take_effects().is_empty());
}

#[test]
fn e03_taking_an_interface_owned_by_another_routing_protocol_is_already_exists() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    assert_eq!(m.take_interface(dvmrp, ifc(1)), Err(MgmError::AlreadyExists));
    assert_eq!(m.protocol_on_interface(ifc(1)), Ok((PIM, 1)));
}

#[test]
fn e04_igmp_co_owns_a_routing_interface_but_a_second_igmp_cannot() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    let igmp2 = m.register(PROTO_IP_IGMP, 2).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    assert_eq!(m.take_interface(igmp2, ifc(1)), Err(MgmError::AlreadyExists));
    assert_eq!(m.protocol_on_interface(ifc(1)), Ok((PIM, 1)), "the routing owner is reported");
}

#[test]
fn e05_routing_protocol_takes_an_igmp_interface_and_igmp_is_disabled_then_enabled() {
    let mut m = mgr();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    m.take_effects();
    m.take_interface(pim, ifc(1)).unwrap();
    assert_eq!(
        events(&m.take_effects(), igmp),
        vec![Event::DisableIgmp { iface: ifc(1) }, Event::EnableIgmp { iface: ifc(1) }]
    );
}

/// A routing protocol taking an interface IGMP already has receivers on learns them (one
/// local join per join-state membership of IGMP's there, between IGMP's disable and enable),
/// so that the local leaves it gets later are for joins it heard of.
#[test]
fn a_routing_protocol_taking_an_igmp_interface_learns_its_receivers() {
    let mut m = mgr();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(2)).unwrap();
    m.add_membership(igmp, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    m.add_membership(igmp, p_sg("10.0.0.1", "239.1.1.2"), ifc(1), BOTH, T0).unwrap();
    m.add_membership(igmp, p_g("239.1.1.3"), ifc(1), MGM_FORWARD_STATE_FLAG, T0).unwrap();
    m.add_membership(igmp, p_g("239.1.1.4"), ifc(2), BOTH, T0).unwrap();
    m.take_effects();
    m.take_interface(pim, ifc(1)).unwrap();
    let eff = m.take_effects();
    assert_eq!(
        events(&eff, pim),
        vec![
            Event::LocalJoin { entry: p_g("239.1.1.1").entry(), iface: ifc(1) },
            Event::LocalJoin { entry: p_sg("10.0.0.1", "239.1.1.2").entry(), iface: ifc(1) },
        ],
        "join state on this interface only (not forward-only, not interface 2)"
    );
    let order: Vec<&str> = all_events(&eff)
        .iter()
        .map(|(_, e)| match e {
            Event::DisableIgmp { .. } => "disable",
            Event::EnableIgmp { .. } => "enable",
            _ => "join",
        })
        .collect();
    assert_eq!(order, ["disable", "join", "join", "enable"]);
    m.delete_membership(igmp, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    assert_eq!(
        events(&m.take_effects(), pim),
        vec![Event::LocalLeave { entry: p_g("239.1.1.1").entry(), iface: ifc(1) }]
    );
}

/// An MFE whose outgoing list goes from empty to non-empty (its first receiver, not a new
/// membership entry) is a join alert with member_add false to the owner of its incoming
/// interface: the mirror of the prune alert with member_delete false.
#[test]
fn an_mfe_gaining_its_first_receiver_is_a_join_alert_without_member_add() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    for i in 1..=3 {
        m.take_interface(pim, ifc(i)).unwrap();
    }
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    assert!(oifs(&m, s).is_empty(), "created empty");
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    let ev = events(&m.take_effects(), pim);
    assert_eq!(
        ev,
        vec![Event::JoinAlert { entry: Pattern::sg(s).entry(), member_add: false }],
        "to the incoming interface's owner (also the adder: the membership alert skips it)"
    );
    // A second receiver changes the list but not its emptiness: no alert.
    m.add_membership(pim, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    assert!(events(&m.take_effects(), pim).is_empty());
}

#[test]
fn e06_same_ifindex_different_next_hops_are_owned_independently() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    let a = Iface::new(5, ip("10.0.0.1"));
    let b = Iface::new(5, ip("10.0.0.2"));
    m.take_interface(pim, a).unwrap();
    m.take_interface(dvmrp, b).unwrap();
    assert_eq!(m.protocol_on_interface(a), Ok((PIM, 1)));
    assert_eq!(m.protocol_on_interface(b), Ok((DVMRP, 1)));
    assert_eq!(m.protocol_on_interface(ifc(5)), Err(MgmError::NotFound));
    m.release_interface(pim, a, T0).unwrap();
    assert_eq!(m.protocol_on_interface(b), Ok((DVMRP, 1)));
}

#[test]
fn e07_taking_the_same_interface_twice_is_an_idempotent_success() {
    let mut m = mgr();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_effects();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    assert!(m.take_effects().is_empty(), "no second disable/enable round");
}

#[test]
fn e08_releasing_an_interface_not_owned_or_never_seen_is_invalid_parameter() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    m.take_interface(dvmrp, ifc(1)).unwrap();
    assert_eq!(m.release_interface(pim, ifc(1), T0), Err(MgmError::InvalidParameter));
    assert_eq!(m.release_interface(pim, ifc(9), T0), Err(MgmError::InvalidParameter));
    assert_eq!(m.protocol_on_interface(ifc(1)), Ok((DVMRP, 1)));
}

#[test]
fn e09_release_removes_only_that_clients_entries_for_that_next_hop() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    let a = Iface::new(5, ip("10.0.0.1"));
    let b = Iface::new(5, ip("10.0.0.2"));
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, a).unwrap();
    m.take_interface(dvmrp, b).unwrap();
    m.take_interface(dvmrp, ifc(2)).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), a, BOTH, T0).unwrap();
    m.add_membership(dvmrp, p_g("239.1.1.1"), b, BOTH, T0).unwrap();
    m.add_membership(dvmrp, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    let s = sg("10.0.0.9", "239.1.1.1");
    create(&mut m, s, 1);
    assert_eq!(oifs(&m, s), vec![ifc(2), a, b]);
    m.release_interface(pim, a, T0).unwrap();
    assert_eq!(oifs(&m, s), vec![ifc(2), b], "only pim's next hop went");
    assert_eq!(writes(&m.take_effects()), vec![W::Install(s, ifc(1), vec![ifc(2), b])]);
}

#[test]
fn e10_releasing_the_incoming_interface_deletes_its_mfes() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.release_interface(pim, ifc(1), T0).unwrap();
    assert_eq!(m.get_mfe(s, 1, T0), Err(MgmError::NotFound));
    let eff = m.take_effects();
    assert_eq!(writes(&eff), vec![W::Remove(s)]);
    assert!(events(&eff, pim).contains(&Event::MfeDeleted {
        source: s.source,
        group: s.group,
        reason: DeleteReason::Released
    }));
}

#[test]
fn e11_release_deletes_the_clients_memberships_with_prune_alerts() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.take_effects();
    m.release_interface(pim, ifc(2), T0).unwrap();
    // pim was the last client with (*,G): every other client hears of it.
    let ev = events(&m.take_effects(), dvmrp);
    assert!(matches!(ev.as_slice(), [Event::PruneAlert { member_delete: true, .. }]), "{ev:?}");
    let e = m.enum_start(pim, EnumType::AllSources).unwrap();
    assert!(m.enum_next(pim, e, 10).unwrap().entries.is_empty());
}

#[test]
fn e12_release_on_a_co_owned_interface_keeps_igmp_state_and_toggles_igmp() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.take_interface(igmp, ifc(2)).unwrap();
    m.add_membership(igmp, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    let s = sg("10.0.0.1", "239.1.1.1");
    let both: Oil = [(ifc(2), BTreeSet::from([pim, igmp]))].into();
    assert!(create(&mut m, s, 1).contains(&Effect::Install { sg: s, iif: ifc(1), oifs: both }));
    m.release_interface(pim, ifc(2), T0).unwrap();
    let eff = m.take_effects();
    let ev = events(&eff, igmp);
    assert_eq!(ev.first(), Some(&Event::DisableIgmp { iface: ifc(2) }));
    assert_eq!(ev.last(), Some(&Event::EnableIgmp { iface: ifc(2) }));
    assert_eq!(oifs(&m, s), vec![ifc(2)], "IGMP's membership still forwards there");
    // Same interfaces, but now only IGMP keeps the copy to 2 alive: the fast path is told, so
    // the release of pim's lease there does not stop IGMP's traffic.
    let installs: Vec<&Effect> =
        eff.iter().filter(|e| matches!(e, Effect::Install { .. })).collect();
    let want: Oil = [(ifc(2), BTreeSet::from([igmp]))].into();
    assert_eq!(installs, vec![&Effect::Install { sg: s, iif: ifc(1), oifs: want }]);
    assert_eq!(m.protocol_on_interface(ifc(2)), Ok((PROTO_IP_IGMP, 1)));
}

/// Ownership changes are effects (the fast path opens and kills leases from them), one per
/// change and none otherwise.
#[test]
fn ownership_changes_come_out_as_effects_and_only_them() {
    let owner_effects = |m: &mut Manager| -> Vec<(Iface, Handle, bool)> {
        m.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Owner { iface, owner, owns } => Some((iface, owner, owns)),
                _ => None,
            })
            .collect()
    };
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    assert_eq!(owner_effects(&mut m), vec![(ifc(1), pim, true), (ifc(1), igmp, true)]);
    m.take_interface(pim, ifc(1)).unwrap(); // already its own: nothing changes
    m.add_membership(pim, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    assert_eq!(owner_effects(&mut m), vec![]);
    m.release_interface(pim, ifc(1), T0).unwrap();
    assert_eq!(owner_effects(&mut m), vec![(ifc(1), pim, false)]);
    m.client_gone(igmp, T0);
    assert_eq!(owner_effects(&mut m), vec![(ifc(1), igmp, false)]);
}

#[test]
fn e13_deregister_is_refused_while_owning_interfaces_then_succeeds() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    assert_eq!(m.deregister(pim, T0), Err(MgmError::CanNotComplete));
    assert!(m.is_registered(pim));
    m.release_interface(pim, ifc(1), T0).unwrap();
    m.deregister(pim, T0).unwrap();
    assert!(!m.is_registered(pim));
    assert!(m.register(PIM, 1).is_ok(), "ids are free again");
}

#[test]
fn e14_adding_an_sg_membership_changes_only_that_mfe() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    let b = sg("10.0.0.2", "239.1.1.1");
    create(&mut m, a, 1);
    create(&mut m, b, 1);
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(4), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(2), ifc(3), ifc(4)]);
    assert_eq!(oifs(&m, b), vec![ifc(2), ifc(3)]);
    assert_eq!(
        writes(&m.take_effects()),
        vec![W::Install(a, ifc(1), vec![ifc(2), ifc(3), ifc(4)])]
    );
}

#[test]
fn e15_star_g_reaches_every_mfe_of_the_group_now_and_later() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    let other = sg("10.0.0.1", "239.2.2.2");
    create(&mut m, a, 1);
    create(&mut m, other, 1);
    m.add_membership(pim, p_g("239.1.1.1"), ifc(4), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(2), ifc(3), ifc(4)]);
    assert_eq!(oifs(&m, other), vec![]);
    let later = sg("10.0.0.7", "239.1.1.1");
    create(&mut m, later, 1);
    assert_eq!(oifs(&m, later), vec![ifc(2), ifc(3), ifc(4)]);
}

#[test]
fn e16_star_star_reaches_every_mfe() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    let b = sg("10.0.0.2", "239.9.9.9");
    create(&mut m, a, 1);
    create(&mut m, b, 1);
    m.add_membership(pim, p_all(), ifc(4), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(2), ifc(3), ifc(4)]);
    assert_eq!(oifs(&m, b), vec![ifc(4)]);
}

#[test]
fn e17_overlapping_sg_and_star_g_keep_the_interface_until_both_are_gone() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    create(&mut m, a, 1);
    m.delete_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(2), ifc(3)], "(S,G) still wants ifc 2");
    m.delete_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(3)]);
}

#[test]
fn e18_the_incoming_interface_is_never_in_its_own_oil() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, a, 2); // arrives on 2, where there is a membership
    assert_eq!(oifs(&m, a), vec![ifc(3)]);
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(3)]);
    m.set_mfe(pim, a, ifc(3), ip("0.0.0.0"), T0).unwrap();
    assert_eq!(oifs(&m, a), vec![ifc(2)], "after the IIF moved to 3, 2 is an output and 3 not");
}

#[test]
fn e19_membership_on_an_interface_the_client_does_not_own_is_invalid_parameter() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    m.take_interface(dvmrp, ifc(1)).unwrap();
    for iface in [ifc(1), ifc(2)] {
        assert_eq!(
            m.add_membership(pim, p_g("239.1.1.1"), iface, BOTH, T0),
            Err(MgmError::InvalidParameter)
        );
    }
    // Masks other than all-ones/zero, (S,*) and non-multicast groups are refused too.
    assert_eq!(
        Pattern::from_masks(
            ip("10.0.0.1"),
            ip("255.255.0.0"),
            ip("239.1.1.1"),
            ip("255.255.255.255")
        ),
        Err(MgmError::InvalidParameter)
    );
    assert_eq!(
        Pattern::from_masks(ip("10.0.0.1"), ip("255.255.255.255"), ip("0.0.0.0"), ip("0.0.0.0")),
        Err(MgmError::InvalidParameter)
    );
    assert_eq!(
        Pattern::from_masks(ip("0.0.0.0"), ip("0.0.0.0"), ip("10.1.1.1"), ip("255.255.255.255")),
        Err(MgmError::InvalidParameter)
    );
    assert_eq!(
        Pattern::from_masks(ip("0.0.0.0"), ip("0.0.0.0"), ip("239.1.1.1"), ip("255.255.255.255")),
        Ok(p_g("239.1.1.1"))
    );
}

#[test]
fn e20_deleting_a_membership_that_does_not_exist_is_not_found_and_changes_nothing() {
    let (mut m, pim) = pim_with_members();
    let a = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, a, 1);
    assert_eq!(
        m.delete_membership(pim, p_g("239.5.5.5"), ifc(2), BOTH, T0),
        Err(MgmError::NotFound)
    );
    m.add_membership(pim, p_g("239.6.6.6"), ifc(2), MGM_JOIN_STATE_FLAG, T0).unwrap();
    m.take_effects();
    assert_eq!(
        m.delete_membership(pim, p_g("239.6.6.6"), ifc(2), MGM_FORWARD_STATE_FLAG, T0),
        Err(MgmError::NotFound),
        "no forward state to clear"
    );
    assert!(m.take_effects().is_empty());
    assert_eq!(oifs(&m, a), vec![ifc(2), ifc(3)]);
}

#[test]
fn e21_first_membership_for_a_group_alerts_the_other_routing_protocols_not_the_adder() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    let eff = m.take_effects();
    assert_eq!(
        events(&eff, dvmrp),
        vec![Event::JoinAlert { entry: p_g("239.1.1.1").entry(), member_add: true }]
    );
    assert!(events(&eff, pim).is_empty() && events(&eff, igmp).is_empty());
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert!(m.take_effects().is_empty(), "not the first any more");
}

#[test]
fn e22_igmp_add_on_a_shared_interface_is_a_local_join_to_the_routing_owner() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    m.take_effects();
    m.add_membership(igmp, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    assert_eq!(
        events(&m.take_effects(), pim),
        vec![Event::LocalJoin { entry: p_g("239.1.1.1").entry(), iface: ifc(1) }],
        "a local join, and no join alert (pim is the responsible protocol)"
    );
}

#[test]
fn e23_igmp_delete_on_a_shared_interface_is_a_local_leave() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(igmp, ifc(1)).unwrap();
    m.add_membership(igmp, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    m.take_effects();
    m.delete_membership(igmp, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    let ev = events(&m.take_effects(), pim);
    assert!(ev.contains(&Event::LocalLeave { entry: p_g("239.1.1.1").entry(), iface: ifc(1) }));
}

/// Three routing protocols each with (*,G) on their own interface.
fn three_with_star_g() -> (Manager, [Handle; 3]) {
    let mut m = mgr();
    let hs =
        [m.register(PIM, 1).unwrap(), m.register(DVMRP, 1).unwrap(), m.register(200, 1).unwrap()];
    for (i, h) in hs.iter().enumerate() {
        m.take_interface(*h, ifc(i as u32 + 1)).unwrap();
        m.add_membership(*h, p_g("239.1.1.1"), ifc(i as u32 + 1), BOTH, T0).unwrap();
    }
    m.take_effects();
    (m, hs)
}

fn prune_targets(eff: &[Effect]) -> Vec<Handle> {
    all_events(eff)
        .into_iter()
        .filter(|(_, e)| matches!(e, Event::PruneAlert { member_delete: true, .. }))
        .map(|(h, _)| h)
        .collect()
}

#[test]
fn e24_star_g_prune_when_the_second_to_last_client_leaves_alerts_only_the_remaining_one() {
    let (mut m, [a, b, c]) = three_with_star_g();
    m.delete_membership(a, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    assert!(prune_targets(&m.take_effects()).is_empty(), "two clients still have it");
    m.delete_membership(b, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(prune_targets(&m.take_effects()), vec![c]);
}

#[test]
fn e25_star_g_prune_when_the_last_client_leaves_alerts_all_others() {
    let (mut m, [a, b, c]) = three_with_star_g();
    m.delete_membership(a, p_g("239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    m.delete_membership(b, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.take_effects();
    m.delete_membership(c, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    assert_eq!(prune_targets(&m.take_effects()), vec![a, b]);
}

#[test]
fn e26_sg_prune_alerts_only_the_owner_of_the_incoming_interface() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    let other = m.register(200, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap(); // towards the source
    m.take_interface(dvmrp, ifc(2)).unwrap();
    m.take_interface(other, ifc(3)).unwrap();
    m.add_membership(dvmrp, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.take_effects();
    m.delete_membership(dvmrp, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(prune_targets(&m.take_effects()), vec![pim]);
}

#[test]
fn e27_oil_change_prune_alert_without_member_delete_and_its_timeout_answer() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.delete_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.take_effects();
    m.delete_membership(pim, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    let ev = events(&m.take_effects(), pim);
    let request = ev
        .iter()
        .find_map(|e| match e {
            Event::PruneAlert {
                request: Some(r), member_delete: false, timeout_secs: 900, ..
            } => Some(*r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no prune alert with a request: {ev:?}"));
    assert_eq!(m.get_mfe(s, 1, T0).unwrap().timeout_secs, 900, "default until answered");
    m.answer_prune(pim, request, secs(60), secs(10)).unwrap();
    let v = m.get_mfe(s, 1, secs(10)).unwrap();
    assert_eq!((v.timeout_secs, v.expiry_secs), (60, 60));
    assert_eq!(m.answer_prune(pim, request, secs(5), T0), Err(MgmError::NotFound), "answered once");
}

/// Numbers from clients at their extremes, and time running far past them, never panic: an
/// out-of-range timeout is refused and leaves the request open; the longest accepted one
/// saturates instead of overflowing.
#[test]
fn prune_timeouts_at_their_extremes_and_time_far_ahead_are_safe() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.prove(s);
    m.delete_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.delete_membership(pim, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    let request = events(&m.take_effects(), pim)
        .iter()
        .find_map(|e| match e {
            Event::PruneAlert { request: Some(r), .. } => Some(*r),
            _ => None,
        })
        .expect("a prune alert with a request");
    for bad in [u64::MAX, u64::MAX - 30, u64::from(u32::MAX) + 1] {
        let r = m.answer_prune(pim, request, secs(bad), secs(10));
        assert_eq!(r, Err(MgmError::InvalidParameter), "{bad} s");
    }
    m.answer_prune(pim, request, MAX_MFE_TIMEOUT, Duration::MAX - secs(1)).unwrap();
    let late = Duration::MAX - secs(10);
    m.refresh(s, late);
    m.tick(late + secs(5));
    assert!(m.get_mfe(s, 1, late).is_ok(), "its expiry saturated: still there");
    m.tick(Duration::MAX);
    assert!(m.get_mfe(s, 1, Duration::MAX).is_err(), "expired at the end of time");
}

#[test]
fn e28_new_traffic_asks_the_owner_of_the_interface_towards_the_source_and_uses_its_answer() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    m.new_packet(s, 4, b"ip header", T0);
    let ev = events(&m.take_effects(), pim);
    let [Event::Rpf { request, iif, header, .. }] = ev.as_slice() else { panic!("{ev:?}") };
    assert_eq!((*iif, header.as_slice()), (ifc(4), b"ip header".as_slice()));
    m.new_packet(s, 4, b"again", T0);
    assert!(m.take_effects().is_empty(), "one question per (S,G)");
    m.answer_rpf(pim, *request, ifc(1), ip("10.9.9.9"), T0).unwrap();
    for (to, ev) in all_events(&m.take_effects()) {
        if let Event::CreationAlert { request, .. } = ev {
            m.answer_creation(to, request, &[], T0).unwrap();
        }
    }
    let v = m.get_mfe(s, 1, T0).unwrap();
    assert_eq!((v.iif, v.upstream), (ifc(1), ip("10.9.9.9")));
    assert_eq!(writes(&m.take_effects()), vec![W::Install(s, ifc(1), vec![ifc(2), ifc(3)])]);
}

#[test]
fn traffic_on_an_interface_nobody_owns_creates_nothing() {
    let (mut m, _pim) = pim_with_members();
    m.new_packet(sg("10.0.0.1", "239.1.1.1"), 9, b"", T0);
    m.tick(secs(10));
    assert!(m.take_effects().is_empty());
    assert_eq!(m.get_mfe(sg("10.0.0.1", "239.1.1.1"), 1, T0), Err(MgmError::NotFound));
}

#[test]
fn e29_an_iif_change_is_installed_and_traffic_on_the_old_iif_is_wrong_interface() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.set_mfe(pim, s, ifc(4), ip("10.0.0.254"), T0).unwrap();
    assert_eq!(writes(&m.take_effects()), vec![W::Install(s, ifc(4), vec![ifc(2), ifc(3)])]);
    m.new_packet(s, 1, b"h", T0);
    assert_eq!(
        events(&m.take_effects(), pim),
        vec![Event::WrongInterface {
            source: s.source,
            group: s.group,
            iface: ifc(1),
            header: b"h".to_vec()
        }]
    );
}

#[test]
fn e30_creation_alerts_go_to_oil_owners_each_seeing_only_its_own_interfaces() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    let bystander = m.register(200, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.take_interface(dvmrp, ifc(3)).unwrap();
    m.take_interface(bystander, ifc(4)).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.add_membership(dvmrp, p_g("239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    m.take_effects();
    let eff = create(&mut m, sg("10.0.0.1", "239.1.1.1"), 1);
    let alerts: Vec<(Handle, Vec<Iface>)> = all_events(&eff)
        .into_iter()
        .filter_map(|(h, e)| match e {
            Event::CreationAlert { oifs, .. } => Some((h, oifs.iter().map(|o| o.iface).collect())),
            _ => None,
        })
        .collect();
    assert_eq!(alerts, vec![(pim, vec![ifc(2)]), (dvmrp, vec![ifc(3)])]);
}

#[test]
fn e31_a_creation_alert_can_keep_an_interface_out_of_the_mfe() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    m.new_packet(s, 1, b"", T0);
    let ev = events(&m.take_effects(), pim);
    let Event::Rpf { request, iif, upstream, .. } = ev[0].clone() else { panic!() };
    m.answer_rpf(pim, request, iif, upstream, T0).unwrap();
    let ev = events(&m.take_effects(), pim);
    let Event::CreationAlert { request, oifs: offered, .. } = ev[0].clone() else {
        panic!("{ev:?}")
    };
    assert!(offered.iter().all(|o| o.enabled));
    m.answer_creation(pim, request, &[ifc(3)], T0).unwrap();
    assert_eq!(oifs(&m, s), vec![ifc(2)]);
    // It stays out even when memberships change later.
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(3), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, s), vec![ifc(2)]);
}

#[test]
fn e32_a_client_that_never_answers_times_out_to_the_defaults_and_the_mfe_is_created() {
    let (mut m, _pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    m.new_packet(s, 1, b"", T0);
    m.take_effects();
    m.tick(secs(1));
    assert_eq!(m.get_mfe(s, 1, T0), Err(MgmError::NotFound), "still waiting for RPF");
    m.tick(secs(2)); // RPF timed out: creation alerts go out
    assert!(
        all_events(&m.take_effects()).iter().any(|(_, e)| matches!(e, Event::CreationAlert { .. }))
    );
    m.tick(secs(4)); // creation alerts timed out
    assert_eq!(oifs(&m, s), vec![ifc(2), ifc(3)], "proposed IIF, every interface enabled");
}

#[test]
fn e33_a_packet_on_the_wrong_interface_is_reported_to_that_interfaces_owner() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let dvmrp = m.register(DVMRP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(dvmrp, ifc(2)).unwrap();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.new_packet(s, 2, b"hdr", T0);
    let eff = m.take_effects();
    assert!(events(&eff, pim).is_empty());
    assert_eq!(events(&eff, dvmrp).len(), 1);
    assert!(writes(&eff).is_empty(), "the MFE is unchanged: the fast path drops and counts");
}

#[test]
fn e34_an_mfe_with_an_empty_oil_exists_and_gains_interfaces_later() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    let s = sg("10.0.0.1", "239.1.1.1");
    let eff = create(&mut m, s, 1);
    assert_eq!(writes(&eff), vec![W::Install(s, ifc(1), vec![])]);
    assert!(
        events(&eff, pim)
            .iter()
            .any(|e| matches!(e, Event::PruneAlert { member_delete: false, .. }))
    );
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    assert_eq!(oifs(&m, s), vec![ifc(2)]);
}

#[test]
fn e35_an_idle_mfe_expires_with_a_deletion_notice_an_active_one_stays() {
    let (mut m, pim) = pim_with_members();
    let idle = sg("10.0.0.1", "239.1.1.1");
    let busy = sg("10.0.0.2", "239.1.1.1");
    create(&mut m, idle, 1);
    create(&mut m, busy, 1);
    // Both carried traffic early on (not one-packet flows).
    m.prove(idle);
    m.prove(busy);
    m.refresh(busy, secs(800));
    m.tick(secs(899));
    assert!(m.take_effects().is_empty());
    m.tick(secs(900));
    let eff = m.take_effects();
    assert_eq!(writes(&eff), vec![W::Remove(idle)]);
    assert_eq!(
        events(&eff, pim),
        vec![Event::MfeDeleted {
            source: idle.source,
            group: idle.group,
            reason: DeleteReason::Expired
        }]
    );
    assert!(m.get_mfe(busy, 1, secs(900)).is_ok());
    m.tick(secs(1700));
    assert_eq!(m.get_mfe(busy, 1, secs(1700)), Err(MgmError::NotFound));
}

/// New flows on one interface are admitted at its creation rate (the others are left to the
/// kernel and ask again with their next packets); another interface has its own rate.
#[test]
fn flow_creation_is_rate_limited_per_incoming_interface() {
    let mut m = Manager::new(Settings { creations_per_sec: 10, ..Settings::default() });
    let pim = m.register(PIM, 1).unwrap();
    for i in 1..=3 {
        m.take_interface(pim, ifc(i)).unwrap();
    }
    let flow = |n: u32| Sg::new(ip_n(0x0a00_0000 + n), ip("239.1.1.1"));
    for n in 0..50 {
        m.new_packet(flow(n), 1, b"", T0);
    }
    m.new_packet(flow(1000), 2, b"", T0);
    assert_eq!(m.creating.len(), 11, "10 on interface 1, 1 on interface 2");
    assert_eq!(m.admission_counts(), (40, 0));
    // Half a second later, 5 more tokens.
    for n in 50..60 {
        m.new_packet(flow(n), 1, b"", Duration::from_millis(500));
    }
    assert_eq!(m.creating.len(), 16);
}

/// A full table makes room for a new flow by evicting the oldest MFE that never carried
/// traffic beyond its first packets; proven flows are never evicted, and with none to evict
/// the new flow is refused.
#[test]
fn a_full_table_evicts_unproven_mfes_first() {
    let settings = Settings { max_mfes: 3, creations_per_sec: 1000, ..Settings::default() };
    let mut m = Manager::new(settings);
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    let flow = |n: u8| sg(&format!("10.0.0.{n}"), "239.1.1.1");
    for n in 1..=3 {
        create(&mut m, flow(n), 1);
    }
    m.prove(flow(1));
    m.prove(flow(3));
    create(&mut m, flow(4), 1);
    assert_eq!(m.get_mfe(flow(2), 1, T0), Err(MgmError::NotFound), "the unproven one went");
    assert!(m.get_mfe(flow(4), 1, T0).is_ok());
    assert_eq!(m.admission_counts(), (0, 1));
    m.prove(flow(4));
    m.new_packet(flow(5), 1, b"", T0);
    assert!(m.take_effects().is_empty(), "every MFE proven: refused, nothing changed");
    assert_eq!(m.admission_counts(), (1, 1));
}

#[test]
fn e36_get_mfe_unknown_is_not_found_and_a_zero_buffer_says_what_is_needed() {
    let (mut m, _) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    assert_eq!(m.get_mfe(s, 1, T0), Err(MgmError::NotFound));
    create(&mut m, s, 1);
    assert_eq!(m.get_mfe(s, 0, T0), Err(MgmError::InsufficientBuffer { needed: 1 }));
    assert_eq!(m.get_mfes(None, 0, T0), Err(MgmError::InsufficientBuffer { needed: 1 }));
}

fn make_many(m: &mut Manager) -> Vec<Sg> {
    let mut all = Vec::new();
    for g in ["239.1.1.3", "239.1.1.1", "239.1.1.2"] {
        for s in ["10.0.0.9", "10.0.0.1", "10.0.0.5"] {
            let x = sg(s, g);
            create(m, x, 1);
            all.push(x);
        }
    }
    all.sort();
    all
}

#[test]
fn e37_walking_returns_every_mfe_once_by_group_then_source_with_more_data_then_no_more_items() {
    let (mut m, _) = pim_with_members();
    let expected = make_many(&mut m);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = m.get_mfes(after, 4, T0).unwrap();
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries.iter().map(|v| Sg::new(v.source, v.group)));
        after = seen.last().copied();
        if !page.more {
            break;
        }
        assert_eq!(page.entries.len(), 4, "MORE_DATA only with a full page");
    }
    assert_eq!(seen, expected);
    assert_eq!(expected[0], sg("10.0.0.1", "239.1.1.1"));
    assert_eq!(expected[1], sg("10.0.0.5", "239.1.1.1"));
    let end = m.get_mfes(after, 4, T0).unwrap();
    assert!(end.entries.is_empty() && !end.more, "NO_MORE_ITEMS with zero entries");
}

#[test]
fn e38_get_next_after_a_deleted_mfe_continues_with_the_next_larger_one() {
    let (mut m, _) = pim_with_members();
    let all = make_many(&mut m);
    // The walker has seen up to `gone`; then `gone` expires (all others had traffic).
    let gone = all[4];
    for sg in all.iter().filter(|sg| **sg != gone) {
        m.prove(*sg);
        m.refresh(*sg, secs(899));
    }
    m.tick(secs(900));
    assert_eq!(m.get_mfe(gone, 1, secs(900)), Err(MgmError::NotFound));
    let page = m.get_mfes(Some(gone), 1, secs(900)).unwrap();
    assert_eq!(Sg::new(page.entries[0].source, page.entries[0].group), all[5]);
    assert!(page.more);
}

#[test]
fn e40_set_mfe_bad_handle_unknown_mfe_and_a_valid_change() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    assert_eq!(
        m.set_mfe(Handle(77), s, ifc(1), ip("0.0.0.0"), T0),
        Err(MgmError::InvalidParameter)
    );
    assert_eq!(m.set_mfe(pim, s, ifc(1), ip("0.0.0.0"), T0), Err(MgmError::NotFound));
    create(&mut m, s, 1);
    m.set_mfe(pim, s, ifc(4), ip("10.1.1.1"), T0).unwrap();
    let v = m.get_mfe(s, 1, T0).unwrap();
    assert_eq!((v.iif, v.upstream), (ifc(4), ip("10.1.1.1")));
}

#[test]
fn e41_group_enumeration_shapes_handles_and_cursor() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let other = m.register(DVMRP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    m.add_membership(pim, p_sg("10.0.0.2", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.add_membership(pim, p_g("239.2.2.2"), ifc(1), BOTH, T0).unwrap();
    let any = m.enum_start(pim, EnumType::AnySource).unwrap();
    let all = m.enum_start(pim, EnumType::AllSources).unwrap();
    let a = m.enum_next(pim, any, 10).unwrap();
    assert!(!a.more);
    assert_eq!(a.entries, vec![p_g("239.1.1.1").entry(), p_g("239.2.2.2").entry()]);
    // Changes meanwhile: every entry present throughout comes exactly once; one returned,
    // deleted and added again does not come twice; one deleted before it is reached does not
    // come at all.
    let first = m.enum_next(pim, all, 1).unwrap();
    assert_eq!(first.entries, vec![p_sg("10.0.0.1", "239.1.1.1").entry()]);
    m.delete_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(1), BOTH, T0).unwrap();
    m.add_membership(pim, p_sg("10.0.0.1", "239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    m.add_membership(pim, p_g("239.3.3.3"), ifc(1), BOTH, T0).unwrap();
    m.add_membership(pim, p_g("239.4.4.4"), ifc(1), BOTH, T0).unwrap();
    m.delete_membership(pim, p_g("239.4.4.4"), ifc(1), BOTH, T0).unwrap();
    let mut got = first.entries;
    loop {
        let p = m.enum_next(pim, all, 1).unwrap();
        got.extend(p.entries);
        if !p.more {
            break;
        }
    }
    let expected = vec![
        p_sg("10.0.0.1", "239.1.1.1").entry(),
        p_sg("10.0.0.2", "239.1.1.1").entry(),
        p_g("239.2.2.2").entry(),
        p_g("239.3.3.3").entry(),
    ];
    assert_eq!(got, expected);
    assert_eq!(m.enum_next(other, all, 1), Err(MgmError::InvalidParameter), "not its enumeration");
    m.enum_end(pim, all).unwrap();
    assert_eq!(m.enum_next(pim, all, 1), Err(MgmError::InvalidParameter));
    assert_eq!(m.enum_end(pim, all), Err(MgmError::InvalidParameter));
    assert_eq!(m.enum_next(pim, EnumHandle(4242), 1), Err(MgmError::InvalidParameter));
}

#[test]
fn e42_a_dropped_client_is_released_everywhere_and_deregistered() {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.take_interface(igmp, ifc(2)).unwrap();
    m.add_membership(pim, p_g("239.1.1.1"), ifc(2), BOTH, T0).unwrap();
    let s = sg("10.0.0.1", "239.1.1.1");
    create(&mut m, s, 1);
    m.client_gone(pim, T0);
    assert!(!m.is_registered(pim));
    assert_eq!(m.get_mfe(s, 1, T0), Err(MgmError::NotFound), "its IIF was released");
    assert_eq!(m.protocol_on_interface(ifc(2)), Ok((PROTO_IP_IGMP, 1)));
    assert_eq!(m.protocol_on_interface(ifc(1)), Err(MgmError::NotFound));
    assert!(m.register(PIM, 1).is_ok());
}

#[test]
fn e43_an_interface_removed_from_the_kernel_takes_its_entries_and_owners_are_told() {
    let (mut m, pim) = pim_with_members();
    let s = sg("10.0.0.1", "239.1.1.1");
    let t = sg("10.0.0.2", "239.1.1.1");
    create(&mut m, s, 1);
    create(&mut m, t, 4);
    m.interface_gone(2, T0);
    let eff = m.take_effects();
    assert!(events(&eff, pim).contains(&Event::InterfaceGone { iface: ifc(2) }));
    assert_eq!(oifs(&m, s), vec![ifc(3)]);
    m.interface_gone(1, T0);
    let eff = m.take_effects();
    assert!(writes(&eff).contains(&W::Remove(s)));
    assert!(events(&eff, pim).contains(&Event::MfeDeleted {
        source: s.source,
        group: s.group,
        reason: DeleteReason::InterfaceGone
    }));
    assert_eq!(oifs(&m, t), vec![ifc(3)], "MFEs elsewhere are unaffected");
}

#[test]
fn answers_from_the_wrong_client_or_for_unknown_requests_are_refused() {
    let (mut m, pim) = pim_with_members();
    let intruder = m.register(DVMRP, 1).unwrap();
    m.new_packet(sg("10.0.0.1", "239.1.1.1"), 1, b"", T0);
    let ev = events(&m.take_effects(), pim);
    let Event::Rpf { request, iif, upstream, .. } = ev[0].clone() else { panic!() };
    assert_eq!(m.answer_rpf(intruder, request, iif, upstream, T0), Err(MgmError::InvalidParameter));
    assert_eq!(m.answer_rpf(pim, RequestId(999), iif, upstream, T0), Err(MgmError::NotFound));
    assert_eq!(m.answer_creation(pim, request, &[], T0), Err(MgmError::NotFound), "wrong kind");
    m.answer_rpf(pim, request, iif, upstream, T0).unwrap();
}

#[test]
fn error_codes_are_the_win32_values() {
    assert_eq!(MgmError::InvalidParameter.code(), 87);
    assert_eq!(MgmError::InsufficientBuffer { needed: 1 }.code(), 122);
    assert_eq!(MgmError::CanNotComplete.code(), 1003);
    assert_eq!(MgmError::NotFound.code(), 1168);
    assert_eq!(MgmError::AlreadyExists.code(), 183);
    assert_eq!(MgmError::NotEnoughMemory.code(), 8);
}

/// Edge case 44 at scale: 1,000 interfaces × 10,000 groups stay correct.
#[test]
fn e44_a_thousand_interfaces_and_ten_thousand_groups_stay_consistent() {
    // Ten thousand flows start at one instant here: no creation rate limit.
    let mut m = Manager::new(Settings { creations_per_sec: u32::MAX, ..Settings::default() });
    let pim = m.register(PIM, 1).unwrap();
    for i in 1..=1000 {
        m.take_interface(pim, ifc(i)).unwrap();
    }
    let group = |n: u32| ip_n(0xef00_0000 | n);
    for n in 0..10_000u32 {
        let iface = ifc(2 + n % 999);
        m.add_membership(pim, Pattern::star_g(group(n)), iface, BOTH, T0).unwrap();
    }
    for n in 0..10_000u32 {
        m.new_packet(Sg::new(ip("10.0.0.1"), group(n)), 1, b"", T0);
    }
    for t in [secs(3), secs(6)] {
        while m.has_due(t) {
            m.tick(t);
        }
    }
    assert_eq!(m.mfes.len(), 10_000);
    for n in (0..10_000u32).step_by(97) {
        assert_eq!(oifs(&m, Sg::new(ip("10.0.0.1"), group(n))), vec![ifc(2 + n % 999)]);
    }
    m.release_interface(pim, ifc(2), secs(6)).unwrap();
    check_invariants(&m);
    assert!(m.mfes.values().all(|x| !x.oifs.contains_key(&ifc(2))));
}

/// A release in steps of any size causes exactly what a release at once causes, in the same
/// order; the interface stays the client's until the last step.
#[test]
fn a_release_in_steps_does_what_a_release_at_once_does() {
    fn setup() -> (Manager, Handle, Handle) {
        let mut m = Manager::new(Settings { creations_per_sec: u32::MAX, ..Settings::default() });
        let pim = m.register(PIM, 1).unwrap();
        let igmp = m.register(PROTO_IP_IGMP, 1).unwrap();
        m.register(DVMRP, 1).unwrap();
        for i in 1..=3 {
            m.take_interface(pim, ifc(i)).unwrap();
        }
        m.take_interface(igmp, ifc(2)).unwrap();
        for n in 0..40u32 {
            let g = ip_n(0xef01_0000 | n);
            m.add_membership(pim, Pattern::star_g(g), ifc(2), BOTH, T0).unwrap();
            m.add_membership(pim, Pattern::star_g(g), ifc(3), BOTH, T0).unwrap();
            // Flows arriving on 1 (to 2 and 3) and on 2 (to 3).
            create(&mut m, Sg::new(ip("10.0.0.1"), g), 1);
            create(&mut m, Sg::new(ip("10.0.0.2"), g), 2);
        }
        m.take_effects();
        (m, pim, igmp)
    }
    let (mut once, pim, _) = setup();
    once.release_interface(pim, ifc(2), secs(1)).unwrap();
    let expected = once.take_effects();
    for budget in [1, 7, 40, 159, 160] {
        let (mut m, pim, igmp) = setup();
        let mut steps = 0;
        while m.release_step(pim, ifc(2), &mut budget.clone(), secs(1)).unwrap() == Progress::More {
            steps += 1;
            assert!(m.owns(pim, ifc(2)), "given up before the last step");
            assert!(m.owns(igmp, ifc(2)));
            check_invariants(&m);
        }
        // 40 memberships, the 80 MFEs whose lists they change, the 40 MFEs arriving there:
        // every step but the last uses its whole budget.
        assert!((steps + 1) * budget >= 160 && steps * budget <= 160, "{steps}");
        assert_eq!(m.take_effects(), expected, "budget {budget}");
        assert!(!m.owns(pim, ifc(2)));
        assert_eq!(m.mfes.len(), once.mfes.len());
        check_invariants(&m);
        // The release is over: another step is a release of an interface it does not own.
        assert_eq!(
            m.release_step(pim, ifc(2), &mut budget.clone(), secs(1)),
            Err(MgmError::InvalidParameter)
        );
    }
}

/// An MFE that carried nothing beyond the packets that created it lives [`UNPROVEN_LIFE`],
/// whatever its timeout; one that carried more lives its timeout.
#[test]
fn a_one_packet_flow_lives_a_short_life() {
    let (mut m, pim) = pim_with_members();
    let once = sg("10.0.0.1", "239.1.1.1");
    let real = sg("10.0.0.2", "239.1.1.1");
    create(&mut m, once, 1);
    create(&mut m, real, 1);
    m.prove(real);
    m.take_effects();
    m.tick(UNPROVEN_LIFE - secs(1));
    assert!(m.take_effects().is_empty());
    assert!(m.has_due(UNPROVEN_LIFE));
    m.tick(UNPROVEN_LIFE);
    let eff = m.take_effects();
    assert_eq!(writes(&eff), vec![W::Remove(once)]);
    let gone =
        Event::MfeDeleted { source: once.source, group: once.group, reason: DeleteReason::Expired };
    assert_eq!(events(&eff, pim), vec![gone]);
    assert!(m.get_mfe(real, 1, UNPROVEN_LIFE).is_ok());
    check_invariants(&m);
}

/// A tick handles what is due in batches: the rest waits, nothing is lost.
#[test]
fn a_tick_expires_in_batches() {
    let mut m = Manager::new(Settings { creations_per_sec: u32::MAX, ..Settings::default() });
    let pim = m.register(PIM, 1).unwrap();
    m.take_interface(pim, ifc(1)).unwrap();
    m.take_interface(pim, ifc(2)).unwrap();
    m.add_membership(pim, p_all(), ifc(2), BOTH, T0).unwrap();
    let n = TICK_BATCH * 2 + 10;
    for i in 0..n {
        let s = Sg::new(ip_n(0x0a00_0000 + i as u32), ip("239.1.1.1"));
        create(&mut m, s, 1);
        m.prove(s);
    }
    assert_eq!(m.mfes.len(), n);
    let late = secs(901);
    assert!(m.has_due(late));
    m.tick(late);
    assert_eq!(m.mfes.len(), n - TICK_BATCH);
    m.tick(late);
    m.tick(late);
    assert!(m.mfes.is_empty());
    assert!(!m.has_due(late));
    check_invariants(&m);
}

// ---- the two families side by side ----------------------------------------------------------

/// An address as written, of its own family whatever the test's (unlike [`ip`]).
fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A PIM (IPv4) and a PIM6 (IPv6) client on the same three links.
fn dual() -> (Manager, Handle, Handle) {
    let mut m = mgr();
    let pim = m.register(PIM, 1).unwrap();
    let pim6 = m.register(PIM, 6).unwrap();
    for i in 1..=3 {
        m.take_interface(pim, Iface::new(i, a("0.0.0.0"))).unwrap();
        m.take_interface(pim6, Iface::new(i, a("::"))).unwrap();
    }
    m.take_effects();
    (m, pim, pim6)
}

#[test]
fn f01_the_families_do_not_mix_in_one_entry() {
    let (mut m, pim, pim6) = dual();
    let v4 = Iface::new(2, a("0.0.0.0"));
    let v6 = Iface::new(2, a("::"));
    let bad = MgmError::InvalidParameter;
    // (S,G) and masks of one family only.
    assert_eq!(Sg::checked(a("10.0.0.1"), a("ff3e::1")), Err(bad));
    assert_eq!(Sg::checked(a("2001:db8::1"), a("239.1.1.1")), Err(bad));
    assert_eq!(Sg::checked(a("2001:db8::1"), a("2001:db8::2")), Err(bad), "not a group");
    assert!(Sg::checked(a("2001:db8::1"), a("ff3e::1")).is_ok());
    let ones6 = Family::Ipv6.ones();
    let any6 = Family::Ipv6.any();
    assert_eq!(
        Pattern::from_masks(a("10.0.0.1"), a("255.255.255.255"), a("ff3e::1"), ones6),
        Err(bad)
    );
    assert_eq!(Pattern::from_masks(any6, any6, a("ff3e::1"), a("255.255.255.255")), Err(bad));
    assert_eq!(Pattern::from_masks(any6, a("0.0.0.0"), a("ff3e::1"), ones6), Err(bad));
    assert_eq!(
        Pattern::from_masks(any6, any6, a("ff3e::1"), a("ffff:ffff::")),
        Err(bad),
        "a range"
    );
    assert_eq!(
        Pattern::from_masks(any6, any6, a("ff3e::1"), ones6),
        Ok(Pattern::star_g(a("ff3e::1")))
    );
    assert_eq!(Pattern::from_masks(any6, any6, any6, any6), Ok(Pattern::any(Family::Ipv6)));
    assert_ne!(Pattern::any(Family::Ipv6), Pattern::any(Family::Ipv4));
    // A membership lives on an interface of its family.
    assert_eq!(m.add_membership(pim, Pattern::star_g(a("ff3e::1")), v4, BOTH, T0), Err(bad));
    assert_eq!(m.add_membership(pim6, Pattern::star_g(a("239.1.1.1")), v6, BOTH, T0), Err(bad));
    assert_eq!(m.add_membership(pim6, Pattern::any(Family::Ipv4), v6, BOTH, T0), Err(bad));
    assert!(m.take_effects().is_empty(), "refusals change nothing");
    // RPF and SetMfe answers of the other family are refused; the request stays open.
    m.add_membership(pim6, Pattern::any(Family::Ipv6), v6, BOTH, T0).unwrap();
    let s6 = Sg::new(a("2001:db8::1"), a("ff3e::1"));
    m.new_packet(s6, 1, b"hdr", T0);
    let rpf = all_events(&m.take_effects()).into_iter().find_map(|(to, ev)| match ev {
        Event::Rpf { request, iif, upstream, .. } => Some((to, request, iif, upstream)),
        _ => None,
    });
    let Some((to, request, iif, upstream)) = rpf else {
        panic!("no RPF callback");
    };
    assert_eq!((to, iif, upstream), (pim6, Iface::new(1, a("::")), a("::")));
    assert_eq!(m.request_family(request), Some(Family::Ipv6));
    assert_eq!(m.answer_rpf(pim6, request, Iface::new(1, a("0.0.0.0")), a("::"), T0), Err(bad));
    assert_eq!(m.answer_rpf(pim6, request, iif, a("10.0.0.9"), T0), Err(bad));
    m.answer_rpf(pim6, request, iif, a("fe80::9"), T0).unwrap();
    let eff = m.take_effects();
    for (_, ev) in all_events(&eff) {
        if let Event::CreationAlert { request, .. } = ev {
            m.answer_creation(pim6, request, &[], T0).unwrap();
        }
    }
    let view = m.get_mfe(s6, 1, T0).unwrap();
    assert_eq!((view.iif, view.upstream, view.oifs), (iif, a("fe80::9"), vec![v6]));
    assert_eq!(m.set_mfe(pim6, s6, Iface::new(3, a("0.0.0.0")), a("::"), T0), Err(bad));
    assert_eq!(m.set_mfe(pim6, s6, Iface::new(3, a("::")), a("10.0.0.1"), T0), Err(bad));
    assert_eq!(m.get_mfe(s6, 1, T0).unwrap().iif, iif, "unchanged");
    check_invariants(&m);
}

#[test]
fn f02_the_two_sides_of_a_link_are_owned_and_released_apart() {
    let (mut m, pim, pim6) = dual();
    let (v4, v6) = (Iface::new(2, a("0.0.0.0")), Iface::new(2, a("::")));
    assert_eq!(m.protocol_on_interface(v4), Ok((PIM, 1)));
    assert_eq!(m.protocol_on_interface(v6), Ok((PIM, 6)));
    // (*,*) of each family on link 2: each reaches its own family's entries only.
    m.add_membership(pim, Pattern::any(Family::Ipv4), v4, BOTH, T0).unwrap();
    m.add_membership(pim6, Pattern::any(Family::Ipv6), v6, BOTH, T0).unwrap();
    let s4 = Sg::new(a("10.0.0.1"), a("239.1.1.1"));
    let s6 = Sg::new(a("2001:db8::1"), a("ff3e::1"));
    create(&mut m, s4, 1);
    create(&mut m, s6, 1);
    assert_eq!(oifs(&m, s4), vec![v4]);
    assert_eq!(oifs(&m, s6), vec![v6]);
    assert_eq!(m.get_mfe(s4, 1, T0).unwrap().iif, Iface::new(1, a("0.0.0.0")));
    assert_eq!(m.get_mfe(s6, 1, T0).unwrap().iif, Iface::new(1, a("::")));
    // Releasing the IPv4 side leaves the IPv6 side's copies and owner alone.
    m.release_interface(pim, v4, T0).unwrap();
    assert_eq!(oifs(&m, s4), Vec::<Iface>::new());
    assert_eq!(oifs(&m, s6), vec![v6]);
    assert!(m.owns(pim6, v6));
    // Releasing the incoming side of one family deletes that family's entries only.
    m.take_effects();
    m.release_interface(pim6, Iface::new(1, a("::")), T0).unwrap();
    assert_eq!(writes(&m.take_effects()), vec![W::Remove(s6)]);
    assert!(m.get_mfe(s4, 1, T0).is_ok());
    check_invariants(&m);
}

#[test]
fn f03_walks_and_enumerations_cover_both_families_in_order() {
    let (mut m, pim, pim6) = dual();
    let (v4, v6) = (Iface::new(2, a("0.0.0.0")), Iface::new(2, a("::")));
    m.add_membership(pim, Pattern::any(Family::Ipv4), v4, BOTH, T0).unwrap();
    m.add_membership(pim6, Pattern::any(Family::Ipv6), v6, BOTH, T0).unwrap();
    m.add_membership(pim6, Pattern::star_g(a("ff3e::2")), v6, BOTH, T0).unwrap();
    let sgs = [
        Sg::new(a("10.0.0.1"), a("239.1.1.1")),
        Sg::new(a("10.0.0.2"), a("239.1.1.1")),
        Sg::new(a("2001:db8::1"), a("ff3e::1")),
        Sg::new(a("2001:db8::1"), a("ff3e::2")),
    ];
    for s in sgs.iter().rev() {
        create(&mut m, *s, 1);
    }
    // GetFirst/GetNext: IPv4 entries first, by group then source, and across the families.
    let walk: Vec<Sg> = m
        .get_mfes(None, 10, T0)
        .unwrap()
        .entries
        .iter()
        .map(|v| Sg::new(v.source, v.group))
        .collect();
    assert_eq!(walk, sgs);
    let next = m.get_mfes(Some(sgs[1]), 1, T0).unwrap();
    assert_eq!((Sg::new(next.entries[0].source, next.entries[0].group), next.more), (sgs[2], true));
    // The IPv6 client's enumeration: its (*,*) and (*,G), IPv6 masks.
    let e = m.enum_start(pim6, EnumType::AllSources).unwrap();
    let page = m.enum_next(pim6, e, 10).unwrap();
    let ones = Family::Ipv6.ones();
    let any = Family::Ipv6.any();
    let any_any = SourceGroupEntry { source: any, source_mask: any, group: any, group_mask: any };
    let star_g =
        SourceGroupEntry { source: any, source_mask: any, group: a("ff3e::2"), group_mask: ones };
    // Every client's joined entries, as in IPv4: the IPv4 (*,*) first.
    let v4_any = Pattern::any(Family::Ipv4).entry();
    assert_eq!(page.entries, vec![v4_any, any_any, star_g]);
    check_invariants(&m);
}

// ---- property tests --------------------------------------------------------------------------

/// Every MFE output has a forward-state membership behind it, owned by its client; nothing is
/// left of deregistered clients.
fn check_invariants(m: &Manager) {
    // An MFE a release in steps has not reached yet may be out of date.
    let stale =
        |sg: &Sg| m.stale.iter().any(|(p, after)| p.matches(sg) && after.is_none_or(|a| *sg > a));
    for (sg, mfe) in m.mfes.iter() {
        // The families never mix: an entry arrives on and leaves by interfaces of its own.
        assert_eq!(Family::of(sg.source), sg.family(), "{sg:?}");
        assert_eq!(mfe.iif.family(), sg.family(), "{sg:?}: incoming {:?}", mfe.iif);
        assert!(mfe.oifs.keys().all(|o| o.family() == sg.family()), "{sg:?}: {:?}", mfe.oifs);
        assert_eq!(Family::of(mfe.upstream), sg.family(), "{sg:?}");
    }
    for ((p, iface, _), _) in m.members.iter() {
        assert_eq!(p.family(), iface.family(), "{p:?} on {iface:?}");
    }
    for (sg, mfe) in m.mfes.iter().filter(|(sg, _)| !stale(sg)) {
        assert!(!mfe.oifs.contains_key(&mfe.iif), "{sg:?}: IIF in its own OIL");
        for (o, by) in &mfe.oifs {
            assert!(!by.is_empty(), "{sg:?}: output {o:?} justified by nobody");
            for h in by {
                // Each client named behind an output owns it and has a membership there:
                // the fast path keeps the copy alive exactly while one of them owns it.
                let backed = m
                    .members
                    .iter()
                    .any(|((p, iface, mh), f)| iface == o && mh == h && f.forward && p.matches(sg));
                assert!(backed, "{sg:?}: output {o:?} names {h:?} without a membership");
                let ow = m.owners.get(o).copied().unwrap_or_default();
                assert!(
                    ow.routing == Some(*h) || ow.igmp == Some(*h),
                    "{sg:?}: {h:?} does not own {o:?}"
                );
            }
        }
        assert_eq!(mfe.oifs, m.oil_for(*sg, mfe.iif, &mfe.disabled), "{sg:?}: OIL out of date");
    }
    for ((_, _, h), _) in m.members.iter() {
        assert!(m.clients.contains_key(h), "membership of a deregistered client");
    }
    // The indexes say what a walk of the memberships and clients would.
    let mut joined: BTreeMap<Pattern, BTreeMap<Handle, usize>> = BTreeMap::new();
    for ((p, _, h), f) in &m.members {
        if f.join {
            *joined.entry(*p).or_default().entry(*h).or_default() += 1;
        }
    }
    assert_eq!(m.joined, joined, "join-state index out of date");
    let ids: BTreeSet<(u32, u32)> = m.clients.values().map(|c| (c.protocol, c.component)).collect();
    assert_eq!(m.ids, ids, "registration index out of date");
    let mut owned: BTreeMap<Handle, BTreeSet<Iface>> = BTreeMap::new();
    for (i, o) in &m.owners {
        for h in [o.routing, o.igmp].into_iter().flatten() {
            owned.entry(h).or_default().insert(*i);
        }
    }
    assert_eq!(m.owned, owned, "ownership index out of date");
    let mut counts: BTreeMap<Handle, usize> = BTreeMap::new();
    for (_, _, h) in m.members.keys() {
        *counts.entry(*h).or_default() += 1;
    }
    assert_eq!(m.member_counts, counts, "membership counts out of date");
    m.mfes.check();
    assert!(m.mfes.len() <= m.settings.max_mfes, "over capacity");
    for o in m.owners.values() {
        for h in [o.routing, o.igmp].into_iter().flatten() {
            assert!(m.clients.contains_key(&h), "interface owned by a deregistered client");
        }
    }
    for (_, to, _) in m.requests.check() {
        assert!(m.clients.contains_key(&to), "request to a deregistered client");
    }
    for (h, iface) in &m.releasing {
        assert!(m.owns(*h, *iface), "a release in progress of an interface not owned");
    }
    for ((iface, h), ps) in &m.members_by_iface {
        for p in ps {
            assert!(m.members.contains_key(&(*p, *iface, *h)), "index out of date");
        }
    }
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Take(usize, usize),
        Release(usize, usize),
        Step(usize, usize),
        Add(usize, usize, usize, u32),
        Del(usize, usize, usize, u32),
        Packet(usize, usize),
        Answer,
        Tick(u64),
        Gone(usize),
        Deregister(usize),
        Register(usize),
    }

    const CLIENTS: [(u32, u32); 3] = [(PIM, 1), (DVMRP, 1), (PROTO_IP_IGMP, 1)];

    /// Both families on the same links: each side is its own interface.
    fn ifaces() -> [Iface; 7] {
        [
            ifc(1),
            ifc(2),
            Iface::new(3, ip("10.0.0.1")),
            Iface::new(3, ip("10.0.0.2")),
            Iface::new(1, a("::")),
            Iface::new(2, a("::")),
            Iface::new(3, a("fe80::1")),
        ]
    }

    fn patterns() -> [Pattern; 7] {
        [
            p_sg("10.0.0.1", "239.1.1.1"),
            p_g("239.1.1.1"),
            p_g("239.2.2.2"),
            p_all(),
            Pattern::sg(Sg::new(a("2001:db8::1"), a("ff3e::1"))),
            Pattern::star_g(a("ff3e::1")),
            Pattern::any(Family::Ipv6),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..7usize).prop_map(|(c, i)| Op::Take(c, i)),
            (0..3usize, 0..7usize).prop_map(|(c, i)| Op::Release(c, i)),
            (0..3usize, 0..7usize).prop_map(|(c, i)| Op::Step(c, i)),
            (0..3usize, 0..7usize, 0..7usize, 1..4u32).prop_map(|(c, p, i, f)| Op::Add(c, p, i, f)),
            (0..3usize, 0..7usize, 0..7usize, 1..4u32).prop_map(|(c, p, i, f)| Op::Del(c, p, i, f)),
            (0..6usize, 0..3usize).prop_map(|(s, i)| Op::Packet(s, i)),
            Just(Op::Answer),
            (0..1000u64).prop_map(Op::Tick),
            (0..3usize).prop_map(Op::Gone),
            (0..3usize).prop_map(Op::Deregister),
            (0..3usize).prop_map(Op::Register),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Random call sequences keep the invariants, and replaying the fast-path writes
        /// reproduces the manager's MFE table exactly.
        #[test]
        fn random_sequences_keep_invariants_and_the_mirror_in_step(ops in proptest::collection::vec(op(), 1..80)) {
            let mut m = mgr();
            let mut handles: Vec<Option<Handle>> =
                CLIENTS.iter().map(|(p, c)| m.register(*p, *c).ok()).collect();
            let mut mirror: BTreeMap<Sg, (Iface, Oil)> = BTreeMap::new();
            let mut owners: BTreeSet<(Iface, Handle)> = BTreeSet::new();
            let mut now = T0;
            let sgs = [sg("10.0.0.1", "239.1.1.1"), sg("10.0.0.2", "239.1.1.1"), sg("10.0.0.1", "239.2.2.2"), sg("10.0.0.3", "239.3.3.3"), Sg::new(a("2001:db8::1"), a("ff3e::1")), Sg::new(a("2001:db8::2"), a("ff3e::2"))];
            for op in ops {
                let h = |c: usize| handles[c].unwrap_or(Handle(u64::MAX));
                match op {
                    Op::Take(c, i) => { let _ = m.take_interface(h(c), ifaces()[i]); }
                    Op::Release(c, i) => {
                        let owned = m.owners.get(&ifaces()[i]).is_some_and(|o| o.routing == Some(h(c)) || o.igmp == Some(h(c)));
                        let r = m.release_interface(h(c), ifaces()[i], now);
                        prop_assert_eq!(r.is_ok(), owned);
                        if owned {
                            // Release leaves none of the client's entries on that interface.
                            prop_assert!(!m.members_by_iface.contains_key(&(ifaces()[i], h(c))));
                            let o = m.owners.get(&ifaces()[i]).copied().unwrap_or_default();
                            prop_assert!(o.routing != Some(h(c)) && o.igmp != Some(h(c)));
                        }
                    }
                    Op::Step(c, i) => {
                        // One step of a release, other calls between its steps.
                        let iface = ifaces()[i];
                        if m.release_step(h(c), iface, &mut 1, now) == Ok(Progress::Done) {
                            prop_assert!(!m.members_by_iface.contains_key(&(iface, h(c))));
                            prop_assert!(!m.owns(h(c), iface));
                        }
                    }
                    Op::Add(c, p, i, f) => { let _ = m.add_membership(h(c), patterns()[p], ifaces()[i], f, now); }
                    Op::Del(c, p, i, f) => { let _ = m.delete_membership(h(c), patterns()[p], ifaces()[i], f, now); }
                    Op::Packet(s, i) => m.new_packet(sgs[s], ifaces()[i].ifindex, b"", now),
                    Op::Answer => {
                        let pending = m.requests.check();
                        for (id, to, a) in pending {
                            match a {
                                Awaiting::Rpf(sg) => {
                                    let (i, f) = (ifaces()[0].ifindex, sg.family());
                                    // An answer of the other family is refused and changes nothing.
                                    let other = if f == Family::Ipv4 { Family::Ipv6 } else { Family::Ipv4 };
                                    prop_assert_eq!(m.answer_rpf(to, id, Iface::new(i, other.any()), other.any(), now), Err(MgmError::InvalidParameter));
                                    let _ = m.answer_rpf(to, id, Iface::new(i, f.any()), f.any(), now);
                                }
                                Awaiting::Creation(_) => { let _ = m.answer_creation(to, id, &[ifaces()[1], ifaces()[5]], now); }
                                Awaiting::PruneTimeout(_) => { let _ = m.answer_prune(to, id, secs(30), now); }
                            }
                        }
                    }
                    Op::Tick(ms) => { now += Duration::from_millis(ms * 10); m.tick(now); }
                    Op::Gone(c) => { if let Some(x) = handles[c].take() { m.client_gone(x, now); prop_assert!(!m.is_registered(x)); } }
                    Op::Deregister(c) => { if let Some(x) = handles[c] && m.deregister(x, now).is_ok() { handles[c] = None; } }
                    Op::Register(c) => { if handles[c].is_none() { handles[c] = m.register(CLIENTS[c].0, CLIENTS[c].1).ok(); } }
                }
                for e in m.take_effects() {
                    match e {
                        Effect::Install { sg, iif, oifs } => { mirror.insert(sg, (iif, oifs)); }
                        Effect::Remove { sg } => { prop_assert!(mirror.remove(&sg).is_some(), "remove of an uninstalled MFE"); }
                        Effect::Notify { to, .. } => prop_assert!(m.clients.contains_key(&to) || handles.iter().all(|x| *x != Some(to)), "event for an unknown client"),
                        Effect::Owner { iface, owner, owns: true } => { prop_assert!(owners.insert((iface, owner)), "taken twice"); }
                        Effect::Owner { iface, owner, owns: false } => { prop_assert!(owners.remove(&(iface, owner)), "released unowned"); }
                    }
                }
                let now_owned: BTreeSet<(Iface, Handle)> = m.owners.iter().flat_map(|(i, o)| [o.routing, o.igmp].into_iter().flatten().map(move |h| (*i, h))).collect();
                prop_assert_eq!(&owners, &now_owned, "ownership effects out of step");
                check_invariants(&m);
                let table: BTreeMap<Sg, (Iface, Oil)> = m.mfes.iter().map(|(sg, x)| (*sg, (x.iif, x.oifs.clone()))).collect();
                prop_assert_eq!(&mirror, &table);
            }
        }
    }
}

/// Every edge case above again, in IPv6: the same calls and answers with each address mapped
/// by [`ip`] (a new edge case belongs in this list too).
macro_rules! in_ipv6 {
    ($($name:ident),* $(,)?) => {
        mod ipv6 {
            $(
                #[test]
                fn $name() {
                    super::FAMILY.set(super::Family::Ipv6);
                    super::$name();
                }
            )*
        }
    };
}

in_ipv6!(
    e01_register_twice_with_the_same_ids_already_exists_other_component_ok,
    e02_unknown_or_deregistered_handle_is_invalid_parameter_and_changes_nothing,
    e03_taking_an_interface_owned_by_another_routing_protocol_is_already_exists,
    e04_igmp_co_owns_a_routing_interface_but_a_second_igmp_cannot,
    e05_routing_protocol_takes_an_igmp_interface_and_igmp_is_disabled_then_enabled,
    a_routing_protocol_taking_an_igmp_interface_learns_its_receivers,
    an_mfe_gaining_its_first_receiver_is_a_join_alert_without_member_add,
    e06_same_ifindex_different_next_hops_are_owned_independently,
    e07_taking_the_same_interface_twice_is_an_idempotent_success,
    e08_releasing_an_interface_not_owned_or_never_seen_is_invalid_parameter,
    e09_release_removes_only_that_clients_entries_for_that_next_hop,
    e10_releasing_the_incoming_interface_deletes_its_mfes,
    e11_release_deletes_the_clients_memberships_with_prune_alerts,
    e12_release_on_a_co_owned_interface_keeps_igmp_state_and_toggles_igmp,
    ownership_changes_come_out_as_effects_and_only_them,
    e13_deregister_is_refused_while_owning_interfaces_then_succeeds,
    e14_adding_an_sg_membership_changes_only_that_mfe,
    e15_star_g_reaches_every_mfe_of_the_group_now_and_later,
    e16_star_star_reaches_every_mfe,
    e17_overlapping_sg_and_star_g_keep_the_interface_until_both_are_gone,
    e18_the_incoming_interface_is_never_in_its_own_oil,
    e19_membership_on_an_interface_the_client_does_not_own_is_invalid_parameter,
    e20_deleting_a_membership_that_does_not_exist_is_not_found_and_changes_nothing,
    e21_first_membership_for_a_group_alerts_the_other_routing_protocols_not_the_adder,
    e22_igmp_add_on_a_shared_interface_is_a_local_join_to_the_routing_owner,
    e23_igmp_delete_on_a_shared_interface_is_a_local_leave,
    e24_star_g_prune_when_the_second_to_last_client_leaves_alerts_only_the_remaining_one,
    e25_star_g_prune_when_the_last_client_leaves_alerts_all_others,
    e26_sg_prune_alerts_only_the_owner_of_the_incoming_interface,
    e27_oil_change_prune_alert_without_member_delete_and_its_timeout_answer,
    prune_timeouts_at_their_extremes_and_time_far_ahead_are_safe,
    e28_new_traffic_asks_the_owner_of_the_interface_towards_the_source_and_uses_its_answer,
    traffic_on_an_interface_nobody_owns_creates_nothing,
    e29_an_iif_change_is_installed_and_traffic_on_the_old_iif_is_wrong_interface,
    e30_creation_alerts_go_to_oil_owners_each_seeing_only_its_own_interfaces,
    e31_a_creation_alert_can_keep_an_interface_out_of_the_mfe,
    e32_a_client_that_never_answers_times_out_to_the_defaults_and_the_mfe_is_created,
    e33_a_packet_on_the_wrong_interface_is_reported_to_that_interfaces_owner,
    e34_an_mfe_with_an_empty_oil_exists_and_gains_interfaces_later,
    e35_an_idle_mfe_expires_with_a_deletion_notice_an_active_one_stays,
    flow_creation_is_rate_limited_per_incoming_interface,
    a_full_table_evicts_unproven_mfes_first,
    e36_get_mfe_unknown_is_not_found_and_a_zero_buffer_says_what_is_needed,
    e37_walking_returns_every_mfe_once_by_group_then_source_with_more_data_then_no_more_items,
    e38_get_next_after_a_deleted_mfe_continues_with_the_next_larger_one,
    e40_set_mfe_bad_handle_unknown_mfe_and_a_valid_change,
    e41_group_enumeration_shapes_handles_and_cursor,
    e42_a_dropped_client_is_released_everywhere_and_deregistered,
    e43_an_interface_removed_from_the_kernel_takes_its_entries_and_owners_are_told,
    answers_from_the_wrong_client_or_for_unknown_requests_are_refused,
    e44_a_thousand_interfaces_and_ten_thousand_groups_stay_consistent,
    a_release_in_steps_does_what_a_release_at_once_does,
    a_one_packet_flow_lives_a_short_life,
    a_tick_expires_in_batches,
);

#[test]
fn membership_masks_default_from_the_addresses() {
    let parse = |line: &str| match mgm_proto::parse_request(line).unwrap().request {
        mgm_proto::Request::AddMembership(mgm_proto::AddMembership(a)) => a,
        r => panic!("{r:?}"),
    };
    let a =
        parse(r#"{"id":1,"method":"add_membership","handle":3,"group":"239.1.1.1","ifindex":2}"#);
    assert_eq!(Pattern::of(&a).unwrap(), Pattern::star_g("239.1.1.1".parse::<IpAddr>().unwrap()));
    assert_eq!(a.iface(), Iface::new(2, Ipv4Addr::UNSPECIFIED));
    assert_eq!(a.flags, 3);
    let a = parse(
        r#"{"id":1,"method":"add_membership","handle":3,"source":"10.0.0.1","group":"239.1.1.1","ifindex":2}"#,
    );
    assert_eq!(Pattern::of(&a).unwrap().source(), Some("10.0.0.1".parse().unwrap()));
    let a = parse(
        r#"{"id":1,"method":"add_membership","handle":3,"group":"239.1.1.1","group_mask":"255.255.0.0","ifindex":2}"#,
    );
    assert_eq!(Pattern::of(&a), Err(MgmError::InvalidParameter), "ranges are not supported");
    // IPv6: the same defaults, of its own family (the next hop too).
    let a = parse(r#"{"id":1,"method":"add_membership","handle":3,"group":"ff3e::1","ifindex":2}"#);
    assert_eq!(Pattern::of(&a).unwrap(), Pattern::star_g("ff3e::1".parse::<IpAddr>().unwrap()));
    assert_eq!(a.iface(), Iface::new(2, std::net::Ipv6Addr::UNSPECIFIED));
    let a = parse(
        r#"{"id":1,"method":"add_membership","handle":3,"source":"2001:db8::7","group":"ff3e::1","ifindex":2}"#,
    );
    assert_eq!(Pattern::of(&a).unwrap().source(), Some("2001:db8::7".parse().unwrap()));
    for bad in [
        // A source of the other family.
        r#""source":"10.0.0.1","group":"ff3e::1""#,
        r#""source":"2001:db8::7","group":"239.1.1.1""#,
        // An IPv4 mask on an IPv6 group, a prefix mask, a unicast group.
        r#""group":"ff3e::1","group_mask":"255.255.255.255""#,
        r#""group":"ff3e::1","group_mask":"ffff:ffff::""#,
        r#""group":"2001:db8::1""#,
    ] {
        let line = format!(r#"{{"id":1,"method":"add_membership","handle":3,{bad},"ifindex":2}}"#);
        assert_eq!(Pattern::of(&parse(&line)), Err(MgmError::InvalidParameter), "{bad}");
    }
}
