// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd knows the kernel it runs on: `mgmd --check-kernel` says what the kernel has (checked
//! here against the kernel itself), and `--follow-kernel` starts only where there is a
//! multicast routing table to follow, refused with the reason elsewhere. `every_kernel`: the
//! matrix runs these on this machine and in every guest, so each branch is taken where it
//! applies. Needs root.

mod every_kernel {
    use std::path::Path;

    use mgm_tests::{Mgmd, Netns, bin, veth};

    /// What the kernel itself shows: ipmr and ip6mr make these files in every namespace.
    fn has_mroute() -> (bool, bool) {
        (Path::new("/proc/net/ip_mr_vif").exists(), Path::new("/proc/net/ip6_mr_vif").exists())
    }

    #[test]
    fn check_kernel_says_what_this_kernel_has() {
        let out = std::process::Command::new(bin("mgmd")).arg("--check-kernel").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap();
        let release = nix::sys::utsname::uname().unwrap().release().to_string_lossy().into_owned();
        assert!(first.starts_with(&format!("kernel {release}: ")), "{first}");
        let (ipmr, ip6mr) = has_mroute();
        let yes = |b: bool| if b { "yes" } else { "no" };
        assert!(first.contains(&format!("ipmr {},", yes(ipmr))), "{first}");
        assert!(first.contains(&format!("ip6mr {},", yes(ip6mr))), "{first}");
        // Each missing feature gets a line of its own saying what it costs.
        assert_eq!(
            text.contains("has no IPv4 multicast routing (CONFIG_IP_MROUTE"),
            !ipmr,
            "{text}"
        );
        assert_eq!(
            text.contains("has no IPv6 multicast routing (CONFIG_IPV6_MROUTE"),
            !ip6mr,
            "{text}"
        );
    }

    /// Instructions the verifier may process per program, on every kernel of the matrix (its
    /// limit is 1,000,000). The programs take at most about a fifth of this budget (README,
    /// "Kernels"), so a change that multiplies the verifier's states fails here before it
    /// ships.
    const VERIFIER_BUDGET: u64 = 100_000;

    #[test]
    fn every_program_verifies_within_the_budget() {
        let out = std::process::Command::new(bin("mgmd")).arg("--check-kernel").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "the programs do not load here:\n{text}");
        let mut seen = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("program ")) {
            // program NAME: verified, N instructions processed in T s
            let (name, rest) = line["program ".len()..].split_once(": verified, ").unwrap();
            let insns: u64 = rest.split(' ').next().unwrap().parse().unwrap_or_else(|_| {
                panic!("no instruction count (verified_insns needs Linux 5.16): {line}")
            });
            println!("{line}");
            assert!(
                insns <= VERIFIER_BUDGET,
                "{name} is over the budget of {VERIFIER_BUDGET}: {line}"
            );
            seen.push(name.to_owned());
        }
        seen.sort();
        assert_eq!(seen, ["mgm_tc_ingress", "mgm_xdp_egress", "mgm_xdp_ingress"], "{text}");
    }

    #[test]
    fn follow_kernel_starts_only_where_the_kernel_routes_multicast() {
        let ns = Netns::new("follow").unwrap();
        veth(&ns, "va", &ns, "vb").unwrap();
        let args: Vec<String> =
            ["--iface", "va", "--iface", "vb", "--follow-kernel"].map(String::from).to_vec();
        match (has_mroute(), Mgmd::start(&ns, &args)) {
            ((false, false), Ok(m)) => panic!("started with nothing to follow:\n{}", m.log()),
            ((false, false), Err(e)) => {
                let e = e.to_string();
                assert!(e.contains("built without multicast routing"), "{e}");
                assert!(e.contains("CONFIG_IP_MROUTE") && e.contains("without --follow-kernel"));
            }
            (_, Err(e)) => panic!("the kernel has a table to follow: {e}"),
            ((ipmr, ip6mr), Ok(m)) => {
                let log = m.log();
                assert!(log.contains("following the kernel's multicast routing table"), "{log}");
                // A family without a table is named, loudly.
                assert_eq!(log.contains("has no IPv4 multicast routing"), !ipmr, "{log}");
                assert_eq!(log.contains("has no IPv6 multicast routing"), !ip6mr, "{log}");
            }
        }
    }
}
