// SPDX-License-Identifier: MIT OR Apache-2.0
//! MFEs: created from a first packet (RPF and creation alerts answered or defaulted), kept
//! alive by traffic, expired, and deleted with a reason.

use super::*;

impl Manager {
    /// A packet arrived for `sg` on `ifindex` with no MFE (upcall), or on the wrong interface.
    pub fn new_packet(&mut self, sg: Sg, ifindex: u32, header: &[u8], now: Duration) {
        let in_iface = Iface::new(ifindex, sg.family().any());
        if let Some(m) = self.mfes.get(&sg) {
            if m.iif.ifindex != ifindex {
                let owner = self.owners.get(&in_iface).and_then(|o| o.routing.or(o.igmp));
                if let Some(to) = owner {
                    let event = Event::WrongInterface {
                        source: sg.source,
                        group: sg.group,
                        iface: in_iface,
                        header: header.to_vec(),
                    };
                    self.notify(to, event);
                }
            }
            return;
        }
        if self.creating.contains_key(&sg) {
            return; // already asking; more packets change nothing
        }
        let owners = self.owners.get(&in_iface).copied().unwrap_or_default();
        if owners == Owners::default() {
            // No client owns the interface: its traffic is not MGM's to route, and a
            // negative-cache entry here would blackhole what the kernel would otherwise get.
            return;
        }
        if !self.admit(ifindex, now) {
            // The packet stays with the kernel; the flow's next packets ask again.
            self.refused += 1;
            return;
        }
        let Some(owner) = owners.routing else {
            // Only IGMP is there: nobody to ask, the proposal is final.
            self.creation_alerts(sg, in_iface, sg.family().any(), now);
            return;
        };
        let request = RequestId(self.id());
        let deadline = now.saturating_add(self.settings.answer_timeout);
        self.requests.insert(request, owner, Awaiting::Rpf(sg), deadline);
        self.creating
            .insert(sg, Creating { iif: in_iface, upstream: sg.family().any(), stage: Stage::Rpf });
        self.notify(
            owner,
            Event::Rpf {
                request,
                source: sg.source,
                group: sg.group,
                iif: in_iface,
                upstream: sg.family().any(),
                header: header.to_vec(),
            },
        );
    }

    /// Admission of a new flow arriving on `ifindex`: a creation token of that interface (a
    /// spray of sources on one link cannot starve the others), and room in the table, made by
    /// evicting the oldest MFE that never saw traffic beyond its first packets if need be.
    pub(super) fn admit(&mut self, ifindex: u32, now: Duration) -> bool {
        let rate = self.settings.creations_per_sec.max(1);
        let (tokens, since) = self.buckets.get(&ifindex).copied().unwrap_or((rate, now));
        let earned = now.saturating_sub(since).as_millis().saturating_mul(u128::from(rate)) / 1000;
        let tokens = u32::try_from(u128::from(tokens) + earned).unwrap_or(u32::MAX).min(rate);
        // Time since `since` that did not earn a whole token is kept for the next count.
        let since = if earned > 0 { now } else { since };
        if tokens == 0 {
            self.buckets.insert(ifindex, (0, since));
            return false;
        }
        if self.mfes.len() + self.creating.len() >= self.settings.max_mfes {
            let Some(old) = self.mfes.oldest_unproven() else {
                self.buckets.insert(ifindex, (tokens, since));
                return false;
            };
            self.delete_mfe(old, DeleteReason::Evicted);
            self.evicted += 1;
        }
        self.buckets.insert(ifindex, (tokens - 1, since));
        true
    }

    /// (new flows refused an MFE, MFEs evicted for new flows) so far.
    pub fn admission_counts(&self) -> (u64, u64) {
        (self.refused, self.evicted)
    }

    /// The room for MFEs (the fast path's, less what static entries take).
    pub fn set_max_mfes(&mut self, n: usize) {
        self.settings.max_mfes = n;
    }

    /// Takes request `request` off the books for its answer: NOT_FOUND if there is no such
    /// request of this kind (or it was answered), INVALID_PARAMETER if it was for another client.
    pub(super) fn claim(
        &mut self,
        h: Handle,
        request: RequestId,
        kind: impl Fn(Awaiting) -> Option<Sg>,
    ) -> MgmResult<Sg> {
        let (to, awaiting) = self.requests.get(request).ok_or(MgmError::NotFound)?;
        let sg = kind(awaiting).ok_or(MgmError::NotFound)?;
        if to != h {
            return Err(MgmError::InvalidParameter);
        }
        self.requests.remove(request);
        Ok(sg)
    }

    /// The family of the (S,G) request `request` is about, while it is open.
    pub fn request_family(&self, request: RequestId) -> Option<Family> {
        let (_, a) = self.requests.get(request)?;
        let (Awaiting::Rpf(sg) | Awaiting::Creation(sg) | Awaiting::PruneTimeout(sg)) = a;
        Some(sg.family())
    }

    /// The RPF callback's answer: the incoming interface and upstream neighbour to use.
    pub fn answer_rpf(
        &mut self,
        h: Handle,
        request: RequestId,
        iif: Iface,
        upstream: IpAddr,
        now: Duration,
    ) -> MgmResult<()> {
        let (_, awaiting) = self.requests.get(request).ok_or(MgmError::NotFound)?;
        if let Awaiting::Rpf(sg) = awaiting {
            // An answer of the other family is refused and the request stays open.
            check_iif(sg, iif, upstream)?;
        }
        let sg = self.claim(h, request, |a| match a {
            Awaiting::Rpf(sg) => Some(sg),
            _ => None,
        })?;
        self.creation_alerts(sg, iif, upstream, now);
        Ok(())
    }

    /// Computes the outgoing list and asks each owner of an outgoing interface.
    pub(super) fn creation_alerts(&mut self, sg: Sg, iif: Iface, upstream: IpAddr, now: Duration) {
        let oifs = self.oil_for(sg, iif, &BTreeSet::new());
        let mut by_owner: BTreeMap<Handle, Vec<IfEntry>> = BTreeMap::new();
        for iface in oifs.keys() {
            let o = self.owners.get(iface).copied().unwrap_or_default();
            if let Some(owner) = o.routing.or(o.igmp) {
                by_owner.entry(owner).or_default().push(IfEntry {
                    iface: *iface,
                    enabled: true,
                    igmp: o.igmp.is_some(),
                });
            }
        }
        let deadline = now.saturating_add(self.settings.answer_timeout);
        let mut waiting = BTreeMap::new();
        for (owner, list) in by_owner {
            let request = RequestId(self.id());
            self.requests.insert(request, owner, Awaiting::Creation(sg), deadline);
            waiting.insert(request, owner);
            self.notify(
                owner,
                Event::CreationAlert {
                    request,
                    source: sg.source,
                    group: sg.group,
                    iif,
                    oifs: list,
                },
            );
        }
        let stage = Stage::Alerts { waiting, disabled: BTreeSet::new() };
        self.creating.insert(sg, Creating { iif, upstream, stage });
        self.try_finish_creation(sg, now);
    }

    /// The creation alert's answer: which of the client's own interfaces to keep out.
    pub fn answer_creation(
        &mut self,
        h: Handle,
        request: RequestId,
        disabled: &[Iface],
        now: Duration,
    ) -> MgmResult<()> {
        let sg = self.claim(h, request, |a| match a {
            Awaiting::Creation(sg) => Some(sg),
            _ => None,
        })?;
        let own: Vec<Iface> = disabled
            .iter()
            .copied()
            .filter(|i| self.owners.get(i).is_some_and(|o| o.routing.or(o.igmp) == Some(h)))
            .collect();
        if let Some(Creating { stage: Stage::Alerts { waiting, disabled }, .. }) =
            self.creating.get_mut(&sg)
        {
            waiting.remove(&request);
            disabled.extend(own);
        }
        self.try_finish_creation(sg, now);
        Ok(())
    }

    pub(super) fn try_finish_creation(&mut self, sg: Sg, now: Duration) {
        let Some(c) = self.creating.get(&sg) else {
            return;
        };
        let Stage::Alerts { waiting, disabled } = &c.stage else {
            return;
        };
        if !waiting.is_empty() {
            return;
        }
        let (iif, upstream, disabled) = (c.iif, c.upstream, disabled.clone());
        self.creating.remove(&sg);
        if self.mfes.len() >= self.settings.max_mfes {
            self.refused += 1;
            return; // full: the next packet tries again
        }
        let oifs = self.oil_for(sg, iif, &disabled);
        let timeout = self.settings.mfe_timeout;
        let empty = oifs.is_empty();
        self.mfes.insert(
            sg,
            Mfe {
                iif,
                upstream,
                oifs: oifs.clone(),
                disabled,
                created: now,
                expires: now.saturating_add(timeout),
                timeout,
            },
        );
        self.effects.push(Effect::Install { sg, iif, oifs });
        if empty {
            self.oil_empty_alert(sg, now);
        }
    }

    pub(super) fn abandon_creation(&mut self, sg: Sg) {
        self.creating.remove(&sg);
        self.requests.remove_about(sg, |a| matches!(a, Awaiting::Rpf(_) | Awaiting::Creation(_)));
    }

    /// The prune alert's answer: the MFE's new timeout, at most [`MAX_MFE_TIMEOUT`] (a longer
    /// one is INVALID_PARAMETER and leaves the request open).
    pub fn answer_prune(
        &mut self,
        h: Handle,
        request: RequestId,
        timeout: Duration,
        now: Duration,
    ) -> MgmResult<()> {
        if timeout > MAX_MFE_TIMEOUT {
            return Err(MgmError::InvalidParameter);
        }
        let sg = self.claim(h, request, |a| match a {
            Awaiting::PruneTimeout(sg) => Some(sg),
            _ => None,
        })?;
        self.mfes.set_timeout(sg, timeout, now);
        Ok(())
    }

    pub(super) fn expire_request(&mut self, id: RequestId, now: Duration) {
        let Some((_, awaiting)) = self.requests.remove(id) else {
            return;
        };
        match awaiting {
            Awaiting::Rpf(sg) => {
                if let Some(c) = self.creating.get(&sg).cloned() {
                    self.creation_alerts(sg, c.iif, c.upstream, now);
                }
            }
            Awaiting::Creation(sg) => {
                if let Some(Creating { stage: Stage::Alerts { waiting, .. }, .. }) =
                    self.creating.get_mut(&sg)
                {
                    waiting.remove(&id);
                }
                self.try_finish_creation(sg, now);
            }
            Awaiting::PruneTimeout(_) => {} // the default timeout stands
        }
    }

    /// `sg` carried traffic beyond the packets that created it: a real flow, no longer the
    /// first to go when the table is full.
    pub fn prove(&mut self, sg: Sg) {
        self.mfes.prove(sg);
    }

    /// Traffic was seen on `sg` (its fast-path counters moved): it stays for another timeout.
    pub fn refresh(&mut self, sg: Sg, now: Duration) {
        self.mfes.refresh(sg, now);
    }

    /// Applies defaults to unanswered requests and removes idle MFEs, at most
    /// [`TICK_BATCH`] of each: while [`Manager::has_due`], the rest waits for the next call.
    pub fn tick(&mut self, now: Duration) {
        for id in self.requests.due(now, TICK_BATCH) {
            self.expire_request(id, now);
        }
        for sg in self.mfes.expired(now, TICK_BATCH) {
            self.delete_mfe(sg, DeleteReason::Expired);
        }
        if let Some(born) = now.checked_sub(UNPROVEN_LIFE) {
            for sg in self.mfes.unproven_since(born, TICK_BATCH) {
                self.delete_mfe(sg, DeleteReason::Expired);
            }
        }
    }

    /// Whether requests or MFEs are due at `now` (the last tick left some).
    /// (Asked between every two inputs: it looks at the head of each index, nothing more.)
    pub fn has_due(&self, now: Duration) -> bool {
        self.requests.next_deadline().is_some_and(|d| d <= now)
            || self.mfes.next_expiry().is_some_and(|t| t <= now)
            || self
                .mfes
                .oldest_unproven_since()
                .is_some_and(|t| t.saturating_add(UNPROVEN_LIFE) <= now)
    }

    /// Deletes up to `n` of the MFEs arriving on `iface`; how many.
    pub(super) fn delete_arriving(
        &mut self,
        iface: Iface,
        n: usize,
        reason: DeleteReason,
    ) -> usize {
        let arriving = self.mfes.arriving(iface, n);
        for &sg in &arriving {
            self.delete_mfe(sg, reason);
        }
        arriving.len()
    }

    pub(super) fn delete_mfe(&mut self, sg: Sg, reason: DeleteReason) {
        let Some(m) = self.mfes.remove(sg) else {
            return;
        };
        self.effects.push(Effect::Remove { sg });
        let mut told = BTreeSet::new();
        for iface in std::iter::once(&m.iif).chain(m.oifs.keys()) {
            let o = self.owners.get(iface).copied().unwrap_or_default();
            for h in [o.routing, o.igmp].into_iter().flatten() {
                if told.insert(h) {
                    self.notify(
                        h,
                        Event::MfeDeleted { source: sg.source, group: sg.group, reason },
                    );
                }
            }
        }
        self.requests.remove_about(sg, |a| matches!(a, Awaiting::PruneTimeout(_)));
    }
}
