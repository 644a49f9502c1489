// SPDX-License-Identifier: MIT OR Apache-2.0
//! The host's own addresses, asked of the kernel (rtnetlink dumps): the queriers speak from
//! them and the election compares them.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use mgm_util::rtnl;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeaderFlags, AddressMessage},
};

/// An IPv4 address of an interface, with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub ifindex: u32,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl IfAddr {
    /// Whether `ip` is on this address's subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix.min(32))).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

/// Every IPv4 address of the host's interfaces, primary addresses first.
pub fn addresses() -> io::Result<Vec<IfAddr>> {
    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet;
    let mut out: Vec<(bool, IfAddr)> = rtnl::dump(RouteNetlinkMessage::GetAddress(req))?
        .into_iter()
        .filter_map(|m| {
            let RouteNetlinkMessage::NewAddress(a) = m else { return None };
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on a
            // point-to-point link).
            let local = a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            })?;
            let secondary = a.header.flags.contains(AddressHeaderFlags::Secondary);
            Some((secondary, IfAddr { ifindex: a.header.index, addr, prefix: a.header.prefix_len }))
        })
        .collect();
    out.sort_by_key(|(secondary, _)| *secondary);
    Ok(out.into_iter().map(|(_, a)| a).collect())
}

/// Every IPv6 link-local address of the host's interfaces (MLD speaks from these).
pub fn link_local_addresses() -> io::Result<Vec<(u32, Ipv6Addr)>> {
    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet6;
    Ok(rtnl::dump(RouteNetlinkMessage::GetAddress(req))?
        .into_iter()
        .filter_map(|m| {
            let RouteNetlinkMessage::NewAddress(a) = m else { return None };
            a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Address(IpAddr::V6(ip)) if ip.is_unicast_link_local() => {
                    Some((a.header.index, *ip))
                }
                _ => None,
            })
        })
        .collect())
}
