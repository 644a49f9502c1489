// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the table: GetMfe and the MFE walks, SetMfe, and group enumerations.

use super::*;

impl Manager {
    pub(super) fn view(&self, sg: Sg, m: &Mfe, now: Duration) -> MfeView {
        MfeView {
            source: sg.source,
            group: sg.group,
            iif: m.iif,
            upstream: m.upstream,
            oifs: m.oifs.keys().copied().collect(),
            uptime_secs: now.saturating_sub(m.created).as_secs(),
            expiry_secs: m.expires.saturating_sub(now).as_secs(),
            timeout_secs: m.timeout.as_secs(),
        }
    }

    /// GetMfe. `max_entries` is the buffer, in entries: 0 gets INSUFFICIENT_BUFFER.
    pub fn get_mfe(&self, sg: Sg, max_entries: usize, now: Duration) -> MgmResult<MfeView> {
        let m = self.mfes.get(&sg).ok_or(MgmError::NotFound)?;
        if max_entries == 0 {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        Ok(self.view(sg, m, now))
    }

    /// GetFirstMfe / GetNextMfe: up to `max_entries` MFEs strictly after `after` (from the
    /// start when `None`), ordered by group then source.
    pub fn get_mfes(
        &self,
        after: Option<Sg>,
        max_entries: usize,
        now: Duration,
    ) -> MgmResult<Page<MfeView>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lower = after.map_or(Unbounded, Excluded);
        let mut it = self.mfes.range((lower, Unbounded)).peekable();
        if max_entries == 0 && it.peek().is_some() {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        let entries: Vec<MfeView> =
            it.by_ref().take(max_entries).map(|(sg, m)| self.view(*sg, m, now)).collect();
        Ok(Page { entries, more: it.peek().is_some() })
    }

    /// SetMfe: a new incoming interface / upstream neighbour (e.g. after an RPF change).
    pub fn set_mfe(
        &mut self,
        h: Handle,
        sg: Sg,
        iif: Iface,
        upstream: IpAddr,
        now: Duration,
    ) -> MgmResult<()> {
        self.client(h)?;
        check_iif(sg, iif, upstream)?;
        let m = self.mfes.get(&sg).ok_or(MgmError::NotFound)?;
        let oifs = self.oil_for(sg, iif, &m.disabled);
        let became_empty = oifs.is_empty() && !m.oifs.is_empty();
        self.mfes.set_iif(sg, iif, upstream);
        self.mfes.set_oifs(sg, oifs.clone());
        self.effects.push(Effect::Install { sg, iif, oifs });
        if became_empty {
            self.oil_empty_alert(sg, now);
        }
        Ok(())
    }

    /// GroupEnumerationStart: a cursor over the joined entries in their order, so an entry
    /// present throughout the enumeration is returned exactly once, whatever changes meanwhile.
    pub fn enum_start(&mut self, h: Handle, kind: EnumType) -> MgmResult<EnumHandle> {
        self.client(h)?;
        let e = EnumHandle(self.id());
        self.enums.insert(e, Enumeration { owner: h, kind, after: None });
        Ok(e)
    }

    /// The entry an enumeration of `kind` reports after `after`.
    pub(super) fn enum_after(&self, kind: EnumType, after: Option<Pattern>) -> Option<Pattern> {
        use std::ops::Bound::{Excluded, Unbounded};
        let last_of = |p: Pattern| match kind {
            EnumType::AllSources => p,
            // Past every source of the group.
            EnumType::AnySource => p.group_end(),
        };
        let lo = after.map_or(Unbounded, |p| Excluded((last_of(p), Iface::MAX, Handle(u64::MAX))));
        let ((p, ..), _) = self.members.range((lo, Unbounded)).next()?;
        Some(match kind {
            EnumType::AllSources => *p,
            // (*,G) of its group; (*,*) stays (*,*).
            EnumType::AnySource => Pattern::star_g(p.group),
        })
    }

    /// GroupEnumerationGetNext.
    pub fn enum_next(
        &mut self,
        h: Handle,
        e: EnumHandle,
        max_entries: usize,
    ) -> MgmResult<Page<SourceGroupEntry>> {
        let en = *self.enums.get(&e).ok_or(MgmError::InvalidParameter)?;
        if en.owner != h {
            return Err(MgmError::InvalidParameter);
        }
        let mut next = self.enum_after(en.kind, en.after);
        if max_entries == 0 && next.is_some() {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        let mut entries = Vec::new();
        let mut after = en.after;
        while let Some(p) = next.filter(|_| entries.len() < max_entries) {
            entries.push(p.entry());
            after = Some(p);
            next = self.enum_after(en.kind, after);
        }
        if let Some(en) = self.enums.get_mut(&e) {
            en.after = after;
        }
        Ok(Page { entries, more: next.is_some() })
    }

    /// GroupEnumerationEnd.
    pub fn enum_end(&mut self, h: Handle, e: EnumHandle) -> MgmResult<()> {
        match self.enums.get(&e) {
            Some(en) if en.owner == h => {
                self.enums.remove(&e);
                Ok(())
            }
            _ => Err(MgmError::InvalidParameter),
        }
    }
}
