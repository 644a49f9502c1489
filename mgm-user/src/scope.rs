// SPDX-License-Identifier: MIT OR Apache-2.0
//! Multicast scopes and the administrative boundaries an operator draws at interfaces.
//!
//! A boundary of scope `s` at an interface keeps every group of scope `s` or smaller on its
//! side: such groups are neither copied out of that interface nor forwarded when they arrive
//! on it (the rule of RFC 4007 zones and of `ip multicast boundary` on other routers). IPv6
//! groups carry their scope (the low nibble of the second byte); IPv4 groups take the scope
//! RFC 2365 gives their administratively scoped block.

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer};

/// Global scope: what no boundary stops.
pub const GLOBAL: u8 = 14;

/// The scope of a multicast group, in IPv6's numbering (2 link-local, 4 admin-local,
/// 5 site-local, 8 organisation-local, 14 global). IPv4 (RFC 2365): 224.0.0.0/24 is
/// link-local, the Local Scope 239.255.0.0/16 and its expansion 239.252.0.0/14 are
/// site-local, the rest of 239.0.0.0/8 (Organization Local Scope and its expansion)
/// organisation-local, everything else global.
pub fn of(group: IpAddr) -> u8 {
    match group {
        IpAddr::V6(g) => g.octets()[1] & 0x0f,
        IpAddr::V4(g) => match g.octets() {
            [224, 0, 0, _] => 2,
            [239, b, _, _] if b >= 252 => 5,
            [239, ..] => 8,
            _ => GLOBAL,
        },
    }
}

/// A scope a boundary may be drawn at: realm-local (3) to the last unassigned one below
/// global (13). Link-local and smaller never leave a link anyway; a global boundary would
/// stop everything (leave the interface out of mgm instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(u8);

impl Scope {
    pub const MIN: u8 = 3;
    pub const MAX: u8 = 13;

    pub fn new(n: u8) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!(
                "scope {n} cannot be a boundary (from {} realm-local to {} below global)",
                Self::MIN,
                Self::MAX
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether a boundary at this scope stops `group`.
    pub fn stops(self, group: IpAddr) -> bool {
        of(group) <= self.0
    }
}

impl FromStr for Scope {
    type Err = String;

    /// A number, or a name: `realm`, `admin`, `site`, `organisation` (`organization`).
    fn from_str(s: &str) -> Result<Self, String> {
        let n = match s.trim().to_ascii_lowercase().trim_end_matches("-local") {
            "realm" => 3,
            "admin" => 4,
            "site" => 5,
            "organisation" | "organization" | "org" => 8,
            n => n.parse().map_err(|_| {
                format!("{s:?} is not a scope (a number, or realm, admin, site, organisation)")
            })?,
        };
        Self::new(n)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            3 => f.write_str("realm-local (3)"),
            4 => f.write_str("admin-local (4)"),
            5 => f.write_str("site-local (5)"),
            8 => f.write_str("organisation-local (8)"),
            n => write!(f, "scope {n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    /// `scope = 5` or `scope = "site"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => u8::try_from(n)
                .map_err(|_| format!("scope {n} cannot be a boundary"))
                .and_then(Scope::new),
            Raw::S(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A boundary at an interface, by name: `IFACE:SCOPE` on the command line
/// (`--scope-boundary eth2:site`), a `[[scope_boundary]]` table in the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    pub interface: String,
    pub scope: Scope,
}

impl FromStr for Boundary {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (iface, scope) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("{spec:?}: expected IFACE:SCOPE (e.g. eth2:site)"))?;
        if iface.is_empty() {
            return Err(format!("{spec:?}: empty interface name"));
        }
        Ok(Self { interface: iface.to_owned(), scope: scope.parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn scopes_of_both_families() {
        for (g, s) in [
            ("ff02::1", 2),
            ("ff05::1:3", 5),
            ("ff38::1", 8),
            ("ff3e::8000:1", 14),
            ("ff15::1", 5),
            ("224.0.0.5", 2),
            ("239.255.1.1", 5),
            ("239.252.0.1", 5),
            ("239.192.0.1", 8),
            ("239.1.1.1", 8),
            ("232.1.1.1", GLOBAL),
            ("224.0.1.1", GLOBAL),
        ] {
            assert_eq!(of(ip(g)), s, "{g}");
        }
    }

    #[test]
    fn a_boundary_stops_its_scope_and_smaller_ones() {
        let site: Scope = "site".parse().unwrap();
        assert!(site.stops(ip("ff05::1")));
        assert!(site.stops(ip("ff04::1")));
        assert!(site.stops(ip("239.255.0.1")));
        assert!(!site.stops(ip("ff08::1")));
        assert!(!site.stops(ip("ff0e::1")));
        assert!(!site.stops(ip("239.192.0.1")));
        let org: Scope = "8".parse().unwrap();
        assert!(org.stops(ip("ff08::1")) && org.stops(ip("239.1.2.3")));
        assert!(!org.stops(ip("ff0e::1")) && !org.stops(ip("232.1.1.1")));
    }

    #[test]
    fn boundaries_parse_and_bad_ones_say_why() {
        let b: Boundary = "eth2:site".parse().unwrap();
        assert_eq!((b.interface.as_str(), b.scope.get()), ("eth2", 5));
        let b: Boundary = "veth.x:Organization-Local".parse().unwrap();
        assert_eq!(b.scope.get(), 8);
        for (spec, why) in [
            ("eth2", "IFACE:SCOPE"),
            (":5", "empty interface"),
            ("eth2:2", "cannot be a boundary"),
            ("eth2:14", "cannot be a boundary"),
            ("eth2:global", "not a scope"),
            ("eth2:999", "not a scope"),
        ] {
            let e = spec.parse::<Boundary>().unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn the_file_takes_numbers_and_names() {
        #[derive(Deserialize)]
        struct F {
            scope_boundary: Vec<Boundary>,
        }
        let f: F = toml::from_str(
            "[[scope_boundary]]\ninterface = \"a\"\nscope = 5\n\
             [[scope_boundary]]\ninterface = \"b\"\nscope = \"organisation\"\n",
        )
        .unwrap();
        assert_eq!(f.scope_boundary[0].scope.get(), 5);
        assert_eq!(f.scope_boundary[1].scope.get(), 8);
        for bad in ["scope = 300", "scope = -1", "scope = 1", "scope = \"planet\""] {
            let text = format!("[[scope_boundary]]\ninterface = \"a\"\n{bad}\n");
            assert!(toml::from_str::<F>(&text).is_err(), "{bad}");
        }
    }
}
