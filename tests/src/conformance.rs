// SPDX-License-Identifier: MIT OR Apache-2.0
//! The conformance scenarios (tests/conformance/mgm.scenarios): the MGM core's edge cases
//! as lines both APIs run, read here for the Rust side (the C side reads them itself).

use super::*;

/// An interface of a scenario: a link's name and a next hop (none: the IPv4 side's 0.0.0.0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct If {
    pub name: String,
    pub nexthop: IpAddr,
}

/// An address with its mask, as a membership's source or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masked {
    pub addr: IpAddr,
    pub mask: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Register {
        client: String,
        protocol: u32,
        component: u32,
        code: u32,
    },
    Deregister {
        client: String,
        code: u32,
    },
    Take {
        client: String,
        iface: If,
        code: u32,
    },
    Release {
        client: String,
        iface: If,
        code: u32,
    },
    Owner {
        iface: If,
        code: u32,
        owner: Option<(u32, u32)>,
    },
    Member {
        add: bool,
        client: String,
        source: Masked,
        group: Masked,
        iface: If,
        flags: u32,
        code: u32,
    },
    Enum {
        client: String,
        all: bool,
        count: usize,
    },
    Events {
        client: String,
        kinds: Vec<String>,
    },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub what: String,
    /// Each step with its line in the file (for failure messages).
    pub steps: Vec<(usize, Step)>,
}

pub fn scenarios_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/mgm.scenarios")
}

pub fn scenarios() -> anyhow::Result<Vec<Scenario>> {
    parse(&std::fs::read_to_string(scenarios_path())?)
}

fn iface(s: &str) -> anyhow::Result<If> {
    let (name, hop) = s.split_once('@').unwrap_or((s, "0.0.0.0"));
    Ok(If {
        name: name.to_owned(),
        nexthop: hop.parse().with_context(|| format!("next hop {hop}"))?,
    })
}

fn prefix_mask(addr: IpAddr, bits: u32) -> IpAddr {
    match addr {
        IpAddr::V4(_) => Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)).into(),
        IpAddr::V6(_) => {
            std::net::Ipv6Addr::from(u128::MAX.checked_shl(128 - bits).unwrap_or(0)).into()
        }
    }
}

/// `*`, `ADDR` or `ADDR/BITS`; `*` is the unspecified address of `family_of`'s family.
fn masked(s: &str, family_of: Option<IpAddr>) -> anyhow::Result<Masked> {
    if s == "*" {
        let any: IpAddr = match family_of {
            Some(IpAddr::V6(_)) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            _ => Ipv4Addr::UNSPECIFIED.into(),
        };
        return Ok(Masked { addr: any, mask: any });
    }
    let (a, bits) = s.split_once('/').map_or((s, None), |(a, b)| (a, Some(b)));
    let addr: IpAddr = a.parse().with_context(|| format!("address {a}"))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.map_or(Ok(full), str::parse)?;
    Ok(Masked { addr, mask: prefix_mask(addr, bits) })
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Scenario>> {
    let mut out: Vec<Scenario> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let w: Vec<&str> = line.split_whitespace().collect();
        if w[0] == "scenario" {
            ensure!(w.len() >= 2, "line {n}: scenario NAME WHAT");
            out.push(Scenario { name: w[1].into(), what: w[2..].join(" "), steps: Vec::new() });
            continue;
        }
        let (call, result) = line
            .split_once(" = ")
            .or_else(|| line.strip_suffix(" =").map(|c| (c, "")))
            .with_context(|| format!("line {n}: no ` = `"))?;
        let c: Vec<&str> = call.split_whitespace().collect();
        let r: Vec<&str> = result.split_whitespace().collect();
        let code = || -> anyhow::Result<u32> { Ok(r.first().context("a code")?.parse()?) };
        let step = match (c[0], c.len()) {
            ("register", 4) => Step::Register {
                client: c[1].into(),
                protocol: c[2].parse()?,
                component: c[3].parse()?,
                code: code()?,
            },
            ("deregister", 2) => Step::Deregister { client: c[1].into(), code: code()? },
            ("take", 3) => Step::Take { client: c[1].into(), iface: iface(c[2])?, code: code()? },
            ("release", 3) => {
                Step::Release { client: c[1].into(), iface: iface(c[2])?, code: code()? }
            }
            ("owner", 2) => Step::Owner {
                iface: iface(c[1])?,
                code: code()?,
                owner: match r.len() {
                    3 => Some((r[1].parse()?, r[2].parse()?)),
                    _ => None,
                },
            },
            ("join" | "leave", 6) => {
                let group = masked(c[3], None)?;
                Step::Member {
                    add: c[0] == "join",
                    client: c[1].into(),
                    source: masked(c[2], Some(group.addr))?,
                    group,
                    iface: iface(c[4])?,
                    flags: c[5].parse()?,
                    code: code()?,
                }
            }
            ("enum", 3) => {
                Step::Enum { client: c[1].into(), all: c[2] == "all", count: r[0].parse()? }
            }
            ("events", 2) => Step::Events {
                client: c[1].into(),
                kinds: r.iter().map(|s| (*s).to_owned()).collect(),
            },
            _ => bail!("line {n}: cannot read {line:?}"),
        };
        out.last_mut()
            .with_context(|| format!("line {n}: a step before any scenario"))?
            .steps
            .push((n, step));
    }
    Ok(out)
}
