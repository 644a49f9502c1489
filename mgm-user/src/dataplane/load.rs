// SPDX-License-Identifier: MIT OR Apache-2.0
//! Loading: the embedded object into the kernel, each program's verification, the maps
//! pinned (or reused from a previous mgmd's pins when their layout matches), and what went
//! wrong when it does not load.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, MapError},
    programs::{ProgramFd, SchedClassifier, Xdp, XdpMode},
};
use mgm_common::{
    ABI_VERSION, DEFAULT_MAX_MFES, HopList, LEASE_STATIC, LegEntry, LegKey, MfeKey, MfeKey6,
    MfeStats, MfeValue, OifStats, PortValue, Upcall, counter, maps, programs,
};

use super::{BPF_ANY, BpfFastPath, OBJECT, ProgramLogger, attach::remove_filters, grace::Graces};
use crate::{fastpath::FastPathError, kernel::NetDev};

/// Errors while loading or attaching.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the embedded eBPF object is empty: this binary was built with MGM_SKIP_EBPF=1; \
         rebuild without it"
    )]
    Stub,
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// The kernel's verifier refused a program: the object does not fit this kernel (a
    /// bug of mgm's, not of the operator's set-up).
    #[error(
        "this kernel's verifier (Linux {kernel}) rejected program {name} ({errno}); \
         its last lines:\n{log}"
    )]
    Rejected { name: &'static str, kernel: String, errno: std::io::Error, log: String },
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("reading the possible CPUs: {0}")]
    Cpus(std::io::Error),
    #[error("duplicating the fd of map {name}: {source}")]
    Fd {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pin directory {0}: {1} (is bpffs mounted on /sys/fs/bpf?)")]
    Pin(PathBuf, #[source] std::io::Error),
    #[error(
        "{0} is not on a bpffs mount, so pins would not outlive mgmd: mount it \
         (`mount -t bpf bpf /sys/fs/bpf`), or under `ip netns exec` (which remounts /sys) use \
         `nsenter --net=/run/netns/NAME mgmd ...`, or pass --no-pin"
    )]
    NotBpffs(PathBuf),
    #[error(
        "{0} is on a read-only mount, so nothing can be pinned there (a read-only bpffs, or \
         systemd's ProtectSystem=strict or ReadOnlyPaths= without ReadWritePaths= for it): \
         make it writable, or pass --no-pin"
    )]
    ReadOnly(PathBuf),
    #[error("pinning the XDP link of ifindex {0}: {1}")]
    Link(u32, String),
    #[error("creating the first outgoing lists: {0}")]
    OilPool(#[source] FastPathError),
    #[error("map {name} missing from the eBPF object")]
    MissingMap { name: &'static str },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("attaching XDP to ifindex {ifindex} ({mode:?} mode): {source}; {hint}")]
    Attach {
        ifindex: u32,
        mode: XdpMode,
        #[source]
        source: aya::programs::ProgramError,
        /// What the operator can do about it (see [`LoadError::attach`]).
        hint: String,
    },
}

impl LoadError {
    /// An attach error on `dev`, with what to do about it: ERANGE is the kernel saying the
    /// MTU is more than one XDP buffer holds (mgm's programs take a frame in one buffer: no
    /// multi-buffer "frags" support); any other cause is usually a driver without native XDP.
    pub fn attach(dev: &NetDev, mode: XdpMode, source: aya::programs::ProgramError) -> Self {
        let hint = if has_errno(&source, libc::ERANGE) {
            format!(
                "the MTU ({} on {}; on veth the peer's counts) is more than the driver puts in \
                 one XDP buffer, and mgm's programs take a frame in one buffer (on veth with \
                 4 KiB pages: an MTU of at most 3506); lower the MTU, or use --xdp-mode skb \
                 (generic XDP, slower)",
                dev.mtu, dev.name
            )
        } else {
            "try --xdp-mode skb if the driver lacks native XDP".to_owned()
        };
        LoadError::Attach { ifindex: dev.ifindex, mode, source, hint }
    }

    /// Whether the cause is a permission check (EPERM: no CAP_BPF, CAP_NET_ADMIN or
    /// CAP_PERFMON, or a seccomp or LSM policy), rather than the kernel or the object.
    pub fn needs_capability(&self) -> bool {
        has_errno(self, libc::EPERM)
    }
}

/// Whether an OS error `errno` is somewhere in `err`'s chain of causes.
fn has_errno(err: &(dyn std::error::Error + 'static), errno: i32) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.raw_os_error() == Some(errno)) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Why the kernel answered EPERM, as a hint: the capabilities this process lacks (from its
/// effective set, `CapEff` of /proc/self/status), or, when it has them all, the policy that
/// must be in the way (a seccomp filter, a security module).
pub fn permission_hint() -> String {
    let cap_eff = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
        u64::from_str_radix(hex.trim(), 16).ok()
    });
    match cap_eff.map(missing_capabilities) {
        Some(missing) if missing.is_empty() => "this process has CAP_BPF, CAP_NET_ADMIN and \
            CAP_PERFMON, so a policy refused it: a seccomp filter (systemd's SystemCallFilter=) \
            or a security module (SELinux, AppArmor, lockdown)"
            .to_owned(),
        Some(missing) => format!(
            "this process lacks {}: run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON",
            missing.join(", ")
        ),
        None => "needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON".to_owned(),
    }
}

/// The capabilities mgmd needs that the effective set `cap_eff` lacks (CAP_SYS_ADMIN stands
/// for CAP_BPF and CAP_PERFMON, as it does in the kernel).
pub fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let has = |c: u32| cap_eff & (1 << c) != 0;
    let mut missing = Vec::new();
    if !has(BPF) && !has(SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(PERFMON) && !has(SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// How many of the verifier's last lines a rejection quotes.
const REJECTION_LINES: usize = 12;

/// Maps a failed `BPF_PROG_LOAD` of `name` to the error that says what happened: a refusal
/// of the verifier (any errno but EPERM, with its log's last lines), else the error as is.
fn load_error(name: &'static str, source: aya::programs::ProgramError) -> LoadError {
    match source {
        aya::programs::ProgramError::LoadError { io_error, verifier_log }
            if io_error.raw_os_error() != Some(libc::EPERM) =>
        {
            let kernel = crate::features::KernelFeatures::running().release.clone();
            rejection(name, &kernel, io_error, &verifier_log.to_string())
        }
        source => LoadError::Program { name, source },
    }
}

/// The verifier's refusal of `name` on `kernel`, quoting its log's last lines.
fn rejection(name: &'static str, kernel: &str, errno: std::io::Error, log: &str) -> LoadError {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let log = match lines.len() {
        0 => "(none: the kernel refused it before the verifier wrote anything)".into(),
        n => lines[n.saturating_sub(REJECTION_LINES)..].join("\n"),
    };
    LoadError::Rejected { name, kernel: kernel.to_owned(), errno, log }
}

/// One program's verification by this kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub name: &'static str,
    /// Instructions the verifier processed (`verified_insns`: Linux 5.16 and later), the
    /// measure of a program's headroom under the verifier's limit of 1,000,000.
    pub insns: Option<u32>,
    /// Wall time of the load (verification, mostly).
    pub took: std::time::Duration,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let insns = self.insns.map_or("?".to_string(), |n| n.to_string());
        write!(
            f,
            "program {}: verified, {insns} instructions processed in {:.3} s",
            self.name,
            self.took.as_secs_f64()
        )
    }
}

/// Loads `prog` (named `name`), timing its verification.
fn verify<P>(
    prog: &mut P,
    name: &'static str,
    load: impl FnOnce(&mut P) -> Result<(), aya::programs::ProgramError>,
    info: impl FnOnce(&P) -> Result<aya::programs::ProgramInfo, aya::programs::ProgramError>,
) -> Result<Verified, LoadError> {
    let start = std::time::Instant::now();
    load(prog).map_err(|e| load_error(name, e))?;
    let took = start.elapsed();
    let insns = info(prog).ok().and_then(|i| i.verified_instruction_count());
    Ok(Verified { name, insns, took })
}

/// Load-time options.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Capacity of the MFE table (and of its counters).
    pub max_mfes: u32,
    /// How the ingress program is attached to each managed interface.
    pub xdp_mode: XdpMode,
    /// Where maps and XDP links are pinned (bpffs), so forwarding outlives the process and a
    /// restarted mgmd takes over the same maps. `None`: nothing outlives the process.
    pub pin_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { max_mfes: DEFAULT_MAX_MFES, xdp_mode: XdpMode::Default, pin_dir: None }
    }
}

/// What the pinned maps must look like to be reused: every size that the programs and this
/// process must agree on, and the capacities given at load time. Kept as the name of an empty
/// directory next to the pins (bpffs holds no regular files).
fn layout(opts: &LoadOptions) -> String {
    use std::mem::size_of;
    format!(
        "abi{ABI_VERSION}-mfe-{}-{}-{}-{}-stats-{}-port-{}-leg-{}-{}-upcall-{}-oif-{}-hops-{}-counters-{}-oilpins",
        size_of::<MfeKey>(),
        size_of::<MfeKey6>(),
        size_of::<MfeValue>(),
        opts.max_mfes,
        size_of::<MfeStats>(),
        size_of::<PortValue>(),
        size_of::<LegKey>(),
        size_of::<LegEntry>(),
        size_of::<Upcall>(),
        size_of::<OifStats>(),
        size_of::<HopList>(),
        counter::COUNT,
    )
}

/// Removes everything pinned under `dir` (maps and links; the links' XDP programs detach
/// once no process holds them). Returns whether there was anything.
pub fn remove_pins(dir: &Path) -> std::io::Result<bool> {
    remove_filters(dir);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pins only outlive the process on a bpffs shared with the next mgmd. `ip netns exec`
/// remounts /sys without it, the classic trap: say so instead of failing on a mkdir.
fn check_bpffs(dir: &Path) -> Result<(), LoadError> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let parent = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    let st = nix::sys::statfs::statfs(parent)
        .map_err(|e| LoadError::Pin(parent.to_path_buf(), e.into()))?;
    if st.filesystem_type().0 as i64 != BPF_FS_MAGIC {
        return Err(LoadError::NotBpffs(parent.to_path_buf()));
    }
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(LoadError::ReadOnly(parent.to_path_buf()));
    }
    Ok(())
}

/// The program `name` of the object as type `P` (Xdp, SchedClassifier).
pub(super) fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, LoadError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let err = |source| LoadError::Program { name, source };
    ebpf.program_mut(name)
        .ok_or(err(aya::programs::ProgramError::NotLoaded))?
        .try_into()
        .map_err(err)
}

/// Loads the XDP program `name` into the kernel; returns its fd (the program stays owned by
/// `ebpf`, which attaches it later) and its verification.
fn load_xdp(ebpf: &mut Ebpf, name: &'static str) -> Result<(ProgramFd, Verified), LoadError> {
    let err = |source| LoadError::Program { name, source };
    let prog: &mut Xdp = program(ebpf, name)?;
    let verified = verify(prog, name, |p| p.load(), |p| p.info())?;
    let fd = prog.fd().and_then(|fd| fd.try_clone().map_err(Into::into)).map_err(err)?;
    Ok((fd, verified))
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, LoadError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(LoadError::MissingMap { name })?;
    T::try_from(map).map_err(|source| LoadError::Map { name, source })
}

impl BpfFastPath {
    /// Loads the programs and maps into the kernel (nothing is attached yet). The returned
    /// logger, if any, carries aya-log records from the programs and must be polled.
    pub fn load(opts: &LoadOptions) -> Result<(Self, Option<ProgramLogger>), LoadError> {
        if OBJECT.is_empty() {
            return Err(LoadError::Stub);
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| LoadError::Cpus(e))?;
        let kernel = crate::features::KernelFeatures::running();
        // Set before verification: a helper this kernel lacks is pruned, not refused.
        let xdp_meta = u8::from(kernel.xdp_meta);
        let mut loader = EbpfLoader::new();
        loader.override_global(mgm_common::globals::XDP_META, &xdp_meta, true);
        loader.map_max_entries(maps::MFES, opts.max_mfes);
        loader.map_max_entries(maps::MFES6, opts.max_mfes);
        loader.map_max_entries(maps::MFE_STATS, opts.max_mfes);
        loader.map_max_entries(maps::HEARTBEAT, opts.max_mfes);
        loader.map_max_entries(maps::MOVED, opts.max_mfes);
        let mut reused = false;
        let mut pin_paths = Vec::new();
        if let Some(dir) = &opts.pin_dir {
            check_bpffs(dir)?;
            let marker = dir.join(layout(opts));
            match (dir.exists(), marker.is_dir()) {
                (true, true) => reused = true,
                (true, false) => {
                    // Another version or other capacities: these maps cannot be shared with
                    // the programs about to load. Forwarding restarts from nothing.
                    tracing::warn!(
                        dir = %dir.display(),
                        "pinned state has another layout (version or capacities); removing it"
                    );
                    remove_pins(dir).map_err(|e| LoadError::Pin(dir.clone(), e))?;
                }
                (false, _) => {}
            }
            for sub in ["maps", "maps/oils", "links"] {
                std::fs::create_dir_all(dir.join(sub))
                    .map_err(|e| LoadError::Pin(dir.join(sub), e))?;
            }
            pin_paths = maps::PINNED.iter().map(|m| (*m, dir.join("maps").join(m))).collect();
        }
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        if let Some(dir) = &opts.pin_dir
            && !reused
        {
            // Made last: the marker means a complete set of pinned maps.
            std::fs::create_dir(dir.join(layout(opts)))
                .map_err(|e| LoadError::Pin(dir.clone(), e))?;
        }
        // A missing logger only means the programs have no log statements left.
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();

        let (egress, egress_verified) = load_xdp(&mut ebpf, programs::EGRESS)?;
        let (ingress_fd, ingress_verified) = load_xdp(&mut ebpf, programs::INGRESS)?;
        let tc: &mut SchedClassifier = program(&mut ebpf, programs::TC_INGRESS)?;
        let tc_verified = verify(tc, programs::TC_INGRESS, |p| p.load(), |p| p.info())?;
        let tc_fd = {
            use std::os::fd::AsFd as _;
            let fd = tc
                .fd()
                .map_err(|source| LoadError::Program { name: programs::TC_INGRESS, source })?;
            fd.as_fd()
                .try_clone_to_owned()
                .map_err(|source| LoadError::Fd { name: programs::TC_INGRESS, source })?
        };

        let upcalls = take(&mut ebpf, maps::UPCALLS)?;
        let mut leases: Array<MapData, u32> = take(&mut ebpf, maps::LEASES)?;
        // Static MFEs' lease: alive for as long as the program is loaded.
        leases
            .set(LEASE_STATIC, 1, BPF_ANY)
            .map_err(|source| LoadError::Map { name: maps::LEASES, source })?;
        let oils = ebpf.take_map(maps::OILS).ok_or(LoadError::MissingMap { name: maps::OILS })?;
        let oils_fd = match &oils {
            Map::ArrayOfMaps(d) => {
                use std::os::fd::AsFd as _;
                d.fd()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|source| LoadError::Fd { name: maps::OILS, source })?
            }
            _ => return Err(LoadError::MissingMap { name: maps::OILS }),
        };
        let local_ports: Array<MapData, u8> = take(&mut ebpf, maps::LOCAL_PORTS)?;
        // Reused: what a previous mgmd wrote is the starting point of the next difference.
        let local_ports_set = if reused {
            (0..=u16::MAX)
                .filter(|&p| local_ports.get(&p.into(), 0).is_ok_and(|v| v != 0))
                .collect()
        } else {
            BTreeSet::new()
        };
        let graces = {
            let outer =
                oils_fd.try_clone().map_err(|source| LoadError::Fd { name: maps::OILS, source })?;
            let inner = super::bpf::new_oil_devmap().map_err(|e| {
                LoadError::OilPool(FastPathError::Map {
                    map: maps::OILS,
                    source: std::io::Error::other(e),
                })
            })?;
            Graces::start(outer, inner)
                .map_err(|source| LoadError::Fd { name: maps::OILS, source })?
        };
        let mut fp = Self {
            oils_fd,
            graces,
            leases,
            legs: take(&mut ebpf, maps::LEGS)?,
            port_values: Default::default(),
            port_stats: take(&mut ebpf, maps::PORT_STATS)?,
            oil_ports: take(&mut ebpf, maps::OIL_PORTS)?,
            hops: take(&mut ebpf, maps::HOPS)?,
            mfes: take(&mut ebpf, maps::MFES)?,
            mfes6: take(&mut ebpf, maps::MFES6)?,
            mfe_stats: take(&mut ebpf, maps::MFE_STATS)?,
            oif_stats: take(&mut ebpf, maps::OIF_STATS)?,
            oif_base: take(&mut ebpf, maps::OIF_BASE)?,
            config: take(&mut ebpf, maps::CONFIG)?,
            local_ports,
            local_ports_set,
            counters: take(&mut ebpf, maps::COUNTERS)?,
            ports: take(&mut ebpf, maps::PORTS)?,
            ebpf,
            egress,
            ingress_fd,
            tc_fd,
            live_frames: kernel.hold_first_packets,
            verified: vec![ingress_verified, egress_verified, tc_verified],
            oil_pool: 0,
            oil_maps: Vec::new(),
            attached: BTreeMap::new(),
            pin_dir: opts.pin_dir.clone(),
            reused,
            upcalls: Some(upcalls),
            max_mfes: opts.max_mfes,
            mode: opts.xdp_mode,
            ncpus,
        };
        if !fp.reused {
            // The first chunk of outgoing lists now, not on the first join (a batch update of
            // the outer map waits for an RCU grace period: tens of ms). Reused maps keep theirs.
            fp.grow_oil_pool(1).map_err(LoadError::OilPool)?;
        }
        Ok((fp, logger))
    }

    /// How this kernel's verifier took each program (ingress, egress, TC).
    pub fn verified(&self) -> &[Verified] {
        &self.verified
    }

    /// Loads every program as mgmd would (nothing attached, nothing pinned) and unloads
    /// them: whether this kernel's verifier takes the object, and at what cost.
    pub fn check_programs() -> Result<Vec<Verified>, LoadError> {
        let (fp, _logger) = Self::load(&LoadOptions::default())?;
        Ok(fp.verified.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_refusal_says_so_and_quotes_the_verifier() {
        let log = (1..=40).map(|i| format!("{i}: line {i}\n")).collect::<String>()
            + "invalid access to map value, value_size=9240 off=24 size=0\n\n";
        let e = rejection(
            "mgm_xdp_ingress",
            "6.1.0-50-amd64",
            std::io::Error::from_raw_os_error(libc::EACCES),
            &log,
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "this kernel's verifier (Linux 6.1.0-50-amd64) rejected program mgm_xdp_ingress"
            ),
            "{text}"
        );
        assert!(text.contains("invalid access to map value"), "{text}");
        // The last lines only, and no capability hint: the operator's set-up is not at fault.
        assert!(text.contains("30: line 30") && !text.contains("29: line 29"), "{text}");
        assert!(!e.needs_capability());
        let silent = rejection("p", "6.1", std::io::Error::from_raw_os_error(libc::EINVAL), "");
        assert!(silent.to_string().contains("before the verifier wrote anything"), "{silent}");
    }

    #[test]
    fn only_eperm_asks_for_capabilities() {
        let syscall = |errno| LoadError::Program {
            name: "p",
            source: aya::programs::ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_prog_load",
                io_error: std::io::Error::from_raw_os_error(errno),
            }),
        };
        assert!(syscall(libc::EPERM).needs_capability());
        // Which capabilities are missing, from the effective set.
        assert_eq!(missing_capabilities(0), vec!["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
        assert_eq!(missing_capabilities((1 << 39) | (1 << 38)), vec!["CAP_NET_ADMIN"]);
        assert!(missing_capabilities((1 << 21) | (1 << 12)).is_empty(), "CAP_SYS_ADMIN");
        assert!(missing_capabilities(u64::MAX).is_empty());
        assert!(!syscall(libc::EINVAL).needs_capability());
        // A map the kernel refused for want of CAP_BPF, deep in aya's error.
        let map = LoadError::Map {
            name: "MGM_MFES",
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_create",
                io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            }),
        };
        assert!(map.needs_capability());
    }

    /// The object's maps are exactly those mgm-common declares (a map added on one side
    /// only fails here), and the loader pins the declared ones.
    #[test]
    fn the_object_has_exactly_the_declared_maps() {
        let obj = aya_obj::Object::parse(OBJECT).expect("the embedded eBPF object parses");
        // Data sections (.rodata, .bss) and aya-log's map are not mgm's.
        let mut found: Vec<&str> = obj
            .maps
            .keys()
            .map(String::as_str)
            .filter(|n| !n.starts_with('.') && *n != "AYA_LOGS")
            .collect();
        found.sort();
        let mut declared = maps::ALL.to_vec();
        declared.sort();
        assert_eq!(found, declared);
        assert!(maps::PINNED.iter().all(|m| maps::ALL.contains(m)));
        assert!(
            !maps::PINNED.contains(&maps::UPCALL_SCRATCH) && maps::PINNED.contains(&maps::MFES)
        );
    }

    #[test]
    fn verification_is_reported_with_its_cost() {
        let v = Verified {
            name: "mgm_tc_ingress",
            insns: Some(13_461),
            took: std::time::Duration::from_millis(11),
        };
        assert_eq!(
            v.to_string(),
            "program mgm_tc_ingress: verified, 13461 instructions processed in 0.011 s"
        );
    }
}
