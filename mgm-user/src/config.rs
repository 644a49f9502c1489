// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd's static configuration: managed interfaces and static MFEs, from a TOML file and/or
//! the command line.
//!
//! ```toml
//! interfaces = ["eth0", "eth1", "eth2"]
//!
//! [[mfe]]
//! source = "10.0.0.1"
//! group = "239.1.1.1"
//! iif = "eth0"
//! oifs = ["eth1", "eth2"]
//!
//! [[scope_boundary]]
//! interface = "eth2"
//! scope = "site"
//! ```
//!
//! On the command line an MFE is `SOURCE,GROUP,IIF,OIF[+OIF...]`, e.g.
//! `--mfe 10.0.0.1,239.1.1.1,eth0,eth1+eth2`, and a boundary `IFACE:SCOPE`
//! (`--scope-boundary eth2:site`; see [`crate::scope`]).

use std::{net::IpAddr, path::Path, str::FromStr};

use crate::{
    manager::{Family, Sg, never_routed},
    scope::Boundary,
};

use serde::{Deserialize, Serialize};

/// A static (S,G) entry by interface names: from the command line, the file, or the
/// socket's `add_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct StaticMfe {
    pub source: IpAddr,
    pub group: IpAddr,
    pub iif: String,
    #[serde(default)]
    pub oifs: Vec<String>,
}

/// The file's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default, rename = "mfe")]
    pub mfes: Vec<StaticMfe>,
    #[serde(default, rename = "scope_boundary")]
    pub boundaries: Vec<Boundary>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("bad MFE {spec:?}: {why} (expected SOURCE,GROUP,IIF,OIF[+OIF...])")]
    Mfe { spec: String, why: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let cfg: Self = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: p.clone(), source })?;
        for m in &cfg.mfes {
            m.validate().map_err(|why| ConfigError::Mfe { spec: format!("{m:?}"), why })?;
        }
        Ok(cfg)
    }

    /// What mgmd runs with: the file's entries (if there is a file), then the command
    /// line's. Read at start and again at each reload.
    pub fn resolve(file: Option<&Path>, cmdline: &Config) -> Result<Config, ConfigError> {
        Ok(match file {
            Some(p) => Config::load(p)?.merged(cmdline),
            None => cmdline.clone(),
        })
    }

    /// This configuration and `other`'s entries (the file's, then the command line's).
    pub fn merged(mut self, other: &Config) -> Config {
        self.interfaces.extend(other.interfaces.iter().cloned());
        self.mfes.extend(other.mfes.iter().cloned());
        self.boundaries.extend(other.boundaries.iter().cloned());
        self
    }

    /// Every interface named anywhere (explicitly or by an MFE), in first-seen order.
    pub fn all_interfaces(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let named = self
            .interfaces
            .iter()
            .chain(self.mfes.iter().flat_map(|m| std::iter::once(&m.iif).chain(m.oifs.iter())));
        for n in named {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }
}

impl StaticMfe {
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
        if self.iif.is_empty() || self.oifs.iter().any(String::is_empty) {
            return Err("empty interface name".into());
        }
        Ok(())
    }
}

impl FromStr for StaticMfe {
    type Err = ConfigError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ConfigError::Mfe { spec: spec.to_owned(), why: why.to_owned() };
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
            ("10.0.0.1,239.1.1.1,eth0,eth1++eth2", "empty interface"),
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

    #[test]
    fn file_parses_and_lists_interfaces_once() {
        let dir = std::env::temp_dir().join(format!("mgm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mgmd.toml");
        std::fs::write(
            &path,
            r#"
interfaces = ["a", "d"]
[[mfe]]
source = "10.0.0.1"
group = "239.1.1.1"
iif = "a"
oifs = ["b", "c"]
[[scope_boundary]]
interface = "c"
scope = "site"
"#,
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cfg.all_interfaces(), ["a", "d", "b", "c"]);
        assert_eq!(cfg.mfes.len(), 1);
        assert_eq!(cfg.boundaries, ["c:5".parse().unwrap()]);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let e = toml::from_str::<Config>("interfaces = []\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"));
    }
}
