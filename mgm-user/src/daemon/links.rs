// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel's links and neighbours as the monitor announced them, and which links mgm
//! manages. Applying an event says what changed for mgm: a managed link gone, a managed link's
//! MTU or MAC changed, a neighbour's MAC known or changed.

use std::{collections::BTreeMap, net::IpAddr};

use crate::kernel::{KernelEvent, Neighbours, NetDev};

/// What a kernel event changes for mgm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A managed interface left the kernel.
    Gone(NetDev),
    /// A managed interface's MTU or MAC changed (the new values).
    Port(NetDev),
    /// A managed interface went down or came back up (copies to a down link are lost in the
    /// kernel; mgm keeps its entries, as ipmr keeps its VIFs).
    State(NetDev),
    /// A neighbour's MAC is known (new or changed).
    Neighbour(u32, IpAddr, [u8; 6]),
}

#[derive(Debug, Default)]
pub struct Links {
    /// Every link the kernel has.
    kernel: BTreeMap<u32, NetDev>,
    /// The kernel's usable neighbours.
    neighbours: Neighbours,
    /// Managed interfaces, as the fast path knows them.
    managed: BTreeMap<u32, NetDev>,
}

impl Links {
    pub fn apply(&mut self, ev: KernelEvent) -> Vec<Change> {
        let mut out = Vec::new();
        match ev {
            KernelEvent::Link(dev) => {
                self.kernel.insert(dev.ifindex, dev.clone());
                out.extend(self.update_managed(dev));
            }
            KernelEvent::LinkGone(ifindex) => {
                self.kernel.remove(&ifindex);
                out.extend(self.managed.remove(&ifindex).map(Change::Gone));
            }
            KernelEvent::Neighbour { ifindex, ip, mac: Some(mac) } => {
                if self.neighbours.insert((ifindex, ip), mac) != Some(mac) {
                    out.push(Change::Neighbour(ifindex, ip, mac));
                }
            }
            KernelEvent::Neighbour { ifindex, ip, mac: None } => {
                // The fast path keeps the last MAC until the neighbour is back.
                self.neighbours.remove(&(ifindex, ip));
            }
            // The multicast routing table is the follower's (see `follow`).
            KernelEvent::Mfc(_)
            | KernelEvent::MfcGone { .. }
            | KernelEvent::MfcSnapshot(_)
            | KernelEvent::LocalGroups(_) => {}
            KernelEvent::Snapshot { links, neighbours } => {
                self.kernel = links.into_iter().map(|d| (d.ifindex, d)).collect();
                let gone: Vec<u32> =
                    self.managed.keys().filter(|i| !self.kernel.contains_key(i)).copied().collect();
                for i in gone {
                    out.extend(self.managed.remove(&i).map(Change::Gone));
                }
                let present: Vec<NetDev> = self.kernel.values().cloned().collect();
                for dev in present {
                    out.extend(self.update_managed(dev));
                }
                for (&(ifindex, ip), &mac) in &neighbours {
                    if self.neighbours.get(&(ifindex, ip)) != Some(&mac) {
                        out.push(Change::Neighbour(ifindex, ip, mac));
                    }
                }
                self.neighbours = neighbours;
            }
        }
        out
    }

    /// Brings a managed interface in line with the kernel's `dev`.
    fn update_managed(&mut self, dev: NetDev) -> Vec<Change> {
        let Some(m) = self.managed.get_mut(&dev.ifindex) else { return Vec::new() };
        let mut out = Vec::new();
        if (m.mtu, m.mac) != (dev.mtu, dev.mac) {
            out.push(Change::Port(dev.clone()));
        }
        if m.up != dev.up {
            out.push(Change::State(dev.clone()));
        }
        *m = dev;
        out
    }

    /// The kernel's link with this index.
    pub fn device(&self, ifindex: u32) -> Option<&NetDev> {
        self.kernel.get(&ifindex)
    }

    /// The kernel's link with this name.
    pub fn by_name(&self, name: &str) -> Option<&NetDev> {
        self.kernel.values().find(|d| d.name == name)
    }

    pub fn is_managed(&self, ifindex: u32) -> bool {
        self.managed.contains_key(&ifindex)
    }

    pub fn set_managed(&mut self, dev: NetDev) {
        self.managed.insert(dev.ifindex, dev);
    }

    /// No longer managed (the configuration dropped it); still known.
    pub fn set_unmanaged(&mut self, ifindex: u32) {
        self.managed.remove(&ifindex);
    }

    /// A managed interface by name.
    pub fn managed_by_name(&self, name: &str) -> Option<u32> {
        self.managed.values().find(|d| d.name == name).map(|d| d.ifindex)
    }

    pub fn managed(&self) -> impl Iterator<Item = &NetDev> {
        self.managed.values()
    }

    /// The MAC the kernel has for a neighbour.
    pub fn neighbour(&self, ifindex: u32, ip: IpAddr) -> Option<[u8; 6]> {
        self.neighbours.get(&(ifindex, ip)).copied()
    }
}
