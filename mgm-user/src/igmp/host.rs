// SPDX-License-Identifier: MIT OR Apache-2.0
//! The proxy's upstream side as a host (RFC 4605 §4.1): the downstream memberships merged
//! into one subscription per group, held on the upstream interface by the kernel's own host
//! stack. The kernel then reports it, answers the upstream querier (in whatever version that
//! querier speaks) and leaves, exactly as any host on that link would.
//!
//! One socket per group: a socket's membership of a group is either any-source or
//! source-specific, so a group changing between the two gets a fresh socket. The sockets are
//! never bound to a port, so the kernel delivers them no data.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::Ipv4Addr,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// What the proxy asks of the upstream network for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    /// Every source (EXCLUDE {}).
    Any,
    /// These sources only (INCLUDE).
    Sources(BTreeSet<Ipv4Addr>),
}

/// Merges memberships (`None` = any source) into one subscription per group: any source if
/// one member wants any, else the union of the sources.
pub fn merge<'a>(
    members: impl IntoIterator<Item = &'a (Option<Ipv4Addr>, Ipv4Addr)>,
) -> BTreeMap<Ipv4Addr, Want> {
    let mut out: BTreeMap<Ipv4Addr, Want> = BTreeMap::new();
    for &(source, group) in members {
        match (source, out.get_mut(&group)) {
            (_, Some(Want::Any)) => {}
            (None, _) => {
                out.insert(group, Want::Any);
            }
            (Some(s), Some(Want::Sources(set))) => {
                set.insert(s);
            }
            (Some(s), None) => {
                out.insert(group, Want::Sources(BTreeSet::from([s])));
            }
        }
    }
    out
}

/// The subscriptions held on the upstream interface.
#[derive(Debug)]
pub struct Upstream {
    ifindex: u32,
    addr: Ipv4Addr,
    held: BTreeMap<Ipv4Addr, (Want, Socket)>,
}

impl Upstream {
    /// The interface with this index and (primary) address.
    pub fn new(ifindex: u32, addr: Ipv4Addr) -> Self {
        Self { ifindex, addr, held: BTreeMap::new() }
    }

    /// What is held now.
    pub fn held(&self) -> BTreeMap<Ipv4Addr, Want> {
        self.held.iter().map(|(g, (w, _))| (*g, w.clone())).collect()
    }

    /// Brings the subscriptions to `want`; the groups that failed, with why (they are tried
    /// again on the next call).
    pub fn sync(&mut self, want: &BTreeMap<Ipv4Addr, Want>) -> Vec<(Ipv4Addr, io::Error)> {
        self.held.retain(|g, _| want.contains_key(g));
        let mut failed = Vec::new();
        for (group, w) in want {
            if let Err(e) = self.hold(*group, w) {
                failed.push((*group, e));
            }
        }
        failed
    }

    fn hold(&mut self, group: Ipv4Addr, want: &Want) -> io::Result<()> {
        let same_kind = matches!(
            (self.held.get(&group), want),
            (Some((Want::Sources(_), _)), Want::Sources(_))
        );
        if self.held.get(&group).is_some_and(|(w, _)| w == want) {
            return Ok(());
        }
        if !same_kind {
            // Dropping the old socket leaves its membership.
            self.held.remove(&group);
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            let mut held = Want::Sources(BTreeSet::new());
            if *want == Want::Any {
                sock.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(self.ifindex))?;
                held = Want::Any;
            }
            self.held.insert(group, (held, sock));
        }
        let (Some((Want::Sources(have), sock)), Want::Sources(new)) =
            (self.held.get_mut(&group), want)
        else {
            return Ok(());
        };
        for s in have.difference(new).copied().collect::<Vec<_>>() {
            sock.leave_ssm_v4(&s, &group, &self.addr)?;
            have.remove(&s);
        }
        for s in new.difference(have).copied().collect::<Vec<_>>() {
            sock.join_ssm_v4(&s, &group, &self.addr)?;
            have.insert(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn any_source_wins_and_sources_are_united() {
        let g1 = ip("239.1.1.1");
        let g2 = ip("232.1.1.1");
        let members = [
            (Some(ip("10.0.0.1")), g1),
            (None, g1),
            (Some(ip("10.0.0.2")), g1),
            (Some(ip("10.0.0.1")), g2),
            (Some(ip("10.0.0.3")), g2),
        ];
        let m = merge(&members);
        assert_eq!(m[&g1], Want::Any);
        assert_eq!(m[&g2], Want::Sources([ip("10.0.0.1"), ip("10.0.0.3")].into()));
        assert!(merge(&[]).is_empty());
    }
}
