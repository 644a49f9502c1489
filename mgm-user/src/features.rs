// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the running kernel offers mgm, found out at start rather than discovered as a failure
//! later. Kernels differ: Debian's have multicast routing (ipmr, ip6mr), some custom builds do
//! not; TCX arrived in 6.6; a kernel may refuse a helper to XDP programs. Each feature is
//! probed by what it does where that is cheap and has no side effect, else by version.

use std::{fmt, path::Path};

/// The kernel's features mgm uses, and its release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    /// IPv4 multicast routing (`CONFIG_IP_MROUTE`): what `--follow-kernel` follows.
    pub ipmr: bool,
    /// IPv6 multicast routing (`CONFIG_IPV6_MROUTE`).
    pub ip6mr: bool,
    /// XDP programs may call `bpf_xdp_adjust_meta`: the ingress program hands each copy its
    /// MFE's outgoing list and counters (otherwise the egress program looks the MFE up again).
    pub xdp_meta: bool,
    /// `BPF_PROG_TEST_RUN` with live frames (Linux 5.18): how the first packets of a new
    /// flow, held while its MFE is created, are forwarded once it exists.
    pub xdp_live_frames: bool,
    /// TCX links (Linux 6.6): the TC program that makes next-hop copies attaches with them.
    pub tcx: bool,
    /// The first packets of a new flow are held and replayed once its MFE exists: live
    /// frames, on a kernel that delivers every copy of a replayed packet. Debian 12's 6.1
    /// runs live-frame test runs but delivers none of the copies of one redirected to several
    /// interfaces (a devmap broadcast; measured: a single redirect is delivered); 6.12 and
    /// later deliver them all. Untested between: not used there.
    pub hold_first_packets: bool,
}

/// The oldest kernel measured to deliver the broadcast copies of a live-frame test run.
const HOLD_MIN: (u32, u32) = (6, 12);

impl KernelFeatures {
    /// The running kernel's features, probed once per process (they do not change while it
    /// runs): mgmd's start-up and the fast path's loader ask for them both.
    pub fn running() -> &'static Self {
        static RUNNING: std::sync::OnceLock<KernelFeatures> = std::sync::OnceLock::new();
        RUNNING.get_or_init(Self::probe)
    }

    /// Probes this kernel (in this process's network namespace).
    fn probe() -> Self {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let xdp_live_frames = xdp_live_frames();
        Self {
            tcx: version_at_least(&release, (6, 6)),
            hold_first_packets: xdp_live_frames && version_at_least(&release, HOLD_MIN),
            xdp_live_frames,
            release,
            // ipmr and ip6mr create these in every namespace when they are built in.
            ipmr: Path::new("/proc/net/ip_mr_vif").exists(),
            ip6mr: Path::new("/proc/net/ip6_mr_vif").exists(),
            xdp_meta: xdp_adjust_meta(),
        }
    }

    /// What the kernel lacks for following its tables, one line a family: what is missing
    /// and what it costs. Empty when it has both.
    pub fn follow_gaps(&self) -> Vec<String> {
        let gap = |(family, config, proc): (&str, &str, &str)| {
            format!(
                "this kernel ({}) has no {family} multicast routing ({config}: {proc} is \
                 missing): --follow-kernel has no {family} table to follow",
                self.release
            )
        };
        let mut out = Vec::new();
        if !self.ipmr {
            out.push(gap(("IPv4", "CONFIG_IP_MROUTE", "/proc/net/ip_mr_vif")));
        }
        if !self.ip6mr {
            out.push(gap(("IPv6", "CONFIG_IPV6_MROUTE", "/proc/net/ip6_mr_vif")));
        }
        out
    }

    /// What the kernel lacks for the fast path, one line per feature: what is missing and
    /// what it costs. Empty when nothing is.
    pub fn fast_path_gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.xdp_meta {
            out.push(format!(
                "this kernel ({}) refuses bpf_xdp_adjust_meta to XDP programs: each copy's \
                 MFE is looked up again in the egress program (forwarding works, a lookup \
                 more per copy)",
                self.release
            ));
        }
        if !self.xdp_live_frames {
            out.push(format!(
                "this kernel ({}) refuses XDP test runs with live frames: the first packets \
                 of a new flow are not held for its MFE; they go to the kernel as they would \
                 without mgm",
                self.release
            ));
        } else if !self.hold_first_packets {
            out.push(format!(
                "this kernel ({}) runs XDP test runs with live frames but does not deliver \
                 the copies of one redirected to several interfaces (measured on 6.1; \
                 delivered from {}.{} on): the first packets of a new flow are not held for its \
                 MFE; they go to the kernel as they would without mgm",
                self.release, HOLD_MIN.0, HOLD_MIN.1
            ));
        }
        if !self.tcx {
            out.push(format!(
                "this kernel ({}) has no TCX links (Linux 6.6): the TC program that makes \
                 next-hop copies is a cls_bpf filter on each interface's clsact qdisc \
                 instead (priority 1, handle 0x4d47)",
                self.release
            ));
        }
        out
    }

    /// Why `--follow-kernel` cannot run here, if it cannot: neither family has multicast
    /// routing, so no routing daemon can program a table.
    pub fn cannot_follow(&self) -> Option<String> {
        (!self.ipmr && !self.ip6mr).then(|| {
            format!(
                "--follow-kernel: this kernel ({}) is built without multicast routing \
                 (CONFIG_IP_MROUTE and CONFIG_IPV6_MROUTE are not set: /proc/net/ip_mr_vif \
                 and /proc/net/ip6_mr_vif are missing), so no routing daemon (smcroute, \
                 igmpproxy, FRR's pimd) can program a table for mgmd to follow. Run a kernel \
                 with multicast routing (every Debian kernel has it: `grep MROUTE \
                 /boot/config-$(uname -r)`), or run mgmd without --follow-kernel and install \
                 routes over its socket.",
                self.release
            )
        })
    }
}

impl fmt::Display for KernelFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "kernel {}: ipmr {}, ip6mr {}, XDP metadata {}, XDP live frames {}, held first \
             packets {}, TCX {}",
            self.release,
            yes(self.ipmr),
            yes(self.ip6mr),
            yes(self.xdp_meta),
            yes(self.xdp_live_frames),
            yes(self.hold_first_packets),
            yes(self.tcx)
        )
    }
}

/// Whether `release` ("6.12.95+deb12-amd64", "7.3.4", "6.1.0-50-amd64") is at least
/// `(major, minor)`. An unreadable release counts as new enough: the feature's own use then
/// says what fails.
pub fn version_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        _ => true,
    }
}

/// struct bpf_insn: code, dst_reg (low nibble), imm (no source register or offset needed).
fn insn(code: u8, dst: u8, imm: i32) -> u64 {
    u64::from(code) | u64::from(dst) << 8 | u64::from(imm as u32) << 32
}
const MOV_IMM: u8 = 0xb7;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const XDP_DROP: i32 = 1;
const XDP_PASS: i32 = 2;

/// bpf(2) with `attr` (zero-padded to the size the kernel reads): its result, or the errno.
fn bpf(cmd: libc::c_long, attr: &[u8; 128]) -> Result<libc::c_long, i32> {
    // SAFETY: bpf(2) with an attribute of the size given, pointing at buffers the caller keeps.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as libc::c_uint) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(r)
}

/// Loads an XDP program (BPF_PROG_LOAD: prog_type, insn_cnt, insns, license).
fn load_xdp(prog: &[u64]) -> Result<std::os::fd::OwnedFd, i32> {
    use std::os::fd::FromRawFd as _;
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: a descriptor the kernel just returned, which nothing else holds.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether XDP programs may call `bpf_xdp_adjust_meta`. The verifier answers EINVAL
/// ("program of this type cannot use helper") where the kernel does not offer it; any other
/// failure (no CAP_BPF, say) says nothing about the helper, and the real load reports it.
fn xdp_adjust_meta() -> bool {
    const BPF_FUNC_XDP_ADJUST_META: i32 = 54;
    let prog = [
        insn(MOV_IMM, 2, -8), // r2 = -8 (r1 is the context)
        insn(CALL, 0, BPF_FUNC_XDP_ADJUST_META),
        insn(MOV_IMM, 0, XDP_PASS),
        insn(EXIT, 0, 0),
    ];
    load_xdp(&prog).map_or_else(|errno| errno != libc::EINVAL, |_| true)
}

/// Whether a test run with live frames is allowed: one run of a program that drops its frame
/// (so nothing is sent anywhere). Without CAP_BPF nothing can be told: taken as yes.
fn xdp_live_frames() -> bool {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    let prog = match load_xdp(&[insn(MOV_IMM, 0, XDP_DROP), insn(EXIT, 0, 0)]) {
        Ok(fd) => fd,
        Err(_) => return true,
    };
    // An Ethernet header's worth of zeros: the frame is dropped unread.
    let frame = [0u8; 64];
    // struct bpf_attr's test: prog_fd, retval, data_size_in, data_size_out, data_in,
    // data_out, repeat, duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out, flags.
    let mut attr = [0u8; 128];
    use std::os::fd::AsRawFd as _;
    attr[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(frame.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&1u32.to_ne_bytes());
    attr[64..68].copy_from_slice(&BPF_F_TEST_XDP_LIVE_FRAMES.to_ne_bytes());
    bpf(BPF_PROG_TEST_RUN, &attr)
        .map_or_else(|errno| errno != libc::EPERM && errno != libc::EINVAL, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_by_major_then_minor() {
        assert!(version_at_least("6.6.0", (6, 6)));
        assert!(version_at_least("6.12.95+deb12-amd64", (6, 6)));
        assert!(version_at_least("7.3.4+deb13-amd64", (6, 6)));
        assert!(!version_at_least("6.1.0-50-amd64", (6, 6)));
        assert!(!version_at_least("5.14.0-503.el9.x86_64", (6, 6)));
        assert!(version_at_least("garbage", (6, 6)), "unknown: let the use say what fails");
    }

    #[test]
    fn following_is_refused_only_when_neither_family_routes_multicast() {
        let k = |ipmr, ip6mr| KernelFeatures {
            release: "6.18.44".into(),
            ipmr,
            ip6mr,
            xdp_meta: true,
            xdp_live_frames: true,
            tcx: true,
            hold_first_packets: true,
        };
        let why = k(false, false).cannot_follow().expect("nothing to follow");
        assert!(why.contains("6.18.44") && why.contains("CONFIG_IP_MROUTE"), "{why}");
        assert_eq!(k(true, false).cannot_follow(), None);
        assert_eq!(k(false, true).cannot_follow(), None);
        assert!(k(true, true).follow_gaps().is_empty());
        let gap = k(true, false).follow_gaps();
        assert!(gap.len() == 1 && gap[0].contains("IPv6"), "{gap:?}");
    }

    #[test]
    fn live_frames_that_lose_broadcast_copies_hold_nothing_and_say_why() {
        let k = KernelFeatures {
            release: "6.1.0-50-amd64".into(),
            ipmr: true,
            ip6mr: true,
            xdp_meta: true,
            xdp_live_frames: true,
            tcx: false,
            hold_first_packets: false,
        };
        let gaps = k.fast_path_gaps();
        assert!(
            gaps.iter().any(|g| g.contains("not held") && g.contains("from 6.12 on")),
            "{gaps:?}"
        );
        assert!(k.to_string().contains("XDP live frames yes, held first packets no"), "{k}");
    }
}
