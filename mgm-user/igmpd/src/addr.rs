// SPDX-License-Identifier: MIT OR Apache-2.0
//! The address family the group-membership logic runs on: IGMP's IPv4 addresses now, MLD's
//! IPv6 ones with the same state machine (RFC 3810 mirrors RFC 3376 rule for rule).

use std::{
    fmt::{Debug, Display},
    net::{Ipv4Addr, Ipv6Addr},
};

/// An IPv4 or IPv6 address, as the group and interface state need it.
pub trait Addr: Copy + Ord + Debug + Display + serde::Serialize + Send + Sync + 'static {
    const UNSPECIFIED: Self;
    /// Every node on the link: where general queries go (224.0.0.1, ff02::1).
    const ALL_NODES: Self;
    /// Whether routers keep state for (and forward) this group: multicast, and not scoped
    /// to the link (224.0.0.0/24; ff01::/16 and ff02::/16, or a reserved scope).
    fn is_routed_group(&self) -> bool;
    /// Whether a host may name this address as a source (RFC 3376 §4.2.12 allows only
    /// unicast sources): not multicast, unspecified (which mgmd reads as "any source"),
    /// broadcast or loopback.
    fn is_valid_source(&self) -> bool;
}

impl Addr for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    const ALL_NODES: Self = Ipv4Addr::new(224, 0, 0, 1);
    fn is_routed_group(&self) -> bool {
        let o = self.octets();
        self.is_multicast() && !(o[0] == 224 && o[1] == 0 && o[2] == 0)
    }
    fn is_valid_source(&self) -> bool {
        !(self.is_multicast() || self.is_unspecified() || self.is_broadcast() || self.is_loopback())
    }
}

impl Addr for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    const ALL_NODES: Self = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    fn is_routed_group(&self) -> bool {
        // RFC 4291 §2.7: the scope is the low nibble of the second byte; 0 is reserved,
        // 1 interface-local, 2 link-local.
        self.is_multicast() && self.octets()[1] & 0x0f > 2
    }
    fn is_valid_source(&self) -> bool {
        !(self.is_multicast() || self.is_unspecified() || self.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_scoped_groups_are_not_routed() {
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap().is_routed_group();
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().is_routed_group();
        assert!(v4("239.1.1.1") && v4("224.0.1.1") && v4("232.1.1.1"));
        assert!(!v4("224.0.0.251") && !v4("10.0.0.1"));
        assert!(v6("ff05::1:3") && v6("ff0e::1") && v6("ff3e::8000:1") && v6("ff08::2"));
        assert!(!v6("ff02::fb") && !v6("ff01::1") && !v6("ff00::1") && !v6("fe80::1"));
    }

    #[test]
    fn only_unicast_addresses_are_sources() {
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap().is_valid_source();
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().is_valid_source();
        assert!(v4("10.1.0.1") && v6("2001:db8::1") && v6("fe80::1"));
        for bad in ["239.1.1.1", "224.0.0.1", "0.0.0.0", "255.255.255.255", "127.0.0.1"] {
            assert!(!v4(bad), "{bad}");
        }
        for bad in ["ff3e::1", "::", "::1"] {
            assert!(!v6(bad), "{bad}");
        }
    }
}
