// SPDX-License-Identifier: MIT OR Apache-2.0
//! The atomic-release check, shared by every path that sends a copy: a copy to an interface
//! goes only while one of the leases behind that interface in the MFE's list is alive.
//! Releasing an (interface, next hop) is one write to `MGM_LEASES`, whatever the number of
//! MFEs and lists that name it.

use mgm_common::{LEASE_NONE, LegValue};

use crate::maps::{MGM_LEASES, oif_stats};

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

/// Whether a copy of the MFE with counters `slot` may leave on `ifindex`; a copy that may
/// not is counted as an out-discard of that interface.
#[inline(always)]
pub fn copy_allowed(leg: &LegValue, slot: u32, ifindex: u32) -> bool {
    if alive(leg) {
        return true;
    }
    if let Some(o) = oif_stats(slot, ifindex) {
        // SAFETY: this CPU's slot of the per-CPU value.
        unsafe { (*o).out_discards += 1 };
    }
    false
}
