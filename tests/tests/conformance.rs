// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MGM conformance scenarios (tests/conformance/mgm.scenarios: the core's edge cases
//! of docs/mgm-reference.md §6 that need no traffic) through both APIs against one mgmd:
//! the Rust client (a connection per client, as Rust daemons have) and libmgm from C
//! (mgm-user/capi/tests/c/conformance.c, a process per scenario, under valgrind). Every call
//! must return the file's code and every client get exactly the file's callbacks, both ways.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use mgm::proto::{
    self, MembershipArgs, WireError,
    types::{EnumType, Handle},
};
use mgm_tests::{
    Ctl, Mgmd, Topology,
    conformance::{If, Scenario, Step, scenarios, scenarios_path},
    libmgm,
};

/// How long a client waits for the callbacks it expects, and then for any more.
const EVENTS: Duration = Duration::from_secs(3);
const EXTRA: Duration = Duration::from_millis(200);

fn code<T>(r: Result<T, WireError>) -> u32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.win32.unwrap_or(u32::MAX),
    }
}

struct Rust<'a> {
    t: &'a Topology,
    clients: HashMap<String, (Ctl, Handle)>,
    observer: Ctl,
}

impl Rust<'_> {
    fn ifindex(&self, i: &If) -> u32 {
        if i.name == "gone" { 999_999 } else { self.t.router.ifindex(&i.name).unwrap() }
    }

    fn client(&mut self, name: &str) -> &mut (Ctl, Handle) {
        self.clients.get_mut(name).unwrap_or_else(|| panic!("no client {name} registered"))
    }

    /// One step; what went otherwise than the file says.
    fn step(&mut self, step: &Step) -> Result<(), String> {
        let socket = self.t.mgmd.as_ref().unwrap().socket.clone();
        let check = |got: u32, want: u32| {
            if got == want { Ok(()) } else { Err(format!("returned {got}, not {want}")) }
        };
        match step {
            Step::Register { client, protocol, component, code: want } => {
                let mut ctl = Ctl::connect(&socket).unwrap();
                let r = ctl
                    .request(proto::Register { protocol: *protocol, component: *component })
                    .unwrap();
                let got = code(r.as_ref().map(drop).map_err(Clone::clone));
                if let Ok(reg) = r {
                    self.clients.insert(client.clone(), (ctl, reg.handle));
                }
                check(got, *want)
            }
            Step::Deregister { client, code: want } => {
                let (ctl, handle) = self.client(client);
                let handle = *handle;
                check(code(ctl.request(proto::Deregister { handle }).unwrap()), *want)
            }
            Step::Take { client, iface, code: want }
            | Step::Release { client, iface, code: want } => {
                let ifindex = self.ifindex(iface);
                let nexthop = iface.nexthop;
                let take = matches!(step, Step::Take { .. });
                let (ctl, handle) = self.client(client);
                let handle = *handle;
                let got = if take {
                    code(ctl.request(proto::TakeInterface { handle, ifindex, nexthop }).unwrap())
                } else {
                    code(ctl.request(proto::ReleaseInterface { handle, ifindex, nexthop }).unwrap())
                };
                check(got, *want)
            }
            Step::Owner { iface, code: want, owner } => {
                let q = proto::GetProtocolOnInterface {
                    ifindex: self.ifindex(iface),
                    nexthop: iface.nexthop,
                };
                match self.observer.request(q).unwrap() {
                    Ok(p) if *want == 0 && *owner == Some((p.protocol, p.component)) => Ok(()),
                    Err(e) if e.win32 == Some(*want) => Ok(()),
                    r => Err(format!("owner: {r:?}")),
                }
            }
            Step::Member { add, client, source, group, iface, flags, code: want } => {
                let ifindex = self.ifindex(iface);
                let (ctl, handle) = self.client(client);
                let m = MembershipArgs {
                    handle: *handle,
                    source: Some(source.addr),
                    source_mask: Some(source.mask),
                    group: group.addr,
                    group_mask: Some(group.mask),
                    ifindex,
                    nexthop: Some(iface.nexthop),
                    flags: *flags,
                };
                let got = if *add {
                    code(ctl.request(proto::AddMembership(m)).unwrap())
                } else {
                    code(ctl.request(proto::DeleteMembership(m)).unwrap())
                };
                check(got, *want)
            }
            Step::Enum { client, all, count } => {
                let (ctl, handle) = self.client(client);
                let handle = *handle;
                let enum_type = if *all { EnumType::AllSources } else { EnumType::AnySource };
                let e = ctl.call(proto::GroupEnumStart { handle, enum_type }).unwrap().enum_handle;
                let mut n = 0;
                loop {
                    let next = proto::GroupEnumNext { handle, enum_handle: e, max_entries: 2 };
                    let page = ctl.call(next).unwrap();
                    n += page.entries.len();
                    if page.status == proto::PageStatus::NoMoreItems {
                        break;
                    }
                }
                ctl.call(proto::GroupEnumEnd { handle, enum_handle: e }).unwrap();
                if n == *count { Ok(()) } else { Err(format!("{n} entries, not {count}")) }
            }
            Step::Events { client, kinds } => {
                let (ctl, _) = self.client(client);
                let mut got = Vec::new();
                let deadline = Instant::now() + EVENTS;
                while got.len() < kinds.len() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match ctl.next_event(left.max(Duration::from_millis(1))) {
                        Ok(v) => got.push(v["event"].as_str().unwrap_or("?").to_owned()),
                        Err(_) => break,
                    }
                }
                while let Ok(v) = ctl.next_event(EXTRA) {
                    got.push(v["event"].as_str().unwrap_or("?").to_owned());
                }
                if &got == kinds {
                    Ok(())
                } else {
                    Err(format!("callbacks {got:?}, not {kinds:?}"))
                }
            }
        }
    }
}

/// Runs a scenario through the Rust client; its failures, each with its line.
fn through_rust(t: &Topology, s: &Scenario) -> Vec<String> {
    let observer = Ctl::connect(&t.mgmd.as_ref().unwrap().socket).unwrap();
    let mut r = Rust { t, clients: HashMap::new(), observer };
    let mut failures = Vec::new();
    for (line, step) in &s.steps {
        if let Err(e) = r.step(step) {
            failures.push(format!("rust, {} line {line}: {e}", s.name));
        }
    }
    failures
}

/// Runs a scenario through libmgm (the C driver, in the router's namespace).
fn through_c(t: &Topology, driver: &Path, s: &Scenario) -> Vec<String> {
    let idx = |n: &str| t.router.ifindex(n).unwrap().to_string();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", t.router.name))
        .args(libmgm::VALGRIND)
        .arg(driver)
        .arg(&t.mgmd.as_ref().unwrap().socket)
        .arg(scenarios_path())
        .arg(&s.name)
        .args([idx("rin"), idx("r1"), idx("r2")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let mut failures: Vec<String> = said.lines().map(|l| format!("c, {l}")).collect();
    if !out.status.success() && failures.is_empty() {
        failures.push(format!(
            "c, {}: {} {}",
            s.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    failures
}

/// Waits until mgmd holds nothing of the last scenario (its clients' connections closed).
fn settle(t: &Topology) {
    let mut ctl = t.ctl().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let show = ctl.show().unwrap();
        if show.protocols.is_empty() && show.memberships.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "mgmd still holds {:?}", show.protocols);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_mgm_edge_cases_hold_through_the_rust_client_and_through_libmgm() {
    let all = scenarios().unwrap();
    assert!(all.len() >= 18, "{} scenarios", all.len());
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let driver = libmgm::libmgm().unwrap().join(mgm_tests::unique("conformance"));
    libmgm::compile_c(&[&root.join("mgm-user/capi/tests/c/conformance.c")], &driver).unwrap();
    let mut failures = Vec::new();
    for s in &all {
        failures.extend(through_rust(&t, s));
        settle(&t);
        failures.extend(through_c(&t, &driver, s));
        settle(&t);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    println!(
        "{} scenarios, {} steps, through both APIs",
        all.len(),
        all.iter().map(|s| s.steps.len()).sum::<usize>()
    );
}

#[test]
fn the_scenarios_read_as_written() {
    let s = mgm_tests::conformance::parse(
        "scenario x what it is\nregister a 103 1 = 0\njoin a 10.1.0.0/16 * r1@:: 3 = 87\nevents a =\nowner r1 = 0 103 1\n",
    )
    .unwrap();
    assert_eq!(s[0].steps.len(), 4);
    let Step::Member { source, group, iface, .. } = &s[0].steps[1].1 else { panic!() };
    assert_eq!(source.mask, "255.255.0.0".parse::<IpAddr>().unwrap());
    assert!(group.addr.is_unspecified() && group.mask.is_unspecified());
    assert_eq!(iface.nexthop, "::".parse::<IpAddr>().unwrap());
    assert_eq!(s[0].steps[2].1, Step::Events { client: "a".into(), kinds: vec![] });
    assert!(
        mgm_tests::conformance::parse("register a 1 = 0\n").is_err(),
        "a step before a scenario"
    );
}
