// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mirror's ports: each managed interface's MAC, MTU and scope boundary, and the next
//! hops' MACs from the kernel's neighbours.

use super::*;

impl<F: FastPath> Mirror<F> {
    /// Makes `ifindex` usable as an outgoing interface (its MAC is the source of copies), or
    /// updates it (an MTU change).
    pub fn add_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError> {
        if self.ports.get(&ifindex) == Some(&port) {
            return Ok(());
        }
        self.fp.set_port(ifindex, port)?;
        self.ports.insert(ifindex, port);
        // MFEs sending there may have a new smallest MTU.
        let users: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(_, m)| m.legs.iter().any(|l| l.ifindex == ifindex))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in users {
            self.fp.set_mfe(k, self.value(&m))?;
        }
        Ok(())
    }

    /// Draws (or, with `None`, removes) a scope boundary at `ifindex`. Installed entries
    /// that cross it stop doing so at once; an entry the boundary no longer stops gets its
    /// interface back at its next install (the owner of the entry reinstalls it).
    pub fn set_boundary(
        &mut self,
        ifindex: u32,
        scope: Option<Scope>,
    ) -> Result<(), FastPathError> {
        match scope {
            Some(s) => self.boundaries.insert(ifindex, s),
            None => self.boundaries.remove(&ifindex),
        };
        let crossing: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(k, m)| m.legs.iter().any(|l| self.stops(l.ifindex, k, m.iif)))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in crossing {
            let legs = m.legs.iter().filter(|l| !self.stops(l.ifindex, &k, m.iif)).cloned();
            self.install_legs(k, m.iif, legs.collect(), m.origin)?;
        }
        Ok(())
    }

    /// Whether a boundary keeps `key`'s packets arriving on `iif` from leaving on `oif`: one
    /// at either interface at the group's scope or above.
    pub(super) fn stops(&self, oif: u32, key: &Sg, iif: u32) -> bool {
        [iif, oif].iter().any(|i| self.boundaries.get(i).is_some_and(|b| b.stops(key.group)))
    }

    /// The smallest known MTU among `legs`' interfaces (0: none known).
    pub(super) fn min_mtu(&self, legs: &[Leg]) -> u32 {
        legs.iter()
            .filter_map(|l| self.ports.get(&l.ifindex))
            .map(|p| u32::from(p.mtu))
            .filter(|&m| m != 0)
            .min()
            .unwrap_or(0)
    }

    /// The next hops installed MFEs send to: the neighbours to keep resolved.
    pub fn wanted_neighbours(&self) -> BTreeSet<(u32, IpAddr)> {
        self.hop_users.keys().copied().collect()
    }

    /// Whether an installed MFE sends to this next hop.
    pub fn wants_neighbour(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.hop_users.contains_key(&(ifindex, ip))
    }

    /// The next hops MFEs send to whose MAC is not known yet.
    pub fn unresolved_neighbours(&self) -> Vec<(u32, IpAddr)> {
        self.hop_users.keys().filter(|k| !self.neighbours.contains_key(k)).copied().collect()
    }

    /// Whether some next hop an MFE sends to has no known MAC yet.
    pub fn has_unresolved_neighbours(&self) -> bool {
        self.hop_users.keys().any(|k| !self.neighbours.contains_key(k))
    }

    /// Keeps `hop_users` in step as MFEs with next-hop legs come (`add`) and go.
    pub(super) fn count_hops(&mut self, legs: &[Leg], add: bool) {
        for l in legs.iter().filter(|l| !l.nexthop.is_unspecified()) {
            let k = (l.ifindex, l.nexthop);
            if add {
                *self.hop_users.entry(k).or_default() += 1;
            } else if let Some(n) = self.hop_users.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.hop_users.remove(&k);
                }
            }
        }
    }

    /// A next hop's MAC (new or changed): the MFEs sending there get lists with it, each in
    /// one MFE write as for any list change.
    pub fn set_neighbour(
        &mut self,
        ifindex: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), FastPathError> {
        if self.neighbours.insert((ifindex, ip), mac) == Some(mac) {
            return Ok(());
        }
        let hop = (ifindex, ip);
        let users: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(_, m)| m.legs.iter().any(|l| (l.ifindex, l.nexthop) == hop && l.mac != mac))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in users {
            let legs: Vec<Leg> = m
                .legs
                .iter()
                .map(|l| if (l.ifindex, l.nexthop) == hop { Leg { mac, ..*l } } else { *l })
                .collect();
            self.install_legs(k, m.iif, legs, m.origin)?;
        }
        Ok(())
    }

    /// Removes a port; refused while an MFE still uses it as IIF or OIF.
    pub fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let users = self
            .mfes
            .values()
            .filter(|m| m.iif == ifindex || m.legs.iter().any(|l| l.ifindex == ifindex))
            .count();
        if users > 0 {
            return Err(FastPathError::PortInUse(ifindex, users));
        }
        self.fp.remove_port(ifindex)?;
        self.ports.remove(&ifindex);
        Ok(())
    }

    pub fn ports(&self) -> impl Iterator<Item = (u32, &PortValue)> {
        self.ports.iter().map(|(i, p)| (*i, p))
    }
}
