// SPDX-License-Identifier: MIT OR Apache-2.0
//! The BPF side of the fast path: loads the embedded eBPF object, attaches the programs to
//! managed interfaces and implements [`FastPath`] (the maps) and [`Dataplane`] (the rest the
//! daemon needs) on them. This is the only module that touches aya; the daemon owns the
//! [`BpfFastPath`] value.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, RingBuf, xdp::DevMapHash},
    programs::{
        LinkOrder, ProgramFd, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::{XdpLink, XdpLinkId},
    },
};
use aya_obj::generated::bpf_map_type;
use mgm_common::{
    ABI_VERSION, DEFAULT_MAX_MFES, Hop, HopList, LEASE_NONE, LEASE_STATIC, LegEntry, LegKey,
    MAX_HOPS, MAX_OIL_PORTS, MfeKey, MfeKey6, MfeStats, MfeValue, OifBase, OifKey, OifStats,
    OilPorts, PortStats, PortValue, UPCALL_FRAME_MAX, Upcall, counter, maps, programs,
};

use crate::{
    fastpath::{Adopted, FastPath, FastPathError, Leg, has_hops},
    kernel::NetDev,
    manager::Sg,
};

/// What the daemon needs from the loaded programs beyond map writes.
pub trait Dataplane: FastPath {
    /// Global counters, indexed by `mgm_common::counter`.
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError>;
    /// Starts forwarding on `dev` (attaches the programs).
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()>;
    /// Forgets an interface that left the kernel (its program links went with it).
    fn forget(&mut self, ifindex: u32);
    /// Forwards a packet held while its MFE was being created, as if it arrived on `ifindex`
    /// now; false if it had to be dropped.
    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool;
    /// Whether [`Dataplane::replay`] can forward anything on this kernel: without it the
    /// first packets of a new flow are not held (they go to the kernel).
    fn can_replay(&self) -> bool;
    /// Sets one value of the programs' configuration (an index of `mgm_common::config`).
    fn set_config(&mut self, idx: u32, value: u64) -> Result<(), FastPathError>;
    /// The UDP ports sockets of this host may receive multicast on (see
    /// `mgm_common::MFE_F_LOCAL`).
    fn set_local_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), FastPathError>;
    /// Each port's copy counters (all CPUs added up), by ifindex.
    fn port_stats(&self) -> Result<BTreeMap<u32, PortStats>, FastPathError>;
}

impl Dataplane for BpfFastPath {
    fn port_stats(&self) -> Result<BTreeMap<u32, PortStats>, FastPathError> {
        BpfFastPath::port_stats(self)
    }
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        BpfFastPath::counters(self)
    }
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()> {
        Ok(self.attach(dev.ifindex, self.mode())?)
    }
    fn forget(&mut self, ifindex: u32) {
        // The kernel removed the links with the device; detaching can only fail now.
        let _ = self.detach(ifindex);
    }
    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool {
        BpfFastPath::replay(self, ifindex, frame)
    }
    fn can_replay(&self) -> bool {
        self.live_frames
    }
    fn set_config(&mut self, idx: u32, value: u64) -> Result<(), FastPathError> {
        self.config.set(idx, value, 0).map_err(map_err(maps::CONFIG))
    }
    fn set_local_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), FastPathError> {
        // Only what changed is written; the set follows each write, so a failed one is
        // written again next time.
        let changed: Vec<u16> = self.local_ports_set.symmetric_difference(ports).copied().collect();
        for port in changed {
            let open = ports.contains(&port);
            let v = u8::from(open);
            self.local_ports.set(port.into(), v, 0).map_err(map_err(maps::LOCAL_PORTS))?;
            if open {
                self.local_ports_set.insert(port);
            } else {
                self.local_ports_set.remove(&port);
            }
        }
        Ok(())
    }
}

/// Forwards aya-log records from the programs to the `log` facade (and so to tracing).
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mgm"));

/// The embedded eBPF object (the packet fuzzer and the program benchmark load it alone).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// Map-write flag: create or replace (BPF_ANY).
const BPF_ANY: u64 = 0;
/// Inner devmaps created at once when the OIL pool runs out. Every write to a map-in-map
/// waits for an RCU grace period (8-20 ms measured here), so the outer map is written only to
/// grow the pool, a chunk per batch update (one wait), and never when an OIL is freed: its
/// devmap is emptied and its id reused.
const OIL_POOL_GROWTH: u32 = 256;

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
    #[error(
        "attaching XDP to ifindex {ifindex} ({mode:?} mode): {source}; \
         try --xdp-mode skb if the driver lacks native XDP"
    )]
    Attach {
        ifindex: u32,
        mode: XdpMode,
        #[source]
        source: aya::programs::ProgramError,
    },
}

impl LoadError {
    /// Whether the cause is a permission check (EPERM: no CAP_BPF, CAP_NET_ADMIN or
    /// CAP_PERFMON, or a seccomp or LSM policy), rather than the kernel or the object.
    pub fn needs_capability(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.raw_os_error() == Some(libc::EPERM)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
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

/// What [`BpfFastPath::test_run`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// XDP action (XDP_DROP 1, XDP_PASS 2, XDP_REDIRECT 4...).
    pub action: u32,
    /// Mean time per run in nanoseconds, as the kernel measured it.
    pub ns_per_run: u32,
    /// The frame after the program (e.g. with the TTL decremented).
    pub frame: Vec<u8>,
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

/// Maps kept in the pin directory. The programs need no pin: the pinned XDP links hold the
/// ingress program, and devmap entries the egress program.
const PINNED_MAPS: [&str; 20] = [
    maps::PORT_STATS,
    maps::MOVED,
    maps::HOPS,
    maps::CONFIG,
    maps::LOCAL_PORTS,
    maps::HEARTBEAT,
    maps::OIF_STATS,
    maps::OIF_BASE,
    maps::OIL_PORTS,
    maps::MFES,
    maps::MFES6,
    maps::OILS,
    maps::MFE_STATS,
    maps::COUNTERS,
    maps::PORTS,
    maps::UPCALLS,
    maps::UPCALL_SEEN,
    maps::UPCALL_SEEN6,
    maps::LEASES,
    maps::LEGS,
];

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

/// The devmap of OIL `id` (1..=oil_pool) among `maps` (id 1 first).
fn oil_map(
    devmaps: &mut [DevMapHash<MapData>],
    id: u32,
) -> Result<&mut DevMapHash<MapData>, FastPathError> {
    let i = id.checked_sub(1).map(|i| i as usize);
    i.and_then(|i| devmaps.get_mut(i))
        .ok_or(FastPathError::Map { map: maps::OILS, source: MapError::KeyNotFound })
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

/// The programs on one managed interface.
#[derive(Debug)]
struct Attached {
    xdp: Attachment,
    /// The TC program (next-hop copies); `None` if the kernel refused it.
    _tc: Option<TcLink>,
}

/// The TC program on one interface.
#[derive(Debug)]
enum TcLink {
    /// A TCX link (Linux 6.6 and later), held open by this process and, when pinned, by its
    /// pin (only a deliberate detach removes the pin).
    Tcx { _link: FdLink, path: Option<PathBuf> },
    /// A cls_bpf filter on the clsact qdisc (older kernels), at mgm's priority and handle.
    /// Filters have no pins: with a pin directory the filter is left in place when this
    /// process exits (as the pinned XDP link is), marked by `marker`, and the next mgmd
    /// swaps its program in; without one it goes with the process.
    Filter { link: Option<SchedClassifierLink>, marker: Option<PathBuf> },
}

impl TcLink {
    /// Takes the program off the interface for good (and its pin or marker).
    fn remove(mut self) {
        match &mut self {
            TcLink::Tcx { path, .. } => path.take().map(std::fs::remove_file),
            TcLink::Filter { marker, .. } => marker.take().map(std::fs::remove_dir),
        };
    }
}

impl Drop for TcLink {
    fn drop(&mut self) {
        if let TcLink::Filter { link, marker: Some(_) } = self {
            // Forwarding outlives the process: the filter stays (dropping the link would
            // delete it).
            std::mem::forget(link.take());
        }
    }
}

/// Where mgm's cls_bpf filter sits in the clsact ingress hook (kernels without TCX): its
/// priority, and its handle (0x4d47, "MG"), which together name it for a restart's swap and
/// for `--cleanup`.
const TC_FILTER_PRIORITY: u16 = 1;
const TC_FILTER_HANDLE: u32 = 0x4d47;

/// The marker of a filter left in place on `ifindex` (bpffs holds directories, not files).
fn filter_marker(dir: &Path, ifindex: u32) -> PathBuf {
    dir.join("links").join(format!("tc-filter-{ifindex}"))
}

/// Deletes the cls_bpf filters a pin directory's markers name (`--cleanup`).
fn remove_filters(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("links")) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(ifindex) =
            name.to_str().and_then(|n| n.strip_prefix("tc-filter-")).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        // A gone interface took its filter with it.
        if let Ok(ifname) = nix::net::if_::if_indextoname(ifindex) {
            let link = SchedClassifierLink::attached(
                &ifname.to_string_lossy(),
                TcAttachType::Ingress,
                TC_FILTER_PRIORITY,
                TC_FILTER_HANDLE.into(),
                None,
            );
            if let Ok(link) = link {
                drop(link);
            }
        }
    }
}

/// How the ingress program is held on one interface.
#[derive(Debug)]
enum Attachment {
    /// By this process: detached when it exits.
    Owned(XdpLinkId),
    /// By a pinned link: stays attached when this process exits.
    Pinned { _link: FdLink, path: PathBuf },
}

/// The loaded programs and their maps.
pub struct BpfFastPath {
    ebpf: Ebpf,
    mfes: HashMap<MapData, MfeKey, MfeValue>,
    mfes6: HashMap<MapData, MfeKey6, MfeValue>,
    mfe_stats: PerCpuArray<MapData, MfeStats>,
    oif_stats: aya::maps::PerCpuHashMap<MapData, OifKey, OifStats>,
    oif_base: HashMap<MapData, OifKey, OifBase>,
    config: Array<MapData, u64>,
    /// The UDP ports local sockets may receive multicast on, and their set as written.
    local_ports: Array<MapData, u8>,
    local_ports_set: BTreeSet<u16>,
    counters: PerCpuArray<MapData, u64>,
    ports: HashMap<MapData, u32, PortValue>,
    leases: Array<MapData, u32>,
    oil_ports: HashMap<MapData, u32, OilPorts>,
    hops: HashMap<MapData, u32, HopList>,
    legs: HashMap<MapData, LegKey, LegEntry>,
    /// Each port as written to `ports`: the legs carry its MAC and stats slot too (the
    /// egress program's one lookup per copy), so a changed MAC is rewritten into them.
    port_values: std::collections::HashMap<u32, PortValue>,
    port_stats: PerCpuArray<MapData, PortStats>,
    egress: ProgramFd,
    ingress_fd: ProgramFd,
    /// The TC program, for [`BpfFastPath::test_run_tc`].
    tc_fd: std::os::fd::OwnedFd,
    replayer: Option<std::sync::mpsc::SyncSender<(u32, Vec<u8>)>>,
    /// The kernel runs XDP test runs with live frames: held packets can be replayed.
    live_frames: bool,
    /// OIL ids 1..=oil_pool have an inner devmap in the outer map.
    oil_pool: u32,
    /// Those devmaps (id 1 first), held from their creation or opened from their pins after
    /// a restart: the outer map only gives their ids, and turning an id into an fd
    /// (BPF_MAP_GET_FD_BY_ID) takes CAP_SYS_ADMIN, which mgmd does without.
    oil_maps: Vec<DevMapHash<MapData>>,
    /// The outer OIL map's fd, for the batch update aya does not wrap (aya's handle of it
    /// would only read inner maps by id, which takes CAP_SYS_ADMIN).
    oils_fd: std::os::fd::OwnedFd,
    attached: BTreeMap<u32, Attached>,
    /// How the kernel's verifier took each program.
    verified: Vec<Verified>,
    pin_dir: Option<PathBuf>,
    /// The maps came from the pin directory (a restart): their contents are live state.
    reused: bool,
    upcalls: Option<RingBuf<MapData>>,
    max_mfes: u32,
    mode: XdpMode,
    /// Possible CPUs: the length of every per-CPU value.
    ncpus: usize,
}

impl std::fmt::Debug for BpfFastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfFastPath").field("attached", &self.attached).finish_non_exhaustive()
    }
}

/// The program `name` of the object as type `P` (Xdp, SchedClassifier).
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, LoadError>
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
            pin_paths = PINNED_MAPS.iter().map(|m| (*m, dir.join("maps").join(m))).collect();
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
        let mut fp = Self {
            oils_fd,
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
            replayer: None,
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

    /// Attaches the ingress program to `ifindex` (idempotent).
    pub fn attach(&mut self, ifindex: u32, mode: XdpMode) -> Result<(), LoadError> {
        if self.attached.contains_key(&ifindex) {
            return Ok(());
        }
        let prog: &mut Xdp = program(&mut self.ebpf, programs::INGRESS)?;
        let attach_err = |source| LoadError::Attach { ifindex, mode, source };
        let Some(dir) = &self.pin_dir else {
            let link = prog.attach_to_if_index(ifindex, mode).map_err(attach_err)?;
            let tc = self.attach_tc(ifindex);
            self.attached.insert(ifindex, Attached { xdp: Attachment::Owned(link), _tc: tc });
            return Ok(());
        };
        let path = dir.join("links").join(ifindex.to_string());
        // A link pinned by an earlier mgmd: swap this process's program in atomically (the
        // interface never goes without one). A stale pin (the interface went away) fails
        // and is replaced.
        let id = match PinnedLink::from_pin(&path)
            .ok()
            .and_then(|p| XdpLink::try_from(FdLink::from(p)).ok())
            .map(|link| prog.attach_to_link(link))
        {
            Some(Ok(id)) => id,
            _ => {
                let _ = std::fs::remove_file(&path);
                prog.attach_to_if_index(ifindex, mode).map_err(attach_err)?
            }
        };
        let link = prog.take_link(id).map_err(attach_err)?;
        let fd_link =
            FdLink::try_from(link).map_err(|e| LoadError::Link(ifindex, e.to_string()))?;
        let link = if path.exists() {
            fd_link
        } else {
            let pinned = fd_link.pin(&path).map_err(|e| LoadError::Link(ifindex, e.to_string()))?;
            FdLink::from(pinned)
        };
        let tc = self.attach_tc(ifindex);
        self.attached
            .insert(ifindex, Attached { xdp: Attachment::Pinned { _link: link, path }, _tc: tc });
        Ok(())
    }

    /// Attaches the TC program: a TCX link where the kernel has them (pinned like the XDP
    /// one, swapped in atomically on a restart), else a cls_bpf filter on clsact. Without it
    /// MFEs with next hops cannot forward: logged, not fatal.
    fn attach_tc(&mut self, ifindex: u32) -> Option<TcLink> {
        let tcx = crate::features::KernelFeatures::running().tcx;
        let link = if tcx { self.attach_tcx(ifindex) } else { self.attach_filter(ifindex) };
        match link {
            Ok(l) => Some(l),
            Err(e) => {
                let how = if tcx { "TCX link" } else { "cls_bpf filter on clsact" };
                tracing::warn!(ifindex, error = %e, "TC program not attached ({how}): MFEs with next hops will not forward here");
                None
            }
        }
    }

    fn attach_tcx(&mut self, ifindex: u32) -> Result<TcLink, String> {
        let path = self.pin_dir.as_ref().map(|d| d.join("links").join(format!("tc-{ifindex}")));
        let prog: &mut SchedClassifier =
            program(&mut self.ebpf, programs::TC_INGRESS).expect("loaded in load()");
        let reused = path
            .as_ref()
            .and_then(|p| PinnedLink::from_pin(p).ok())
            .and_then(|p| SchedClassifierLink::try_from(FdLink::from(p)).ok())
            .map(|link| prog.attach_to_link(link));
        let id = match reused {
            Some(Ok(id)) => Ok(id),
            _ => {
                if let Some(p) = &path {
                    let _ = std::fs::remove_file(p);
                }
                nix::net::if_::if_indextoname(ifindex).map_err(|e| e.to_string()).and_then(|name| {
                    let name = name.to_string_lossy().into_owned();
                    let order = TcAttachOptions::TcxOrder(LinkOrder::default());
                    prog.attach_with_options(&name, TcAttachType::Ingress, order)
                        .map_err(|e| e.to_string())
                })
            }
        };
        let link = id
            .and_then(|id| prog.take_link(id).map_err(|e| e.to_string()))
            .and_then(|link| FdLink::try_from(link).map_err(|e| e.to_string()));
        let link = match (link, &path) {
            (Ok(l), Some(p)) if !p.exists() => {
                l.pin(p).map(FdLink::from).map_err(|e| e.to_string())
            }
            (l, _) => l,
        };
        link.map(|l| TcLink::Tcx { _link: l, path })
    }

    /// The filter of kernels without TCX: mgm's own priority and handle on the clsact
    /// qdisc's ingress (added if missing). A filter already there (a previous mgmd's, left
    /// with the pinned fast path) gets this program in its place, in one netlink request.
    fn attach_filter(&mut self, ifindex: u32) -> Result<TcLink, String> {
        use aya::programs::tc::{NlOptions, TcHandle, qdisc_add_clsact};
        let name = nix::net::if_::if_indextoname(ifindex).map_err(|e| e.to_string())?;
        let name = name.to_string_lossy().into_owned();
        // EEXIST is the usual answer: the qdisc outlives any one program.
        let _ = qdisc_add_clsact(&name);
        let prog: &mut SchedClassifier =
            program(&mut self.ebpf, programs::TC_INGRESS).expect("loaded in load()");
        let handle = TcHandle::from(TC_FILTER_HANDLE);
        let options = NlOptions { priority: TC_FILTER_PRIORITY, handle, ..Default::default() };
        let id = match prog.attach_with_options(
            &name,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(options),
        ) {
            Ok(id) => id,
            Err(_) => {
                let old = SchedClassifierLink::attached(
                    &name,
                    TcAttachType::Ingress,
                    TC_FILTER_PRIORITY,
                    handle,
                    None,
                )
                .map_err(|e| e.to_string())?;
                match prog.attach_to_link(old) {
                    Ok(id) => id,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        let link = prog.take_link(id).map_err(|e| e.to_string())?;
        let marker = self.pin_dir.as_ref().map(|d| filter_marker(d, ifindex));
        if let Some(m) = &marker
            && let Err(e) = std::fs::create_dir(m)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(format!("{}: {e}", m.display()));
        }
        Ok(TcLink::Filter { link: Some(link), marker })
    }

    /// Detaches the ingress program from `ifindex`; a no-op if not attached.
    pub fn detach(&mut self, ifindex: u32) -> Result<(), LoadError> {
        let Some(Attached { xdp, _tc }) = self.attached.remove(&ifindex) else {
            return Ok(());
        };
        if let Some(tc) = _tc {
            tc.remove();
        }
        let link = match xdp {
            Attachment::Pinned { _link, path } => {
                // Without its pin the link dies with our fd: the program detaches.
                let _ = std::fs::remove_file(path);
                return Ok(());
            }
            Attachment::Owned(link) => link,
        };
        let prog: &mut Xdp = program(&mut self.ebpf, programs::INGRESS)?;
        prog.detach(link).map_err(|source| LoadError::Program { name: programs::INGRESS, source })
    }

    /// Runs the ingress program once per `repeat` on `frame` as if it arrived on
    /// `ingress_ifindex` (BPF_PROG_TEST_RUN, which aya 0.14 does not wrap). Nothing is
    /// transmitted: a redirect is only reported as the action. For benchmarks and packet
    /// fuzzing; the maps are the live ones, so counters move.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> std::io::Result<TestRun> {
        use std::os::fd::AsFd as _;
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = xdp_ctx(frame, ingress_ifindex);
        let mut ctx_out = ctx;
        let fd = self.ingress_fd.as_fd();
        let r = prog_test_run(fd, frame, &ctx, repeat, 0, Some(&mut out), Some(&mut ctx_out))?;
        // The kernel hands back the metadata in front of the frame; `data` is its length.
        out.drain(..(ctx_out[0] as usize).min(out.len()));
        Ok(TestRun { action: r.0, ns_per_run: r.1, frame: out })
    }

    /// Runs the TC program once on `frame` as if it arrived on `ingress_ifindex` (which must
    /// exist in the caller's network namespace). Its copies are really sent; `frame` in the
    /// result is the packet after the last of them was made; `action` the TC verdict.
    pub fn test_run_tc(&self, frame: &[u8], ingress_ifindex: u32) -> std::io::Result<TestRun> {
        use std::os::fd::AsFd as _;
        let mut out = vec![0u8; frame.len() + 256];
        // struct __sk_buff up to `ifindex`: the arriving interface (skb_iif) and the device.
        let mut ctx = [0u32; 11];
        ctx[9] = ingress_ifindex;
        ctx[10] = ingress_ifindex;
        let r = prog_test_run(self.tc_fd.as_fd(), frame, &ctx, 1, 0, Some(&mut out), None)?;
        Ok(TestRun { action: r.0, ns_per_run: r.1, frame: out })
    }

    /// Forwards a packet that arrived on `ifindex` before its MFE existed, through the
    /// ingress program as if it arrived now (BPF_PROG_TEST_RUN with live frames). Queued to a
    /// thread; returns false if that queue is full (the packet is dropped).
    pub fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool {
        use std::os::fd::AsFd as _;
        if !self.live_frames {
            return false;
        }
        if self.replayer.is_none() {
            match self.ingress_fd.as_fd().try_clone_to_owned() {
                Ok(fd) => self.replayer = Some(spawn_replayer(fd)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the replay thread");
                    return false;
                }
            }
        }
        self.replayer.as_ref().is_some_and(|tx| tx.try_send((ifindex, frame)).is_ok())
    }

    /// The upcall ring buffer, for the task that reads it (once).
    pub fn take_upcalls(&mut self) -> Option<RingBuf<MapData>> {
        self.upcalls.take()
    }

    /// The attach mode chosen at load time.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    pub fn attached(&self) -> impl Iterator<Item = u32> + '_ {
        self.attached.keys().copied()
    }

    /// Global counters summed over CPUs, indexed by [`mgm_common::counter`].
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        let mut out = [0u64; counter::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .get(&(i as u32), 0)
                .map_err(|source| FastPathError::Map { map: maps::COUNTERS, source })?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

impl BpfFastPath {
    /// Adds empty inner devmaps to the outer map until it holds id `at_least`, in chunks of
    /// [`OIL_POOL_GROWTH`], each chunk in one batch update.
    fn grow_oil_pool(&mut self, at_least: u32) -> Result<(), FastPathError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let end = (self.oil_pool + OIL_POOL_GROWTH).max(at_least).min(mgm_common::MAX_OILS);
        if at_least > end {
            return Err(FastPathError::Full { what: "OIL table", capacity: mgm_common::MAX_OILS });
        }
        let mut inner = Vec::new();
        for _ in self.oil_pool + 1..=end {
            let def = aya_obj::Map::new_from_params(
                bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
                size_of::<u32>() as u32,
                // struct bpf_devmap_val { u32 ifindex; union { int fd; u32 id; } bpf_prog; }
                8,
                MAX_OIL_PORTS,
                0,
            );
            inner.push(MapData::create(def, "mgm_oil", None).map_err(map_err("mgm_oil"))?);
        }
        let keys: Vec<u32> = (self.oil_pool + 1..=end).collect();
        let fds: Vec<u32> = inner.iter().map(|m| m.fd().as_fd().as_raw_fd() as u32).collect();
        let outer = {
            use std::os::fd::AsRawFd as _;
            self.oils_fd.as_raw_fd()
        };
        // SAFETY: bpf_attr is a plain C union; all-zero is its documented initial state.
        let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
        attr.batch.keys = keys.as_ptr() as u64;
        attr.batch.values = fds.as_ptr() as u64;
        attr.batch.count = keys.len() as u32;
        attr.batch.map_fd = outer as u32;
        // SAFETY: attr points to a valid bpf_attr whose arrays outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                aya_obj::generated::bpf_cmd::BPF_MAP_UPDATE_BATCH as libc::c_long,
                &mut attr as *mut aya_obj::generated::bpf_attr,
                size_of::<aya_obj::generated::bpf_attr>(),
            )
        };
        // SAFETY: the kernel wrote back how many elements it inserted.
        let done = unsafe { attr.batch.count };
        for (i, map) in inner.into_iter().take(done as usize).enumerate() {
            let id = self.oil_pool + 1 + i as u32;
            if let Some(path) = self.oil_pin(id) {
                map.pin(&path).map_err(|e| FastPathError::Map {
                    map: maps::OILS,
                    source: MapError::PinError { name: Some(format!("mgm_oil {id}")), error: e },
                })?;
            }
            let devmap = DevMapHash::try_from(Map::DevMapHash(map)).map_err(map_err("mgm_oil"))?;
            self.oil_maps.push(devmap);
        }
        self.oil_pool += done;
        if rc < 0 {
            let io_error = std::io::Error::last_os_error();
            let source = MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_update_batch",
                io_error,
            });
            return Err(FastPathError::Map { map: maps::OILS, source });
        }
        Ok(())
    }

    /// Where the devmap of OIL `id` is pinned (when the fast path is).
    fn oil_pin(&self, id: u32) -> Option<PathBuf> {
        Some(self.pin_dir.as_ref()?.join("maps").join("oils").join(id.to_string()))
    }

    /// A stats slot no port has (1..=MAX_PORTS), its counters zeroed.
    fn new_port_stats(&mut self) -> Result<u32, FastPathError> {
        let used: BTreeSet<u32> = self.port_values.values().map(|p| p.stats).collect();
        let slot = (1..=mgm_common::MAX_PORTS)
            .find(|s| !used.contains(s))
            .ok_or(FastPathError::Full { what: "port table", capacity: mgm_common::MAX_PORTS })?;
        let zero = aya::maps::PerCpuValues::try_from(vec![PortStats::default(); self.ncpus])
            .expect("one value per possible CPU");
        self.port_stats.set(slot, zero, 0).map_err(map_err(maps::PORT_STATS))?;
        Ok(slot)
    }

    /// Each port's copy counters, all CPUs added up.
    pub fn port_stats(&self) -> Result<BTreeMap<u32, PortStats>, FastPathError> {
        let mut out = BTreeMap::new();
        for (ifindex, p) in &self.port_values {
            let per_cpu = self.port_stats.get(&p.stats, 0).map_err(map_err(maps::PORT_STATS))?;
            let mut sum = PortStats::default();
            per_cpu.iter().for_each(|c| sum.accumulate(c));
            out.insert(*ifindex, sum);
        }
        Ok(out)
    }

    /// The egress program's view of a leg: its leases and the port's MAC.
    fn leg_entry(&self, l: &Leg) -> LegEntry {
        let port = self.port_values.get(&l.ifindex).copied();
        let (src_mac, stats) = port.map_or(([0; 6], 0), |p| (p.mac, p.stats));
        LegEntry { leases: l.leases, src_mac, port_stats: stats as u16 }
    }

    /// How many OIL ids have a pinned devmap: the pool is always ids 1..=n, pinned in that
    /// order as they are made, so the first missing pin is found by bisection. (A crash
    /// between filling the outer map and pinning leaves a few unpinned: they are made again.)
    fn pinned_oil_pool(&self) -> u32 {
        let pinned = |id: u32| self.oil_pin(id).is_some_and(|p| p.exists());
        let (mut lo, mut hi) = (0, mgm_common::MAX_OILS);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if pinned(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    /// After a restart (maps reused from the pin directory): everything the previous mgmd
    /// left in the maps, for the mirror to adopt. Devmap entries are rewritten to name this
    /// process's egress program; entries no leg accounts for (a crash mid-write) are removed.
    pub fn pinned_state(&mut self) -> Result<Option<Adopted>, FastPathError> {
        if !self.reused {
            return Ok(None);
        }
        let mut a = Adopted::default();
        for r in self.ports.iter() {
            let (i, p) = r.map_err(map_err(maps::PORTS))?;
            self.port_values.insert(i, p);
            a.ports.push((i, p));
        }
        for r in self.legs.iter() {
            let (k, v) = r.map_err(map_err(maps::LEGS))?;
            a.oils.entry(k.oil).or_default().push(Leg::new(k.ifindex, v.leases));
        }
        self.oil_pool = self.pinned_oil_pool();
        for id in 1..=self.oil_pool {
            let path = self.oil_pin(id).expect("reused maps are pinned");
            let map = MapData::from_pin(&path).map_err(map_err("mgm_oil"))?;
            let mut inner =
                DevMapHash::try_from(Map::DevMapHash(map)).map_err(map_err("mgm_oil"))?;
            let legs = a.oils.get(&id).cloned().unwrap_or_default();
            let present: Vec<u32> =
                inner.keys().collect::<Result<_, _>>().map_err(map_err("mgm_oil"))?;
            for i in present.iter().filter(|i| !legs.iter().any(|l| l.ifindex == **i)) {
                ignore_absent(inner.remove(*i)).map_err(map_err("mgm_oil"))?;
            }
            for l in &legs {
                inner
                    .insert(l.ifindex, l.ifindex, Some(&self.egress), BPF_ANY)
                    .map_err(|source| FastPathError::XdpMap { map: "mgm_oil", source })?;
            }
            self.oil_maps.push(inner);
        }
        for r in self.hops.iter() {
            let (id, list) = r.map_err(map_err(maps::HOPS))?;
            let legs = list.hops.iter().take((list.len as usize).min(MAX_HOPS)).map(|h| Leg {
                ifindex: h.ifindex,
                nexthop: std::net::Ipv6Addr::from(h.nexthop).to_canonical(),
                mac: h.mac,
                leases: h.leases,
            });
            a.oils.entry(id).or_default().extend(legs);
        }
        for legs in a.oils.values_mut() {
            legs.sort();
        }
        for r in self.mfes.iter() {
            let (k, v) = r.map_err(map_err(maps::MFES))?;
            a.mfes.push((Sg::v4(k.source, k.group), v));
        }
        for r in self.mfes6.iter() {
            let (k, v) = r.map_err(map_err(maps::MFES6))?;
            a.mfes.push((Sg::new(Ipv6Addr::from(k.source), Ipv6Addr::from(k.group)), v));
        }
        let named: std::collections::BTreeSet<u32> = a
            .oils
            .values()
            .flatten()
            .flat_map(|l| l.leases.leases)
            .filter(|&l| l != LEASE_NONE && l != LEASE_STATIC)
            .collect();
        for id in named {
            let v = self.leases.get(&id, 0).map_err(map_err(maps::LEASES))?;
            a.leases.insert(id, v != 0);
        }
        Ok(Some(a))
    }
}

/// BPF_PROG_TEST_RUN of an XDP program on one frame as if it arrived on `ifindex` (in the
/// caller's network namespace): returns (action, ns per run) and, with `out`, the frame after
/// the program (truncated to its size). With [`BPF_F_TEST_XDP_LIVE_FRAMES`] in `flags` the
/// verdict is carried out for real, `repeat` times (a traffic generator with `XDP_TX`).
pub fn prog_test_run(
    prog: std::os::fd::BorrowedFd<'_>,
    frame: &[u8],
    ctx: &[u32],
    repeat: u32,
    flags: u32,
    out: Option<&mut Vec<u8>>,
    ctx_out: Option<&mut [u32]>,
) -> std::io::Result<(u32, u32)> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: bpf_attr is a plain C union; all-zero is its documented initial state.
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    // Writing union fields is safe; the kernel reads the `test` member.
    attr.test.prog_fd = prog.as_raw_fd() as u32;
    attr.test.data_in = frame.as_ptr() as u64;
    attr.test.data_size_in = frame.len() as u32;
    if let Some(out) = &out {
        attr.test.data_out = out.as_ptr() as u64;
        attr.test.data_size_out = out.len() as u32;
    }
    attr.test.ctx_in = ctx.as_ptr() as u64;
    attr.test.ctx_size_in = size_of_val(ctx) as u32;
    if let Some(c) = &ctx_out {
        attr.test.ctx_out = c.as_ptr() as u64;
        attr.test.ctx_size_out = size_of_val(*c) as u32;
    }
    attr.test.repeat = repeat;
    attr.test.flags = flags;
    // SAFETY: attr points to a valid bpf_attr whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_PROG_TEST_RUN as libc::c_long,
            &mut attr as *mut aya_obj::generated::bpf_attr,
            size_of::<aya_obj::generated::bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the `test` member.
    let (action, ns, len) =
        unsafe { (attr.test.retval, attr.test.duration, attr.test.data_size_out) };
    if let Some(out) = out {
        out.truncate(len as usize);
    }
    Ok((action, ns))
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: the test run's redirects really transmit.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Frames waiting for the replay thread, at most.
const REPLAY_QUEUE: usize = 256;

/// Forwards held packets through the ingress program for real, off the router's thread: a
/// test run waits for an RCU grace period (~16 ms here).
fn spawn_replayer(prog: std::os::fd::OwnedFd) -> std::sync::mpsc::SyncSender<(u32, Vec<u8>)> {
    use std::os::fd::AsFd as _;
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(REPLAY_QUEUE);
    std::thread::Builder::new()
        .name("mgm-replay".into())
        .spawn(move || {
            for (ifindex, frame) in rx {
                let r = prog_test_run(
                    prog.as_fd(),
                    &frame,
                    &xdp_ctx(&frame, ifindex),
                    1,
                    BPF_F_TEST_XDP_LIVE_FRAMES,
                    None,
                    None,
                );
                if let Err(e) = r {
                    tracing::warn!(ifindex, error = %e, "forwarding a held packet failed");
                }
            }
        })
        .expect("spawning a thread");
    tx
}

/// The context of an XDP test run: struct xdp_md (data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex); the kernel wants data_end == the frame
/// length.
pub fn xdp_ctx(frame: &[u8], ingress_ifindex: u32) -> [u32; 6] {
    [0, frame.len() as u32, 0, ingress_ifindex, 0, 0]
}

/// Reads one ring-buffer record: the [`Upcall`] and the frame bytes after it; `None` for a
/// record that does not hold what its header says.
pub fn parse_upcall(bytes: &[u8]) -> Option<(Upcall, &[u8])> {
    let (head, rest) = bytes.split_at_checked(size_of::<Upcall>())?;
    // SAFETY: Upcall is plain old data of exactly this size; the read is unaligned-safe.
    let u: Upcall = unsafe { head.as_ptr().cast::<Upcall>().read_unaligned() };
    let frame = rest.get(..u.frame_len as usize)?;
    (u.frame_len as usize <= UPCALL_FRAME_MAX).then_some((u, frame))
}

/// An (S,G) as one of the two MFE maps keys it.
enum Key {
    V4(MfeKey),
    V6(MfeKey6),
}

fn bpf_key(sg: Sg) -> Result<Key, FastPathError> {
    match (sg.source, sg.group) {
        (IpAddr::V4(s), IpAddr::V4(g)) => Ok(Key::V4(MfeKey::new(s.octets(), g.octets()))),
        (IpAddr::V6(s), IpAddr::V6(g)) => {
            Ok(Key::V6(MfeKey6 { source: s.octets(), group: g.octets() }))
        }
        _ => Err(FastPathError::Family(sg.source, sg.group)),
    }
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> FastPathError {
    move |source| FastPathError::Map { map, source }
}

/// Treats "no such key" on delete as success: deletes are idempotent.
fn ignore_absent(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

impl FastPath for BpfFastPath {
    fn set_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError> {
        let stats = match self.port_values.get(&ifindex) {
            Some(p) => p.stats,
            None => self.new_port_stats()?,
        };
        let port = PortValue { stats, ..port };
        self.ports.insert(ifindex, port, BPF_ANY).map_err(map_err(maps::PORTS))?;
        let old = self.port_values.insert(ifindex, port).map(|p| p.mac);
        if old.is_some_and(|m| m != port.mac) {
            // Rare (an operator changed the address): every leg out of this port is
            // rewritten, one write each.
            let mine: Vec<(LegKey, LegEntry)> = self
                .legs
                .iter()
                .filter_map(Result::ok)
                .filter(|(k, _)| k.ifindex == ifindex)
                .collect();
            for (k, mut v) in mine {
                v.src_mac = port.mac;
                self.legs.insert(k, v, BPF_ANY).map_err(map_err(maps::LEGS))?;
            }
        }
        Ok(())
    }

    fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        self.port_values.remove(&ifindex);
        ignore_absent(self.ports.remove(&ifindex)).map_err(map_err(maps::PORTS))
    }

    fn set_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError> {
        if has_hops(legs) {
            // Copies per next hop: one list the TC program walks, no devmap.
            let mut list = HopList { len: legs.len() as u32, hops: [Hop::default(); MAX_HOPS] };
            for (h, l) in list.hops.iter_mut().zip(legs) {
                *h = Hop {
                    ifindex: l.ifindex,
                    mac: l.mac,
                    set_dst: u8::from(!l.nexthop.is_unspecified()),
                    _pad: 0,
                    nexthop: match l.nexthop {
                        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                        IpAddr::V6(a) => a.octets(),
                    },
                    leases: l.leases,
                };
            }
            return self.hops.insert(id, list, BPF_ANY).map_err(map_err(maps::HOPS));
        }
        if id > self.oil_pool {
            self.grow_oil_pool(id)?;
        }
        // Legs first: the egress program looks them up once the devmap holds the ports.
        for l in legs {
            let k = LegKey { oil: id, ifindex: l.ifindex };
            self.legs.insert(k, self.leg_entry(l), BPF_ANY).map_err(map_err(maps::LEGS))?;
        }
        let mut ports = OilPorts { len: legs.len() as u32, ifindex: [0; MAX_OIL_PORTS as usize] };
        for (d, l) in ports.ifindex.iter_mut().zip(legs) {
            *d = l.ifindex;
        }
        self.oil_ports.insert(id, ports, BPF_ANY).map_err(map_err(maps::OIL_PORTS))?;
        // The id is free (no MFE names it): its devmap is empty and can be filled in place.
        let inner = oil_map(&mut self.oil_maps, id)?;
        for ifindex in legs.iter().map(|l| l.ifindex) {
            inner
                .insert(ifindex, ifindex, Some(&self.egress), BPF_ANY)
                .map_err(|source| FastPathError::XdpMap { map: "mgm_oil", source })?;
        }
        Ok(())
    }

    fn remove_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError> {
        if has_hops(legs) {
            return ignore_absent(self.hops.remove(&id)).map_err(map_err(maps::HOPS));
        }
        // Emptied, not removed from the outer map (see OIL_POOL_GROWTH); no MFE names it.
        ignore_absent(self.oil_ports.remove(&id)).map_err(map_err(maps::OIL_PORTS))?;
        for l in legs {
            let inner = oil_map(&mut self.oil_maps, id)?;
            ignore_absent(inner.remove(l.ifindex)).map_err(map_err("mgm_oil"))?;
            let k = LegKey { oil: id, ifindex: l.ifindex };
            ignore_absent(self.legs.remove(&k)).map_err(map_err(maps::LEGS))?;
        }
        Ok(())
    }

    fn set_lease(&mut self, id: u32, alive: bool) -> Result<(), FastPathError> {
        self.leases.set(id, u32::from(alive), BPF_ANY).map_err(map_err(maps::LEASES))
    }

    fn set_mfe(&mut self, key: Sg, value: MfeValue) -> Result<(), FastPathError> {
        match bpf_key(key)? {
            Key::V4(k) => self.mfes.insert(k, value, BPF_ANY).map_err(map_err(maps::MFES)),
            Key::V6(k) => self.mfes6.insert(k, value, BPF_ANY).map_err(map_err(maps::MFES6)),
        }
    }

    fn remove_mfe(&mut self, key: &Sg) -> Result<(), FastPathError> {
        match bpf_key(*key)? {
            Key::V4(k) => ignore_absent(self.mfes.remove(&k)).map_err(map_err(maps::MFES)),
            Key::V6(k) => ignore_absent(self.mfes6.remove(&k)).map_err(map_err(maps::MFES6)),
        }
    }

    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError> {
        let per_cpu = self.mfe_stats.get(&slot, 0).map_err(map_err(maps::MFE_STATS))?;
        let mut total = MfeStats::default();
        for s in per_cpu.iter() {
            total.accumulate(s);
        }
        Ok(total)
    }

    fn oif_stats(&self, slot: u32, ifindex: u32) -> Result<OifStats, FastPathError> {
        let mut total = OifStats::default();
        match self.oif_stats.get(&OifKey { slot, ifindex }, 0) {
            Ok(per_cpu) => per_cpu.iter().for_each(|s| total.accumulate(s)),
            // Never counted (or evicted from the LRU): nothing to report.
            Err(MapError::KeyNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(FastPathError::Map { map: maps::OIF_STATS, source: e }),
        }
        Ok(total)
    }

    fn oif_base(&self, slot: u32, ifindex: u32) -> Result<OifBase, FastPathError> {
        match self.oif_base.get(&OifKey { slot, ifindex }, 0) {
            Ok(b) => Ok(b),
            Err(MapError::KeyNotFound) => Ok(OifBase::default()),
            Err(e) => Err(FastPathError::Map { map: maps::OIF_BASE, source: e }),
        }
    }

    fn set_oif_base(&mut self, slot: u32, ifindex: u32, b: OifBase) -> Result<(), FastPathError> {
        self.oif_base.insert(OifKey { slot, ifindex }, b, BPF_ANY).map_err(map_err(maps::OIF_BASE))
    }

    fn clear_oif_stats(&mut self, slot: u32, ifindex: u32) -> Result<(), FastPathError> {
        let key = OifKey { slot, ifindex };
        ignore_absent(self.oif_stats.remove(&key)).map_err(map_err(maps::OIF_STATS))?;
        ignore_absent(self.oif_base.remove(&key)).map_err(map_err(maps::OIF_BASE))
    }

    fn clear_mfe_stats(&mut self, slot: u32) -> Result<(), FastPathError> {
        let zeros = aya::maps::PerCpuValues::try_from(vec![MfeStats::default(); self.ncpus])
            .expect("one value per possible CPU");
        self.mfe_stats.set(slot, zeros, BPF_ANY).map_err(map_err(maps::MFE_STATS))
    }

    fn mfe_capacity(&self) -> u32 {
        self.max_mfes
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
