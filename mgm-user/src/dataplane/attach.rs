// SPDX-License-Identifier: MIT OR Apache-2.0
//! The programs on a managed interface: the XDP ingress program (a pinned link, swapped
//! atomically on a restart) and the TC program (a TCX link, or on kernels without TCX a
//! cls_bpf filter at mgm's priority and handle).

use std::path::{Path, PathBuf};

use aya::programs::{
    LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
    xdp::{XdpLink, XdpLinkId},
};
use mgm_common::programs;

use super::{BpfFastPath, LoadError, load::program};
use crate::kernel::NetDev;

/// The programs on one managed interface.
#[derive(Debug)]
pub(super) struct Attached {
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
pub(super) fn remove_filters(dir: &Path) {
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

impl BpfFastPath {
    /// Attaches the ingress program to `ifindex` (idempotent).
    pub fn attach(&mut self, dev: &NetDev, mode: XdpMode) -> Result<(), LoadError> {
        let ifindex = dev.ifindex;
        if self.attached.contains_key(&ifindex) {
            return Ok(());
        }
        let prog: &mut Xdp = program(&mut self.ebpf, programs::INGRESS)?;
        let attach_err = |source| LoadError::attach(dev, mode, source);
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

    /// The attach mode chosen at load time.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    pub fn attached(&self) -> impl Iterator<Item = u32> + '_ {
        self.attached.keys().copied()
    }
}
