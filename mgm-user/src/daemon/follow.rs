// SPDX-License-Identifier: MIT OR Apache-2.0
//! Following the kernel's multicast routing table (`mgmd --follow-kernel`): the routing
//! daemons (smcroute, igmpproxy, FRR's pimd) go on programming the kernel's ipmr table, and
//! mgm mirrors the part of it the fast path can forward exactly as the kernel would. The
//! kernel keeps the whole table and gets every packet the fast path does not forward.
//!
//! [`Follow`] owns the table as the kernel announced it and decides, entry by entry, whether
//! it is mirrored, and if not, why (logged, and in `show`). docs/follow-kernel.md is the
//! operator's reference. It does no I/O: the daemon feeds it the
//! kernel's events (the groups the router itself has joined among them), and applies what it
//! decides.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::manager::Sg;

use crate::kernel::{KernelEvent, KernelMfc, Local};

/// The kernel's default IPv4 multicast routing table (`RT_TABLE_DEFAULT`), which `ip mroute`
/// shows and every daemon uses unless told otherwise.
pub const DEFAULT_TABLE: u32 = 253;
/// ip6mr's default table (`RT6_TABLE_DFLT`, which is `RT_TABLE_MAIN`): `ip -6 mroute`.
pub const DEFAULT_TABLE6: u32 = 254;

/// The table followed in each family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub ipv4: u32,
    pub ipv6: u32,
}

impl Default for Tables {
    fn default() -> Self {
        Self { ipv4: DEFAULT_TABLE, ipv6: DEFAULT_TABLE6 }
    }
}

impl Tables {
    /// Whether `table` is the one followed for the family of `addr`.
    fn follows(&self, table: u32, addr: IpAddr) -> bool {
        table == if addr.is_ipv4() { self.ipv4 } else { self.ipv6 }
    }
}

/// What the fast path should hold for one (S,G) of the followed table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Mirrored: forwarded in XDP from `iif` to `oifs`; with `local`, the router is itself
    /// a member on `iif` and what its sockets may receive goes to the kernel.
    Mirror { iif: u32, oifs: Vec<u32>, local: bool },
    /// Left to the kernel, for this reason.
    Kernel(String),
}

/// The followed table and the router's own memberships.
#[derive(Debug)]
pub struct Follow {
    tables: Tables,
    entries: BTreeMap<Sg, KernelMfc>,
    /// What the router itself receives: ipmr delivers a group joined on the incoming
    /// interface locally as well, which a packet forwarded in XDP would miss.
    local: Local,
}

impl Follow {
    pub fn new(tables: Tables) -> Self {
        Self { tables, entries: BTreeMap::new(), local: Local::default() }
    }

    /// Takes a kernel event; returns the (S,G)s whose entry may have changed (none if the
    /// event is not about the followed table).
    pub fn apply(&mut self, ev: &KernelEvent) -> Vec<Sg> {
        match ev {
            KernelEvent::Mfc(e) if self.tables.follows(e.table, e.group) => {
                let k = Sg::new(e.source, e.group);
                self.entries.insert(k, e.clone());
                vec![k]
            }
            KernelEvent::MfcGone { table, source, group }
                if self.tables.follows(*table, *group) =>
            {
                let k = Sg::new(*source, *group);
                self.entries.remove(&k);
                vec![k]
            }
            KernelEvent::MfcSnapshot(all) => {
                let mut changed: BTreeSet<Sg> = self.entries.keys().copied().collect();
                self.entries = all
                    .iter()
                    .filter(|e| self.tables.follows(e.table, e.group))
                    .map(|e| (Sg::new(e.source, e.group), e.clone()))
                    .collect();
                changed.extend(self.entries.keys());
                changed.into_iter().collect()
            }
            KernelEvent::LocalGroups(local) => {
                // Decisions depend on the groups and on whether the ports are known (the
                // ports themselves are the fast path's to check per packet).
                let changed = local.groups != self.local.groups
                    || local.udp_ports.is_none() != self.local.udp_ports.is_none();
                self.local = local.clone();
                // Any entry may be affected; most often none is.
                if changed { self.entries.keys().copied().collect() } else { Vec::new() }
            }
            _ => Vec::new(),
        }
    }

    /// The UDP ports the router's sockets may receive multicast on (`None`: any).
    pub fn local_ports(&self) -> Option<&BTreeSet<u16>> {
        self.local.udp_ports.as_ref()
    }

    /// Every (S,G) of the followed table.
    pub fn keys(&self) -> impl Iterator<Item = Sg> + '_ {
        self.entries.keys().copied()
    }

    /// Every entry of the followed table, in (S,G) order.
    pub fn entries(&self) -> impl Iterator<Item = (&Sg, &KernelMfc)> + '_ {
        self.entries.iter()
    }

    /// Whether (and how) the entry for `k` is mirrored; `None` if the table has no such
    /// entry. `managed` says which interfaces carry mgm's programs.
    pub fn decide(&self, k: &Sg, managed: impl Fn(u32) -> bool) -> Option<Decision> {
        let e = self.entries.get(k)?;
        Some(match mirrorable(e, &managed, &self.local) {
            Ok((oifs, local)) => Decision::Mirror { iif: e.iif, oifs, local },
            Err(why) => Decision::Kernel(why),
        })
    }
}

/// The outgoing interfaces of a kernel entry the fast path can forward exactly as ipmr does,
/// and whether the router itself is a member on the incoming interface; or why it cannot.
fn mirrorable(
    e: &KernelMfc,
    managed: impl Fn(u32) -> bool,
    local: &Local,
) -> Result<(Vec<u32>, bool), String> {
    if e.unresolved {
        return Err("unresolved: the kernel is waiting for its daemon".into());
    }
    if e.source.is_unspecified() {
        // ipmr matches these by its own rules (the arriving interface must be in the list).
        return Err("(*,G) or (*,*) entry: matched by the kernel's own rules".into());
    }
    if !managed(e.iif) {
        return Err(format!("incoming interface {} is not managed by mgm", e.iif));
    }
    // The fast path passes the packets local sockets may receive (by UDP port) to the
    // kernel, which forwards and delivers them; it cannot tell without the ports.
    let member = local.groups.contains(&(e.iif, e.group));
    if member && e.group.is_ipv6() {
        // The fast path reads no IPv6 transport header: every packet would go to the kernel.
        return Err("the router is a member of the IPv6 group on the incoming interface".into());
    }
    if member && local.udp_ports.is_none() {
        return Err("the router is a member of the group on the incoming interface, and a \
                    raw UDP socket may receive any datagram"
            .into());
    }
    let mut oifs = Vec::with_capacity(e.oifs.len());
    for &(ifindex, threshold) in &e.oifs {
        if threshold == 0 {
            continue; // not a copy (a VIF slot the kernel lists without one)
        }
        if threshold > 1 {
            return Err(format!("TTL threshold {threshold} on interface {ifindex}"));
        }
        if ifindex == e.iif {
            continue; // never sent back where it came from, by ipmr either
        }
        if !managed(ifindex) {
            // A register VIF (pimreg), a tunnel, or an interface mgm does not manage.
            return Err(format!("outgoing interface {ifindex} is not managed by mgm"));
        }
        oifs.push(ifindex);
    }
    Ok((oifs, member))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mfc(source: &str, iif: u32, oifs: &[(u32, u8)]) -> KernelMfc {
        KernelMfc {
            table: DEFAULT_TABLE,
            source: source.parse().unwrap(),
            group: "239.1.1.1".parse().unwrap(),
            iif,
            oifs: oifs.to_vec(),
            unresolved: false,
        }
    }

    fn decide(f: &Follow, e: &KernelMfc) -> Decision {
        f.decide(&Sg::new(e.source, e.group), |i| (1..=4).contains(&i)).unwrap()
    }

    #[test]
    fn only_what_xdp_forwards_as_ipmr_would_is_mirrored() {
        let mut f = Follow::new(Tables::default());
        let cases = [
            (mfc("10.1.0.1", 1, &[(2, 1), (3, 1)]), Some(vec![2, 3])),
            // Slots without a copy and the iif itself are no copies.
            (mfc("10.1.0.2", 1, &[(1, 1), (2, 0), (3, 1)]), Some(vec![3])),
            // An empty list: a negative entry, dropped in XDP as in the kernel.
            (mfc("10.1.0.3", 1, &[]), Some(vec![])),
            (mfc("10.1.0.4", 1, &[(2, 1), (9, 1)]), None),
            (mfc("10.1.0.5", 9, &[(2, 1)]), None),
            (mfc("10.1.0.6", 1, &[(2, 64)]), None),
            (mfc("0.0.0.0", 1, &[(1, 1), (2, 1)]), None),
        ];
        for (e, want) in cases {
            f.apply(&KernelEvent::Mfc(e.clone()));
            match (decide(&f, &e), want) {
                (Decision::Mirror { iif, oifs, local: false }, Some(w)) => {
                    assert_eq!((iif, oifs), (1, w))
                }
                (Decision::Kernel(_), None) => {}
                (got, want) => panic!("{e:?}: {got:?}, wanted {want:?}"),
            }
        }
        let mut unresolved = mfc("10.1.0.7", 0, &[]);
        unresolved.unresolved = true;
        f.apply(&KernelEvent::Mfc(unresolved.clone()));
        assert!(matches!(decide(&f, &unresolved), Decision::Kernel(_)));
    }

    /// A member on the incoming interface: mirrored with `local` (the fast path leaves what
    /// local sockets may receive to the kernel), or left to the kernel when any port may be
    /// received; a member elsewhere changes nothing.
    #[test]
    fn a_local_member_on_the_incoming_interface_is_marked_or_kept_in_the_kernel() {
        let mut f = Follow::new(Tables::default());
        let e = mfc("10.1.0.1", 1, &[(2, 1)]);
        f.apply(&KernelEvent::Mfc(e.clone()));
        let local = |i: u32, ports: Option<&[u16]>| {
            KernelEvent::LocalGroups(Local {
                groups: [(i, e.group)].into(),
                udp_ports: ports.map(|p| p.iter().copied().collect()),
            })
        };
        assert_eq!(f.apply(&local(1, Some(&[5000]))), vec![Sg::new(e.source, e.group)]);
        assert!(matches!(decide(&f, &e), Decision::Mirror { local: true, .. }));
        assert!(f.apply(&local(1, Some(&[5000, 5001]))).is_empty(), "ports: the fast path's");
        assert_eq!(f.local_ports().map(|p| p.len()), Some(2));
        assert_eq!(f.apply(&local(1, None)).len(), 1);
        assert!(matches!(decide(&f, &e), Decision::Kernel(_)));
        f.apply(&local(2, None));
        assert!(matches!(decide(&f, &e), Decision::Mirror { local: false, .. }));
    }

    /// ip6mr's entries follow the same rules, keyed apart from IPv4's; a member of an IPv6
    /// group on the incoming interface keeps the entry in the kernel (the fast path would
    /// pass every packet of it anyway).
    #[test]
    fn ipv6_entries_are_mirrored_by_the_same_rules() {
        let mut f = Follow::new(Tables::default());
        let mut e = mfc("2001:db8:1::1", 1, &[(2, 1), (3, 1)]);
        (e.group, e.table) = ("ff3e::8000:1".parse().unwrap(), DEFAULT_TABLE6);
        let mut other = e.clone();
        (other.source, other.table) = ("2001:db8:1::2".parse().unwrap(), DEFAULT_TABLE);
        assert!(f.apply(&KernelEvent::Mfc(other)).is_empty(), "IPv4's table number");
        let v4 = mfc("10.1.0.1", 1, &[(2, 1)]);
        f.apply(&KernelEvent::Mfc(e.clone()));
        f.apply(&KernelEvent::Mfc(v4.clone()));
        assert_eq!(f.keys().count(), 2);
        assert_eq!(decide(&f, &e), Decision::Mirror { iif: 1, oifs: vec![2, 3], local: false });
        let mut star = e.clone();
        star.source = "::".parse().unwrap();
        f.apply(&KernelEvent::Mfc(star.clone()));
        assert!(matches!(decide(&f, &star), Decision::Kernel(_)));
        let member = |i| {
            KernelEvent::LocalGroups(Local {
                groups: [(i, e.group)].into(),
                udp_ports: Some([5000].into()),
            })
        };
        f.apply(&member(1));
        assert!(matches!(decide(&f, &e), Decision::Kernel(why) if why.contains("IPv6")));
        f.apply(&member(2));
        assert!(matches!(decide(&f, &e), Decision::Mirror { local: false, .. }));
        let gone = |table| KernelEvent::MfcGone { table, source: e.source, group: e.group };
        assert!(f.apply(&gone(DEFAULT_TABLE)).is_empty(), "IPv4's table number");
        assert_eq!(f.apply(&gone(DEFAULT_TABLE6)), vec![Sg::new(e.source, e.group)]);
        assert_eq!(
            f.keys().collect::<Vec<_>>(),
            vec![Sg::new(v4.source, v4.group), Sg::new(star.source, star.group)]
        );
    }

    #[test]
    fn other_tables_are_ignored_deletes_key_on_s_g_and_a_dump_replaces_all() {
        let mut f = Follow::new(Tables::default());
        let a = mfc("10.1.0.1", 1, &[(2, 1)]);
        let mut other = mfc("10.1.0.2", 1, &[(2, 1)]);
        other.table = 7;
        assert_eq!(f.apply(&KernelEvent::Mfc(a.clone())).len(), 1);
        assert!(f.apply(&KernelEvent::Mfc(other)).is_empty());
        let gone = KernelEvent::MfcGone { table: DEFAULT_TABLE, source: a.source, group: a.group };
        assert_eq!(f.apply(&gone), vec![Sg::new(a.source, a.group)]);
        assert_eq!(f.keys().count(), 0);
        f.apply(&KernelEvent::Mfc(a.clone()));
        let b = mfc("10.1.0.3", 1, &[(3, 1)]);
        let changed = f.apply(&KernelEvent::MfcSnapshot(vec![b.clone()]));
        assert_eq!(changed, vec![Sg::new(a.source, a.group), Sg::new(b.source, b.group)]);
        assert_eq!(f.keys().collect::<Vec<_>>(), vec![Sg::new(b.source, b.group)]);
    }
}
