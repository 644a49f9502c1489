// SPDX-License-Identifier: MIT OR Apache-2.0
//! The atomic-release check, shared by every path that sends a copy: a copy to an interface
//! goes only while one of the leases behind that interface in the MFE's list is alive.
//! Releasing an (interface, next hop) is one write to `MGM_LEASES`, whatever the number of
//! MFEs and lists that name it.

use mgm_common::{LEASE_NONE, LegEntry, LegKey, LegValue, counter};

use crate::maps::{MGM_LEASES, MGM_LEGS, oif_stats, uncount};

/// The leg of an XDP copy (`bytes` long) of OIL `oil` (MFE counters `slot`) about to leave
/// on `ifindex`, if a live lease justifies it; else the counter saying why it may not leave
/// (its list changed while it was in flight, or the interface was released). A copy that
/// may not leave is taken back from the interface's count (see `maps::uncount`).
#[inline(always)]
pub fn leg_for_copy(oil: u32, slot: u32, ifindex: u32, bytes: usize) -> Result<LegEntry, u32> {
    // SAFETY: copied out at once.
    let Some(leg) = (unsafe { MGM_LEGS.get(LegKey { oil, ifindex }) }).copied() else {
        uncount(slot, ifindex, bytes);
        return Err(counter::EGRESS_STALE);
    };
    // Whichever OIL the copy came from, a lease alive now must justify it: a release is
    // seen by every copy made after it.
    if !alive(&leg.leases) {
        if let Some(o) = uncount(slot, ifindex, bytes) {
            // SAFETY: this CPU's slot of the per-CPU value.
            unsafe { (*o).out_discards += 1 };
        }
        crate::maps::port_dropped(leg.port_stats as u32);
        return Err(counter::EGRESS_RELEASED);
    }
    Ok(leg)
}

/// Whether a lease of `leg` is alive.
#[inline(always)]
pub fn alive(leg: &LegValue) -> bool {
    for lease in leg.leases {
        if lease != LEASE_NONE && MGM_LEASES.get(lease).is_some_and(|v| *v != 0) {
            return true;
        }
    }
    false
}

/// Whether a TC copy of the MFE with counters `slot` may leave on `ifindex`; a copy that
/// may not is counted as an out-discard of that interface.
#[inline(always)]
pub fn copy_allowed(leg: &LegValue, slot: u32, ifindex: u32) -> bool {
    if alive(leg) {
        return true;
    }
    crate::maps::port_dropped(crate::maps::port_slot(ifindex));
    if let Some(o) = oif_stats(slot, ifindex) {
        // SAFETY: this CPU's slot of the per-CPU value.
        unsafe { (*o).out_discards += 1 };
    }
    false
}
