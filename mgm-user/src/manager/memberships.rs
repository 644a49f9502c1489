// SPDX-License-Identifier: MIT OR Apache-2.0
//! Memberships: (S,G), (*,G) and (*,*) joins on owned interfaces, the outgoing lists they
//! give each MFE, and the join and prune alerts.

use super::*;

impl Manager {
    pub(super) fn check_membership_args(
        &self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
    ) -> MgmResult<()> {
        self.client(h)?;
        let o = self.owners.get(&iface).copied().unwrap_or_default();
        if o.routing != Some(h) && o.igmp != Some(h) {
            return Err(MgmError::InvalidParameter);
        }
        if pattern.family() != iface.family() {
            return Err(MgmError::InvalidParameter);
        }
        if flags == 0 || flags & !(MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG) != 0 {
            return Err(MgmError::InvalidParameter);
        }
        Ok(())
    }

    /// AddGroupMembershipEntry.
    pub fn add_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
    ) -> MgmResult<()> {
        self.check_membership_args(h, pattern, iface, flags)?;
        let key = (pattern, iface, h);
        let old = self.members.get(&key).copied().unwrap_or_default();
        let new = Flags {
            join: old.join || flags & MGM_JOIN_STATE_FLAG != 0,
            forward: old.forward || flags & MGM_FORWARD_STATE_FLAG != 0,
        };
        if new.join && !old.join {
            let first = !self.joined.contains_key(&pattern);
            *self.joined.entry(pattern).or_default().entry(h).or_default() += 1;
            let responsible = self.responsible(h, iface);
            if first {
                for to in self.routing_clients() {
                    if Some(to) != responsible {
                        self.notify(
                            to,
                            Event::JoinAlert { entry: pattern.entry(), member_add: true },
                        );
                    }
                }
            }
            if self.clients[&h].is_igmp()
                && let Some(r) = self.routing_owner(iface)
            {
                self.notify(r, Event::LocalJoin { entry: pattern.entry(), iface });
            }
        }
        if self.members.insert(key, new).is_none() {
            *self.member_counts.entry(h).or_default() += 1;
        }
        self.members_by_iface.entry((iface, h)).or_default().insert(pattern);
        if new.forward && !old.forward {
            let sgs: Vec<Sg> = self.mfes_matching(pattern);
            for sg in sgs {
                self.recompute(sg, now);
            }
        }
        Ok(())
    }

    /// DeleteGroupMembershipEntry: clears the given flags; the entry goes when none is left.
    pub fn delete_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
    ) -> MgmResult<()> {
        self.check_membership_args(h, pattern, iface, flags)?;
        let old = self.members.get(&(pattern, iface, h)).copied().ok_or(MgmError::NotFound)?;
        let clears_something = (flags & MGM_JOIN_STATE_FLAG != 0 && old.join)
            || (flags & MGM_FORWARD_STATE_FLAG != 0 && old.forward);
        if !clears_something {
            return Err(MgmError::NotFound);
        }
        self.remove_membership(h, pattern, iface, flags, now, false);
        Ok(())
    }

    /// Clears `flags` of a membership, with its alerts. The outgoing lists it changes are
    /// brought up to date now, or (`later`) left to [`Manager::refresh_stale`].
    pub(super) fn remove_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
        later: bool,
    ) {
        let key = (pattern, iface, h);
        let Some(old) = self.members.get(&key).copied() else {
            return;
        };
        let new = Flags {
            join: old.join && flags & MGM_JOIN_STATE_FLAG == 0,
            forward: old.forward && flags & MGM_FORWARD_STATE_FLAG == 0,
        };
        if new == Flags::default() {
            self.members.remove(&key);
            if let Some(n) = self.member_counts.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    self.member_counts.remove(&h);
                }
            }
            if let Some(set) = self.members_by_iface.get_mut(&(iface, h)) {
                set.remove(&pattern);
                if set.is_empty() {
                    self.members_by_iface.remove(&(iface, h));
                }
            }
        } else {
            self.members.insert(key, new);
        }
        if old.join && !new.join {
            if let Some(by) = self.joined.get_mut(&pattern) {
                if let Some(n) = by.get_mut(&h) {
                    *n -= 1;
                    if *n == 0 {
                        by.remove(&h);
                    }
                }
                if by.is_empty() {
                    self.joined.remove(&pattern);
                }
            }
            self.prune_alerts(h, pattern, iface);
            if self.clients.get(&h).is_some_and(Client::is_igmp)
                && let Some(r) = self.routing_owner(iface)
            {
                self.notify(r, Event::LocalLeave { entry: pattern.entry(), iface });
            }
        }
        if old.forward && !new.forward {
            if later {
                self.stale.push_back((pattern, None));
            } else {
                for sg in self.mfes_matching(pattern) {
                    self.recompute(sg, now);
                }
            }
        }
    }

    /// Brings up to date the outgoing lists releases left stale, at most `budget` MFEs (what
    /// it used is taken off); whether none is left.
    pub(super) fn refresh_stale(&mut self, budget: &mut usize, now: Duration) -> bool {
        while let Some(&(p, after)) = self.stale.front() {
            if *budget == 0 {
                return false;
            }
            let (first, hi) = group_range(p);
            let lo = after.map_or(first, std::ops::Bound::Excluded);
            let batch: Vec<Sg> =
                self.mfes.range((lo, hi)).take(*budget).map(|(sg, _)| *sg).collect();
            let Some(&last) = batch.last() else {
                self.stale.pop_front();
                continue;
            };
            *budget -= batch.len();
            for sg in batch.into_iter().filter(|sg| p.matches(sg)) {
                self.recompute(sg, now);
            }
            if let Some(front) = self.stale.front_mut() {
                front.1 = Some(last);
            }
        }
        true
    }

    /// Member-delete prune alerts after `h` lost join state for `pattern` on `iface`.
    pub(super) fn prune_alerts(&mut self, h: Handle, pattern: Pattern, iface: Iface) {
        let entry = pattern.entry();
        let alert = || Event::PruneAlert {
            request: None,
            entry,
            iface: Some(iface),
            member_delete: true,
            timeout_secs: 0,
        };
        let joined: Vec<Handle> =
            self.joined.get(&pattern).map(|by| by.keys().copied().collect()).unwrap_or_default();
        let deleter = self.responsible(h, iface);
        if let (Some(g), Some(s)) = (pattern.group(), pattern.source()) {
            // (S,G): the owner of the incoming interface towards S, once nobody wants it.
            if joined.is_empty()
                && let Some(m) = self.mfes.get(&Sg::new(s, g))
                && let Some(up) = self.routing_owner(m.iif)
                && Some(up) != deleter
            {
                self.notify(up, alert());
            }
            return;
        }
        // (*,G) and (*,*): only when this client's last interface for the entry went.
        if joined.contains(&h) {
            return;
        }
        let remaining: BTreeSet<Handle> = joined.into_iter().collect();
        match remaining.len() {
            1 => {
                let r = *remaining.first().expect("one");
                if !self.clients[&r].is_igmp() {
                    self.notify(r, alert());
                }
            }
            0 => {
                for to in self.routing_clients() {
                    if Some(to) != deleter {
                        self.notify(to, alert());
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn mfes_matching(&self, pattern: Pattern) -> Vec<Sg> {
        let range = group_range(pattern);
        self.mfes.range(range).map(|(sg, _)| *sg).filter(|sg| pattern.matches(sg)).collect()
    }

    /// The outgoing list the memberships give `sg` arriving on `iif`.
    pub(super) fn oil_for(&self, sg: Sg, iif: Iface, disabled: &BTreeSet<Iface>) -> Oil {
        let mut out = Oil::new();
        // Its (*,G) and (S,G) memberships, then its family's (*,*).
        for lo in [Pattern::star_g(sg.group), Pattern::any(sg.family())] {
            let range =
                (lo, Iface::MIN, Handle(0))..=(lo.group_end(), Iface::MAX, Handle(u64::MAX));
            for ((p, iface, h), f) in self.members.range(range) {
                if f.forward && p.matches(&sg) && *iface != iif && !disabled.contains(iface) {
                    out.entry(*iface).or_default().insert(*h);
                }
            }
        }
        out
    }

    /// Brings an MFE's outgoing list in line with the memberships.
    pub(super) fn recompute(&mut self, sg: Sg, now: Duration) {
        let Some(m) = self.mfes.get(&sg) else { return };
        let oifs = self.oil_for(sg, m.iif, &m.disabled);
        if oifs == m.oifs {
            return;
        }
        let became_empty = oifs.is_empty() && !m.oifs.is_empty();
        let became_busy = !oifs.is_empty() && m.oifs.is_empty();
        let iif = m.iif;
        self.mfes.set_oifs(sg, oifs.clone());
        self.effects.push(Effect::Install { sg, iif, oifs });
        if became_empty {
            self.oil_empty_alert(sg, now);
        }
        if became_busy {
            self.oil_busy_alert(sg);
        }
    }

    /// Join alert (member-add = false) to the upstream owner: an MFE that forwarded nowhere
    /// has receivers again, the mirror of the prune alert with member-delete = false (a PIM
    /// would send its join upstream).
    pub(super) fn oil_busy_alert(&mut self, sg: Sg) {
        let Some(up) = self.mfes.get(&sg).and_then(|m| self.routing_owner(m.iif)) else {
            return;
        };
        self.notify(up, Event::JoinAlert { entry: Pattern::sg(sg).entry(), member_add: false });
    }

    /// Prune alert (member-delete = false) to the upstream owner: the MFE forwards nowhere.
    pub(super) fn oil_empty_alert(&mut self, sg: Sg, now: Duration) {
        let Some(m) = self.mfes.get(&sg) else { return };
        let Some(up) = self.routing_owner(m.iif) else {
            return;
        };
        let request = RequestId(self.id());
        let deadline = now.saturating_add(self.settings.answer_timeout);
        self.requests.insert(request, up, Awaiting::PruneTimeout(sg), deadline);
        let timeout_secs = self.settings.mfe_timeout.as_secs();
        self.notify(
            up,
            Event::PruneAlert {
                request: Some(request),
                entry: Pattern::sg(sg).entry(),
                iface: None,
                member_delete: false,
                timeout_secs,
            },
        );
    }
}
