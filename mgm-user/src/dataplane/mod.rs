// SPDX-License-Identifier: MIT OR Apache-2.0
//! The BPF side of the fast path, and the [`Dataplane`] trait the daemon drives it through,
//! beside its two implementations: [`BpfFastPath`] (the kernel's programs and maps, through
//! aya: the only code that touches BPF) and, for tests, `mem::MemFastPath` (in memory).
//!
//! * [`load`]: the embedded object loaded and verified, its maps pinned (with the layout check
//!   that lets a restarted mgmd reuse them), the loading errors;
//! * [`attach`]: the programs on an interface, XDP and TC (TCX or a cls_bpf filter) alike;
//! * [`bpf`]: [`BpfFastPath`] and its map writes ([`FastPath`]), counters and adoption after
//!   a restart;
//! * [`sys`]: the `bpf(2)` calls aya does not wrap (test runs, a batch update);
//! * [`replay`]: held first packets forwarded through the ingress program;
//! * [`upcall`]: the upcall ring's records, decoded for both families.
//!
//! [`FastPath`]: crate::fastpath::FastPath

use std::collections::{BTreeMap, BTreeSet};

use mgm_common::{PortStats, counter};

use crate::{
    fastpath::{FastPath, FastPathError},
    kernel::NetDev,
};

pub mod attach;
pub mod bpf;
mod grace;
pub mod load;
#[cfg(any(test, feature = "testing"))]
pub mod mem;
pub mod replay;
pub mod sys;
pub mod upcall;

pub use bpf::BpfFastPath;
pub use load::{
    LoadError, LoadOptions, Verified, missing_capabilities, permission_hint, remove_pins,
};
pub use replay::Replayer;
pub use sys::{BPF_F_TEST_XDP_LIVE_FRAMES, TestRun, prog_test_run, xdp_ctx};
pub use upcall::Upcall;

/// What the daemon needs from the loaded programs beyond map writes.
pub trait Dataplane: FastPath {
    /// Global counters, indexed by `mgm_common::counter`.
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError>;
    /// Starts forwarding on `dev` (attaches the programs).
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()>;
    /// Forgets an interface that left the kernel (its program links went with it).
    fn forget(&mut self, ifindex: u32);
    /// Whether held packets can be forwarded on this kernel (`replay::Replayer`): without it the
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

/// Forwards aya-log records from the programs to the `log` facade (and so to tracing).
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mgm"));

/// The embedded eBPF object (the packet fuzzer and the program benchmark load it alone).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// Map-write flag: create or replace (BPF_ANY).
pub(crate) const BPF_ANY: u64 = 0;
