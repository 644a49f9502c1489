// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-igmpd's configuration: a TOML file, overridden by the command line (the binary merges
//! them), checked here so that every value a router could be given is one the protocol can
//! carry.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{iface::Config as Timers, wire::Wire};
use mgm_proto::DEFAULT_SOCKET;

/// Where `mgm-igmpd show` finds the daemon serving the mgmd on `socket`: next to that
/// socket, named after it (`/run/mgm/mgmd.sock` → `/run/mgm/mgmd.igmpd.sock`, and
/// `mgmd.mldd.sock` for MLD), so each mgmd's IGMP and MLD daemons have their own without
/// configuration.
pub fn default_control(socket: &std::path::Path, mld: bool) -> PathBuf {
    socket.with_extension(if mld { "mldd.sock" } else { "igmpd.sock" })
}

/// The configuration file. Every field is optional; durations are seconds (decimals allowed).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    pub socket: Option<PathBuf>,
    pub control: Option<PathBuf>,
    /// Speak MLD (IPv6) instead of IGMP (IPv4); `version` is then MLD's (1 or 2).
    pub mld: Option<bool>,
    /// Interfaces where hosts are (router mode; the downstream interfaces in proxy mode).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Proxy mode: the interface towards the multicast network.
    pub upstream: Option<String>,
    /// Forward what sources on downstream links send to the upstream interface as well
    /// (RFC 4605 §4.2); default on.
    pub forward_upstream: Option<bool>,
    pub component: Option<u32>,
    pub version: Option<u8>,
    pub querier: Option<bool>,
    pub robustness: Option<u8>,
    pub query_interval: Option<f64>,
    pub query_response_interval: Option<f64>,
    pub last_member_query_interval: Option<f64>,
    pub last_member_query_count: Option<u8>,
    pub startup_query_interval: Option<f64>,
    pub startup_query_count: Option<u8>,
    pub max_groups: Option<usize>,
    pub max_sources: Option<usize>,
}

impl File {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// The daemon's settings, complete and checked.
#[derive(Clone, Debug)]
pub struct Settings {
    pub socket: PathBuf,
    pub control: PathBuf,
    pub interfaces: Vec<String>,
    pub upstream: Option<String>,
    pub forward_upstream: bool,
    pub component: u32,
    /// MLD on the interfaces' IPv6 sides, not IGMP.
    pub mld: bool,
    /// The group state's settings (its version in IGMP's terms: MLDv2 is 3, MLDv1 2).
    pub timers: Timers,
}

impl Settings {
    /// The file's values over the defaults (the command line is merged into `f` first).
    pub fn new(f: File) -> anyhow::Result<Self> {
        let d = Timers::default();
        let secs = |name: &str, v: Option<f64>, default: Duration| -> anyhow::Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) if s.is_finite() && s > 0.0 && s <= 31_744.0 => {
                    Ok(Duration::from_secs_f64(s))
                }
                Some(s) => anyhow::bail!("{name} = {s}: seconds, more than 0 and at most 31744"),
            }
        };
        let query_interval = secs("query-interval", f.query_interval, d.query_interval)?;
        let robustness = f.robustness.unwrap_or(d.robustness);
        let mld = f.mld.unwrap_or(false);
        let version = match f.version {
            None => d.version,
            Some(v) if mld => <Ipv6Addr as Wire>::state_version(v)
                .ok_or_else(|| anyhow::anyhow!("MLD version {v}: 1 or 2"))?,
            Some(v) => <Ipv4Addr as Wire>::state_version(v)
                .ok_or_else(|| anyhow::anyhow!("IGMP version {v}: 1, 2 or 3"))?,
        };
        let timers = Timers {
            version,
            robustness,
            query_interval,
            query_response_interval: secs(
                "query-response-interval",
                f.query_response_interval,
                d.query_response_interval,
            )?,
            last_member_interval: secs(
                "last-member-query-interval",
                f.last_member_query_interval,
                d.last_member_interval,
            )?,
            last_member_count: f.last_member_query_count.unwrap_or(robustness),
            startup_interval: secs(
                "startup-query-interval",
                f.startup_query_interval,
                query_interval / 4,
            )?,
            startup_count: f.startup_query_count.unwrap_or(robustness),
            querier: f.querier.unwrap_or(true),
            max_groups: f.max_groups.unwrap_or(d.max_groups),
            max_sources: f.max_sources.unwrap_or(d.max_sources),
            max_records: d.max_records,
        };
        check(&timers, mld)?;
        let mut interfaces = f.interfaces;
        interfaces.dedup();
        anyhow::ensure!(
            !interfaces.is_empty(),
            "no interface: name at least one (--iface, or `interfaces` in the file)"
        );
        if let Some(up) = &f.upstream {
            anyhow::ensure!(
                !interfaces.contains(up),
                "{up} is the upstream interface and cannot also be a downstream one"
            );
        }
        let socket: PathBuf = f.socket.unwrap_or_else(|| DEFAULT_SOCKET.into());
        Ok(Self {
            control: f.control.unwrap_or_else(|| default_control(&socket, mld)),
            socket,
            interfaces,
            upstream: f.upstream,
            forward_upstream: f.forward_upstream.unwrap_or(true),
            // IGMP's and MLD's instances on one mgmd register apart without configuration.
            component: f.component.unwrap_or(if mld { 2 } else { 1 }),
            mld,
            timers,
        })
    }
}

/// What the protocol can carry: the maximum response time of an IGMPv2 query is 25.5 s, of a
/// v3 query 3174.4 s (RFC 3376 §4.1.1); MLDv1's 65.535 s (RFC 2710 §3.4), MLDv2's 8387.584 s
/// (RFC 3810 §5.1.3); and hosts must get it before the next query.
fn check(t: &Timers, mld: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=7).contains(&t.robustness),
        "robustness {}: 1 to 7 (RFC 3376 §8.1 advises at least 2)",
        t.robustness
    );
    anyhow::ensure!(t.last_member_count >= 1, "last-member-query-count: at least 1");
    anyhow::ensure!(t.startup_count >= 1, "startup-query-count: at least 1");
    let (name, version, max_resp) = match (mld, t.version) {
        (false, 3) => ("IGMP", 3, 3174.4),
        (false, v) => ("IGMP", v, 25.5),
        (true, 3) => ("MLD", 2, 8387.584),
        (true, _) => ("MLD", 1, 65.535),
    };
    for (what, d) in [
        ("query-response-interval", t.query_response_interval),
        ("last-member-query-interval", t.last_member_interval),
    ] {
        anyhow::ensure!(
            d.as_secs_f64() <= max_resp && d >= Duration::from_millis(100),
            "{what} = {d:?}: from 0.1 s to {max_resp} s in {name}v{version}",
        );
    }
    anyhow::ensure!(
        t.query_response_interval < t.query_interval,
        "query-response-interval ({:?}) must be shorter than query-interval ({:?})",
        t.query_response_interval,
        t.query_interval
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(extra: &str) -> anyhow::Result<Settings> {
        Settings::new(toml::from_str(&format!("interfaces = [\"eth1\"]\n{extra}"))?)
    }

    #[test]
    fn defaults_are_the_rfc_s() {
        let s = file("").unwrap();
        assert_eq!(s.timers, Timers::default());
        assert!(s.forward_upstream);
        assert_eq!(s.upstream, None);
        assert_eq!(s.control, PathBuf::from("/run/mgm/mgmd.igmpd.sock"));
        let s = file("socket = \"/tmp/x/a.sock\"").unwrap();
        assert_eq!(s.control, PathBuf::from("/tmp/x/a.igmpd.sock"));
        assert!(!s.mld);
    }

    #[test]
    fn mld_versions_timers_and_defaults() {
        let s = file("mld = true").unwrap();
        assert!(s.mld);
        assert_eq!(s.timers.version, 3, "MLDv2 by default, run as IGMPv3's state");
        assert_eq!(s.component, 2, "apart from IGMP's instance");
        assert_eq!(s.control, PathBuf::from("/run/mgm/mgmd.mldd.sock"));
        assert_eq!(file("mld = true\nversion = 1").unwrap().timers.version, 2);
        // MLDv1 carries up to 65.535 s where IGMPv2 stops at 25.5 s.
        let long = "query-response-interval = 60\nquery-interval = 125";
        assert!(file(&format!("mld = true\nversion = 1\n{long}")).is_ok());
        assert!(file(&format!("version = 2\n{long}")).is_err());
        for bad in ["mld = true\nversion = 3", "mld = true\nversion = 0"] {
            let e = file(bad).unwrap_err().to_string();
            assert!(e.contains("MLD version"), "{bad}: {e}");
        }
    }

    #[test]
    fn short_timers_and_bad_values() {
        let s = file("query-interval = 2\nquery-response-interval = 0.5\nlast-member-query-interval = 0.2\nrobustness = 3").unwrap();
        assert_eq!(s.timers.query_interval, Duration::from_secs(2));
        assert_eq!(s.timers.last_member_interval, Duration::from_millis(200));
        assert_eq!(s.timers.last_member_count, 3, "defaults to the robustness variable");
        for bad in [
            "version = 4",
            "robustness = 0",
            "query-interval = -1",
            "query-interval = nan",
            "query-response-interval = 200",
            "version = 2\nquery-response-interval = 30",
            "last-member-query-count = 0",
            "upstream = \"eth1\"",
            "no-such-key = 1",
        ] {
            assert!(file(bad).is_err(), "{bad}");
        }
        assert!(Settings::new(File::default()).is_err(), "no interface");
    }
}
