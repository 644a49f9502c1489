// SPDX-License-Identifier: MIT OR Apache-2.0
//! Static MFEs by interface names (`add_mfe`, mgmd's configuration and command line), what
//! makes one valid, and how an error quotes what it was given.

use std::{net::IpAddr, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::types::{Family, Sg, never_routed};

/// What an error message quotes of the input at most (a 20 MB line stays where it was).
pub const QUOTE: usize = 120;
/// The longest interface name Linux has (`IFNAMSIZ` less its NUL).
pub const IFNAME_MAX: usize = 15;

/// A static (S,G) entry by interface names: from the command line, the file, or the
/// socket's `add_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct StaticMfe {
    pub source: IpAddr,
    pub group: IpAddr,
    pub iif: String,
    #[serde(default)]
    pub oifs: Vec<String>,
}

/// A static MFE that cannot be routed, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad MFE {spec}: {why} (expected SOURCE,GROUP,IIF,OIF[+OIF...])")]
pub struct BadMfe {
    /// The entry as given, quoted ([`quote`]).
    pub spec: String,
    pub why: String,
}

/// `text` as an error quotes it: at most [`QUOTE`] bytes (on a character boundary), in
/// quotes, with how much was left out.
pub fn quote(text: &str) -> String {
    if text.len() <= QUOTE {
        return format!("{text:?}");
    }
    let mut end = QUOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

/// Why `name` cannot be a Linux interface name, if it cannot.
pub fn ifname_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > IFNAME_MAX {
        Some("longer than 15 bytes")
    } else if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        Some("contains '/', ':' or a space")
    } else {
        None
    }
}

impl StaticMfe {
    /// The entry as an error quotes it (names cut).
    pub fn quoted(&self) -> String {
        let oifs: Vec<String> = self.oifs.iter().take(8).map(|o| quote(o)).collect();
        let more = if self.oifs.len() > 8 {
            format!(" and {} more", self.oifs.len() - 8)
        } else {
            String::new()
        };
        format!(
            "({}, {}) from {} to [{}{more}]",
            self.source,
            self.group,
            quote(&self.iif),
            oifs.join(", ")
        )
    }

    /// Why this entry cannot be routed, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !self.group.is_multicast() {
            return Err(format!("{} is not a multicast group", self.group));
        }
        if Family::of(self.source) != Family::of(self.group) {
            return Err(format!("{} and {} are of two families", self.source, self.group));
        }
        if let Some(scope) = never_routed(self.group) {
            return Err(format!("{} is {scope} and never routed", self.group));
        }
        if Sg::checked(self.source, self.group).is_err() {
            return Err(format!("{} is not a valid source", self.source));
        }
        for n in std::iter::once(&self.iif).chain(&self.oifs) {
            if let Some(why) = ifname_error(n) {
                return Err(format!("interface name {}: {why}", quote(n)));
            }
        }
        Ok(())
    }
}

/// `SOURCE,GROUP,IIF,OIF[+OIF...]` (an empty OIF list is a negative entry).
impl FromStr for StaticMfe {
    type Err = BadMfe;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| BadMfe { spec: quote(spec), why: why.to_owned() };
        let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
        let [source, group, iif, oifs] = parts[..] else {
            return Err(err("expected four comma-separated fields"));
        };
        let m = StaticMfe {
            source: source.parse().map_err(|_| err("source is not an IP address"))?,
            group: group.parse().map_err(|_| err("group is not an IP address"))?,
            iif: iif.to_owned(),
            oifs: if oifs.is_empty() {
                Vec::new()
            } else {
                oifs.split('+').map(|s| s.trim().to_owned()).collect()
            },
        };
        m.validate().map_err(|why| err(&why))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_spec_parses() {
        let m: StaticMfe = "10.0.0.1,239.1.1.1,eth0,eth1+eth2".parse().unwrap();
        assert_eq!(m.source, std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(m.group, std::net::Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(m.iif, "eth0");
        assert_eq!(m.oifs, ["eth1", "eth2"]);
        let m: StaticMfe = "2001:db8::1,ff3e::8000:1,eth0,eth1".parse().unwrap();
        assert_eq!(
            (m.source, m.group),
            ("2001:db8::1".parse().unwrap(), "ff3e::8000:1".parse().unwrap())
        );
    }

    #[test]
    fn cli_spec_with_empty_oil_is_a_negative_entry() {
        let m: StaticMfe = "10.0.0.1,239.1.1.1,eth0,".parse().unwrap();
        assert!(m.oifs.is_empty());
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("10.0.0.1,239.1.1.1,eth0", "four"),
            ("10.0.0.x,239.1.1.1,eth0,eth1", "source"),
            ("10.0.0.1,10.1.1.1,eth0,eth1", "not a multicast group"),
            ("10.0.0.1,224.0.0.5,eth0,eth1", "link-local"),
            ("239.0.0.1,239.1.1.1,eth0,eth1", "not a valid source"),
            ("10.0.0.1,239.1.1.1,eth0,eth1++eth2", "empty"),
            ("10.0.0.1,239.1.1.1,eth0,sixteen-bytes-xx", "longer than 15 bytes"),
            ("2001:db8::1,239.1.1.1,eth0,eth1", "two families"),
            ("10.0.0.1,ff3e::1,eth0,eth1", "two families"),
            ("2001:db8::1,2001:db8::2,eth0,eth1", "not a multicast group"),
            ("2001:db8::1,ff02::1:3,eth0,eth1", "link-local (ff02::/16)"),
            ("2001:db8::1,ff01::1,eth0,eth1", "interface-local (ff01::/16)"),
            ("2001:db8::1,ff00::1,eth0,eth1", "reserved scope 0"),
            ("ff3e::1,ff3e::2,eth0,eth1", "not a valid source"),
        ] {
            let e = spec.parse::<StaticMfe>().unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
