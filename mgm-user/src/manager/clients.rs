// SPDX-License-Identifier: MIT OR Apache-2.0
//! Registration and interface ownership: who may use the API, which interfaces each
//! protocol owns (IGMP co-owns with one routing protocol), and releases in steps.

use super::*;

impl Manager {
    /// RegisterMProtocol.
    pub fn register(&mut self, protocol: u32, component: u32) -> MgmResult<Handle> {
        if self.ids.contains(&(protocol, component)) {
            return Err(MgmError::AlreadyExists);
        }
        self.ids.insert((protocol, component));
        let h = Handle(self.id());
        self.clients.insert(h, Client { protocol, component });
        Ok(h)
    }

    /// DeRegisterMProtocol: refused (CAN_NOT_COMPLETE) while the client owns interfaces.
    pub fn deregister(&mut self, h: Handle, now: Duration) -> MgmResult<()> {
        self.client(h)?;
        if self.owned_count(h) > 0 {
            return Err(MgmError::CanNotComplete);
        }
        if let Some(c) = self.clients.remove(&h) {
            self.ids.remove(&(c.protocol, c.component));
        }
        self.enums.retain(|_, e| e.owner != h);
        // Requests it will never answer take their defaults now.
        for id in self.requests.of_client(h) {
            self.expire_request(id, now);
        }
        Ok(())
    }

    /// A connection closed: release everything the client owns, then deregister it.
    pub fn client_gone(&mut self, h: Handle, now: Duration) {
        if !self.clients.contains_key(&h) {
            return;
        }
        for iface in self.owned_ifaces(h) {
            let _ = self.release_interface(h, iface, now);
        }
        let _ = self.deregister(h, now);
    }

    /// TakeInterfaceOwnership.
    pub fn take_interface(&mut self, h: Handle, iface: Iface) -> MgmResult<()> {
        let igmp = self.client(h)?.is_igmp();
        let o = self.owners.get(&iface).copied().unwrap_or_default();
        if igmp {
            match o.igmp {
                Some(x) if x == h => return Ok(()),
                Some(_) => return Err(MgmError::AlreadyExists),
                None => {}
            }
            self.owners.entry(iface).or_default().igmp = Some(h);
            self.owned.entry(h).or_default().insert(iface);
            self.effects.push(Effect::Owner { iface, owner: h, owns: true });
            return Ok(());
        }
        match o.routing {
            Some(x) if x == h => return Ok(()),
            Some(_) => return Err(MgmError::AlreadyExists),
            None => {}
        }
        // IGMP stops while the interface changes hands, then re-reports through the new owner.
        if let Some(i) = o.igmp {
            self.notify(i, Event::DisableIgmp { iface });
        }
        self.owners.entry(iface).or_default().routing = Some(h);
        self.owned.entry(h).or_default().insert(iface);
        self.effects.push(Effect::Owner { iface, owner: h, owns: true });
        if let Some(i) = o.igmp {
            // The new owner learns the receivers IGMP already has there (IGMP's re-adds of
            // memberships it holds change nothing, so they would not tell it).
            let patterns = self.members_by_iface.get(&(iface, i)).cloned().unwrap_or_default();
            for p in patterns {
                if self.members.get(&(p, iface, i)).is_some_and(|f| f.join) {
                    self.notify(h, Event::LocalJoin { entry: p.entry(), iface });
                }
            }
            self.notify(i, Event::EnableIgmp { iface });
        }
        Ok(())
    }

    /// Whether the core has an MFE for `sg` or is creating one.
    pub fn knows(&self, sg: Sg) -> bool {
        self.mfes.contains_key(&sg) || self.creating.contains_key(&sg)
    }

    /// How long RPF and creation answers are awaited.
    pub fn answer_timeout(&self) -> Duration {
        self.settings.answer_timeout
    }

    /// How many interfaces `h` owns.
    pub fn owned_count(&self, h: Handle) -> usize {
        self.owned.get(&h).map_or(0, BTreeSet::len)
    }

    /// The interfaces `h` owns.
    pub fn owned_ifaces(&self, h: Handle) -> Vec<Iface> {
        self.owned.get(&h).into_iter().flatten().copied().collect()
    }

    /// How many membership entries `h` has.
    pub fn membership_count(&self, h: Handle) -> usize {
        self.member_counts.get(&h).copied().unwrap_or(0)
    }

    /// Whether `h` has a membership entry (`pattern` on `iface`).
    pub fn has_membership(&self, h: Handle, pattern: Pattern, iface: Iface) -> bool {
        self.members.contains_key(&(pattern, iface, h))
    }

    /// How many group enumerations `h` has open.
    pub fn enum_count(&self, h: Handle) -> usize {
        self.enums.values().filter(|e| e.owner == h).count()
    }

    /// Whether `h` owns `iface` (as its routing protocol or as IGMP).
    pub fn owns(&self, h: Handle, iface: Iface) -> bool {
        self.owners.get(&iface).is_some_and(|o| o.routing == Some(h) || o.igmp == Some(h))
    }

    /// ReleaseInterfaceOwnership: the client's memberships on the interface go (with their
    /// alerts), every MFE entry kept on its behalf there goes, and MFEs arriving there are
    /// deleted when the routing owner leaves. All at once: see [`Manager::release_step`].
    pub fn release_interface(&mut self, h: Handle, iface: Iface, now: Duration) -> MgmResult<()> {
        let mut unlimited = usize::MAX;
        self.release_step(h, iface, &mut unlimited, now).map(|_| ())
    }

    /// ReleaseInterfaceOwnership in steps of at most `budget` entries (the client's
    /// memberships there, then the MFEs arriving there; what it used is taken off `budget`):
    /// call again while it answers [`Progress::More`]. The first call checks ownership and
    /// stops IGMP there; the client owns the interface until the last step, so it cannot
    /// change hands half released.
    pub fn release_step(
        &mut self,
        h: Handle,
        iface: Iface,
        budget: &mut usize,
        now: Duration,
    ) -> MgmResult<Progress> {
        let igmp = self.client(h)?.is_igmp();
        let o = self.owners.get(&iface).copied().ok_or(MgmError::InvalidParameter)?;
        let slot = if igmp { o.igmp } else { o.routing };
        if slot != Some(h) {
            return Err(MgmError::InvalidParameter);
        }
        let co_igmp = if igmp { None } else { o.igmp };
        if self.releasing.insert((h, iface))
            && let Some(i) = co_igmp
        {
            self.notify(i, Event::DisableIgmp { iface });
        }
        *budget = (*budget).max(1);
        // A membership costs one, and each MFE whose outgoing list it changes one more.
        loop {
            if !self.refresh_stale(budget, now) {
                return Ok(Progress::More);
            }
            let first = self.members_by_iface.get(&(iface, h)).and_then(|s| s.first().copied());
            let Some(p) = first else { break };
            if *budget == 0 {
                return Ok(Progress::More);
            }
            *budget -= 1;
            let flags = self.members.get(&(p, iface, h)).copied().unwrap_or_default();
            let bits = (u32::from(flags.join) * MGM_JOIN_STATE_FLAG)
                | (u32::from(flags.forward) * MGM_FORWARD_STATE_FLAG);
            self.remove_membership(h, p, iface, bits, now, true);
        }
        if !igmp {
            *budget -= self.delete_arriving(iface, *budget, DeleteReason::Released);
            if !self.mfes.arriving(iface, 1).is_empty() {
                return Ok(Progress::More);
            }
            let creating: Vec<Sg> =
                self.creating.iter().filter(|(_, c)| c.iif == iface).map(|(sg, _)| *sg).collect();
            for sg in creating {
                self.abandon_creation(sg);
            }
        }
        self.releasing.remove(&(h, iface));
        self.effects.push(Effect::Owner { iface, owner: h, owns: false });
        let entry = self.owners.get_mut(&iface).expect("checked above");
        if igmp {
            entry.igmp = None;
        } else {
            entry.routing = None;
        }
        if *entry == Owners::default() {
            self.owners.remove(&iface);
        }
        if let Some(set) = self.owned.get_mut(&h) {
            set.remove(&iface);
            if set.is_empty() {
                self.owned.remove(&h);
            }
        }
        if let Some(i) = co_igmp {
            self.notify(i, Event::EnableIgmp { iface });
        }
        Ok(Progress::Done)
    }

    /// GetProtocolOnInterface: (protocol id, component id) of the routing owner (or of IGMP
    /// when it is alone there).
    pub fn protocol_on_interface(&self, iface: Iface) -> MgmResult<(u32, u32)> {
        let o = self.owners.get(&iface).ok_or(MgmError::NotFound)?;
        let h = o.routing.or(o.igmp).ok_or(MgmError::NotFound)?;
        let c = &self.clients[&h];
        Ok((c.protocol, c.component))
    }

    /// An interface disappeared from the kernel: owners are told, then it is released for
    /// each of them (routing owner first).
    pub fn interface_gone(&mut self, ifindex: u32, now: Duration) {
        let gone: Vec<(Iface, Owners)> = self
            .owners
            .iter()
            .filter(|(i, _)| i.ifindex == ifindex)
            .map(|(i, o)| (*i, *o))
            .collect();
        for (iface, o) in gone {
            for h in [o.routing, o.igmp].into_iter().flatten() {
                self.notify(h, Event::InterfaceGone { iface });
            }
            // Its MFEs are gone because the interface is, not because someone released it.
            self.delete_arriving(iface, usize::MAX, DeleteReason::InterfaceGone);
            for h in [o.routing, o.igmp].into_iter().flatten() {
                let _ = self.release_interface(h, iface, now);
            }
        }
    }

    pub(super) fn routing_owner(&self, iface: Iface) -> Option<Handle> {
        self.owners.get(&iface).and_then(|o| o.routing)
    }

    /// The routing protocol a membership speaks for: the client itself, or for IGMP the
    /// routing owner of the interface.
    pub(super) fn responsible(&self, h: Handle, iface: Iface) -> Option<Handle> {
        if self.clients.get(&h).is_some_and(Client::is_igmp) {
            self.routing_owner(iface)
        } else {
            Some(h)
        }
    }

    pub(super) fn routing_clients(&self) -> Vec<Handle> {
        self.clients.iter().filter(|(_, c)| !c.is_igmp()).map(|(h, _)| *h).collect()
    }
}
