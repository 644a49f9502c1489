// SPDX-License-Identifier: MIT OR Apache-2.0
//! Kernel interface lookups: name ↔ ifindex and the interface's MAC address.

use nix::{ifaddrs::getifaddrs, net::if_::if_nametoindex};

/// A network interface as mgm uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// IP MTU (0 if unknown).
    pub mtu: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    #[error("no interface named {0:?}")]
    NoSuchName(String),
    #[error("no interface with index {0}")]
    NoSuchIndex(u32),
    #[error("interface {0:?} has no Ethernet (link-layer) address")]
    NoMac(String),
    #[error("listing interfaces: {0}")]
    Sys(#[from] nix::Error),
}

/// Looks an interface up by name.
pub fn by_name(name: &str) -> Result<NetDev, NetDevError> {
    let ifindex = if_nametoindex(name).map_err(|_| NetDevError::NoSuchName(name.to_owned()))?;
    by_index(ifindex)
}

/// Looks an interface up by index.
pub fn by_index(ifindex: u32) -> Result<NetDev, NetDevError> {
    for ifa in getifaddrs()? {
        if let Some(link) = ifa.address.as_ref().and_then(|a| a.as_link_addr())
            && link.ifindex() as u32 == ifindex
        {
            let mac = link.addr().ok_or_else(|| NetDevError::NoMac(ifa.interface_name.clone()))?;
            let mtu = mtu(&ifa.interface_name).unwrap_or(0);
            return Ok(NetDev { name: ifa.interface_name, ifindex, mac, mtu });
        }
    }
    Err(NetDevError::NoSuchIndex(ifindex))
}

/// The interface's MTU (SIOCGIFMTU: answered for the caller's network namespace).
pub fn mtu(name: &str) -> Result<u16, NetDevError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    use std::os::fd::AsRawFd as _;
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain C data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(NetDevError::NoSuchName(name.to_owned()));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: a valid socket fd and a valid, named ifreq the kernel fills.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if rc < 0 {
        return Err(NetDevError::Sys(nix::Error::last()));
    }
    // SAFETY: SIOCGIFMTU filled the mtu member of the union.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    Ok(u16::try_from(mtu).unwrap_or(u16::MAX))
}

/// Every interface index the kernel has now (in this network namespace).
pub fn present() -> Result<std::collections::BTreeSet<u32>, NetDevError> {
    Ok(getifaddrs()?
        .filter_map(|ifa| ifa.address.and_then(|a| a.as_link_addr().map(|l| l.ifindex() as u32)))
        .collect())
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_mtu() {
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(mtu("no-such-if0").is_err());
    }

    #[test]
    fn loopback_resolves_both_ways() {
        let lo = by_name("lo").expect("every namespace has lo");
        assert_eq!(lo.mac, [0; 6]);
        assert_eq!(by_index(lo.ifindex).unwrap().name, "lo");
    }

    #[test]
    fn unknown_names_are_reported() {
        assert!(matches!(by_name("mgm-no-such-if"), Err(NetDevError::NoSuchName(_))));
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(fmt_mac(&[0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
    }
}
