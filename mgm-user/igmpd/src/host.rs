//! The proxy's upstream side as a host (RFC 4605 §4.1): the downstream memberships merged
//! into one subscription per group, held on the upstream interface by the kernel's own host
//! stack. The kernel then reports it (IGMP or MLD), answers the upstream querier (in whatever
//! version that querier speaks) and leaves, exactly as any host on that link would.
//!
//! One socket per group: a socket's membership of a group is either any-source or
//! source-specific, so a group changing between the two gets a fresh socket. The sockets are
//! never bound to a port, so the kernel delivers them no data.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
};

use socket2::Socket;

use super::wire::{Local, Wire};

/// What the proxy asks of the upstream network for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Want<A> {
    /// Every source (EXCLUDE {}).
    Any,
    /// These sources only (INCLUDE).
    Sources(BTreeSet<A>),
}

/// Merges memberships (`None` = any source) into one subscription per group: any source if
/// one member wants any, else the union of the sources.
pub fn merge<'a, A: Ord + Copy + 'a>(
    members: impl IntoIterator<Item = &'a (Option<A>, A)>,
) -> BTreeMap<A, Want<A>> {
    let mut out: BTreeMap<A, Want<A>> = BTreeMap::new();
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
pub struct Upstream<A> {
    at: Local<A>,
    held: BTreeMap<A, (Want<A>, Socket)>,
}

impl<A: Wire> Upstream<A> {
    /// The interface with this address.
    pub fn new(at: Local<A>) -> Self {
        Self { at, held: BTreeMap::new() }
    }

    /// What is held now.
    pub fn held(&self) -> BTreeMap<A, Want<A>> {
        self.held.iter().map(|(g, (w, _))| (*g, w.clone())).collect()
    }

    /// Brings the subscriptions to `want`; the groups that failed, with why (they are tried
    /// again on the next call).
    pub fn sync(&mut self, want: &BTreeMap<A, Want<A>>) -> Vec<(A, io::Error)> {
        self.held.retain(|g, _| want.contains_key(g));
        let mut failed = Vec::new();
        for (group, w) in want {
            if let Err(e) = self.hold(*group, w) {
                failed.push((*group, e));
            }
        }
        failed
    }

    fn hold(&mut self, group: A, want: &Want<A>) -> io::Result<()> {
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
            let sock = A::host_socket()?;
            let mut held = Want::Sources(BTreeSet::new());
            if *want == Want::Any {
                A::join_any(&sock, group, &self.at)?;
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
            A::leave_source(sock, s, group, &self.at)?;
            have.remove(&s);
        }
        for s in new.difference(have).copied().collect::<Vec<_>>() {
            A::join_source(sock, s, group, &self.at)?;
            have.insert(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

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
        assert!(merge::<Ipv4Addr>(&[]).is_empty());
    }
}
