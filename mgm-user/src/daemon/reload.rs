// SPDX-License-Identifier: MIT OR Apache-2.0
//! The configuration, applied at start and again at each reload (SIGHUP, `mgmctl reload`):
//! what the configuration asks for is compared with what it asked for before, and only the
//! difference is applied. An entry or interface the configuration did not change is not
//! written at all, so its traffic does not notice the reload.
//!
//! The configuration owns what it installed: the static MFEs it named and the interfaces it
//! named. Static MFEs added over the socket (`add_mfe`) and interfaces clients took are not
//! the configuration's, and a reload leaves them alone.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tracing::{debug, error, info};

use super::Daemon;
use crate::{
    config::{Config, StaticMfe},
    dataplane::Dataplane,
    fastpath::Origin,
    manager::Sg,
    proto::{ErrorCode, Reloaded, WireError},
};

/// Reads the configuration again (the file, merged with the command line).
pub type Source = Box<dyn FnMut() -> anyhow::Result<Config>>;

/// What the configuration installed.
#[derive(Default)]
pub(super) struct Configured {
    interfaces: BTreeSet<String>,
    mfes: BTreeMap<Sg, StaticMfe>,
}

/// Two entries forward the same way (the order of the outgoing interfaces does not matter).
fn same(a: &StaticMfe, b: &StaticMfe) -> bool {
    let set = |m: &StaticMfe| m.oifs.iter().cloned().collect::<BTreeSet<_>>();
    a.iif == b.iif && set(a) == set(b)
}

impl<D: Dataplane> Daemon<D> {
    /// Where [`Daemon::reload`] reads the configuration.
    pub fn set_config_source(&mut self, source: Source) {
        self.config_source = Some(source);
    }

    /// Reads the configuration again and applies what changed.
    pub fn reload(&mut self, now: Duration) -> Result<Reloaded, WireError> {
        let Some(source) = self.config_source.as_mut() else {
            return Err(WireError::new(
                ErrorCode::InvalidParameter,
                "mgmd has no configuration to reload (started without --config)",
            ));
        };
        let cfg = source();
        // Parsing takes tens of times the file's size for a moment: give it back to the
        // system (a refused file would otherwise leave mgmd that large).
        crate::config::release_memory();
        let r = cfg
            .map_err(|e| WireError::new(ErrorCode::InvalidParams, format!("{e:#}")))
            .and_then(|cfg| self.apply_config(&cfg, now));
        match &r {
            Ok(r) => info!(?r, "configuration reloaded"),
            // An error: the operator asked for this file and does not have it.
            Err(e) => error!(error = %e.message, "configuration refused; the running one stays"),
        }
        r
    }

    /// Makes the fast path what `cfg` asks for, from what the configuration asked for before:
    /// nothing is changed when `cfg` cannot be applied whole (an interface that does not exist,
    /// more static MFEs than allowed).
    pub fn apply_config(&mut self, cfg: &Config, now: Duration) -> Result<Reloaded, WireError> {
        let wanted: BTreeMap<Sg, &StaticMfe> =
            cfg.mfes.iter().map(|m| (Sg::new(m.source, m.group), m)).collect();
        let interfaces = cfg.all_interfaces();
        for m in wanted.values() {
            m.validate().map_err(|why| WireError::new(ErrorCode::InvalidParams, why))?;
        }
        if let Some(n) = interfaces.iter().find(|n| self.links.by_name(n).is_none()) {
            let why = format!("no interface named {n:?}");
            return Err(WireError::new(ErrorCode::NoSuchInterface, why));
        }
        let gone: Vec<Sg> =
            self.configured.mfes.keys().filter(|k| !wanted.contains_key(k)).copied().collect();
        // What the statics will number: those the file drops go (unless the operator already
        // removed them over the socket), those it adds come.
        let leaving = gone.iter().filter(|k| self.writer.is_static(k)).count();
        let new = wanted.keys().filter(|k| !self.writer.is_static(k)).count();
        let limit = self.limits.static_mfes;
        if self.writer.static_count() - leaving + new > limit {
            return Err(super::over_limit("static MFEs", limit, "--max-static-mfes"));
        }

        let mut r = Reloaded {
            boundaries_changed: self.redraw_boundaries(&cfg.boundaries),
            ..Reloaded::default()
        };
        for name in &interfaces {
            if self.links.managed_by_name(name).is_none() {
                self.manage_by_name(name)
                    .map_err(|e| WireError::new(ErrorCode::CanNotComplete, format!("{e:#}")))?;
                r.interfaces_added.push(name.clone());
            }
        }
        for k in gone {
            if let Some(m) = self.configured.mfes.remove(&k)
                && self.remove_static(k)?
            {
                debug!(source = %m.source, group = %m.group, "static mfe no longer configured; removed");
                r.mfes_removed += 1;
            }
        }
        for (k, m) in wanted {
            match self.configured.mfes.get(&k) {
                Some(old) if same(old, m) && self.writer.is_static(&k) => r.mfes_unchanged += 1,
                // The file's entry again (also one the operator removed over the socket).
                _ => {
                    let replaced = self.writer.is_static(&k);
                    self.add_static(m)?;
                    if replaced { r.mfes_changed += 1 } else { r.mfes_added += 1 }
                }
            }
            self.configured.mfes.insert(k, m.clone());
        }
        let dropped: Vec<String> = self
            .configured
            .interfaces
            .iter()
            .filter(|n| !interfaces.contains(n))
            .cloned()
            .collect();
        for name in dropped {
            if self.unmanage_if_unused(&name, now) {
                r.interfaces_removed.push(name);
            } else {
                r.interfaces_kept.push(name);
            }
        }
        self.configured.interfaces = interfaces.into_iter().collect();
        // Still in use, so still managed: but no longer the configuration's to remove.
        for n in &r.interfaces_kept {
            self.configured.interfaces.remove(n);
        }
        Ok(r)
    }

    /// Scope boundaries as configured now, drawn again on the managed interfaces whose
    /// boundary changed; how many changed.
    fn redraw_boundaries(&mut self, boundaries: &[crate::scope::Boundary]) -> usize {
        let before = std::mem::take(&mut self.boundaries);
        self.set_boundaries(boundaries);
        let mut changed = 0;
        let managed: Vec<(u32, String)> =
            self.links.managed().map(|d| (d.ifindex, d.name.clone())).collect();
        for (ifindex, name) in managed {
            let now = self.boundaries.get(&name).copied();
            if before.get(&name).copied() != now {
                if let Err(e) = self.writer.set_boundary(ifindex, now) {
                    tracing::warn!(ifname = %name, error = %e, "drawing a scope boundary");
                }
                info!(ifname = %name, boundary = now.map(|b| b.to_string()), "scope boundary changed");
                changed += 1;
            }
        }
        changed
    }

    /// Stops managing `name` unless a client owns it or an entry that is not the kernel's
    /// uses it; whether it is no longer managed.
    fn unmanage_if_unused(&mut self, name: &str, now: Duration) -> bool {
        let Some(dev) = self.links.by_name(name).cloned() else { return true };
        if !self.links.is_managed(dev.ifindex) {
            return true;
        }
        let ifindex = dev.ifindex;
        let owned = self.manager.owners().iter().any(|o| o.iface.ifindex == ifindex);
        let used = self
            .writer
            .mirror()
            .mfes()
            .any(|(_, m)| !matches!(m.origin, Origin::Kernel { .. }) && m.uses(ifindex));
        if owned || used {
            info!(ifname = %name, owned, used, "interface no longer configured but in use: still managed");
            return false;
        }
        self.links.set_unmanaged(ifindex);
        self.release_port(dev, now, "no longer configured");
        self.reconcile_all();
        true
    }
}
