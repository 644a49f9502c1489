// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink messages built byte by byte, as a hostile process would send them (the
//! kernel's layouts: `nlmsghdr`, `ifinfomsg`, `rtmsg`, `rtattr`, `rtnexthop`).

use super::Netns;

fn header(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    m.extend(ty.to_ne_bytes());
    m.extend([0u8; 10]); // flags, sequence, port id
    m.extend(body);
    m
}

fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
    let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    a.extend(ty.to_ne_bytes());
    a.extend(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// `RTM_DELLINK` for `ifindex`.
pub fn del_link(ifindex: u32) -> Vec<u8> {
    let mut body = vec![0u8; 16];
    body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    header(libc::RTM_DELLINK, &body)
}

/// `RTM_NEWROUTE` of ipmr (`RTNL_FAMILY_IPMR`): (source, group) from `iif` to `oifs`.
pub fn ipmr_route(source: [u8; 4], group: [u8; 4], iif: u32, oifs: &[u32]) -> Vec<u8> {
    // family, dst_len, src_len, tos, table, protocol, scope, type; flags
    let mut body = vec![128, 32, 32, 0, libc::RT_TABLE_DEFAULT, 0, 0, libc::RTN_MULTICAST];
    body.extend(0u32.to_ne_bytes());
    body.extend(attr(libc::RTA_SRC, &source));
    body.extend(attr(libc::RTA_DST, &group));
    body.extend(attr(libc::RTA_IIF, &iif.to_ne_bytes()));
    let hops: Vec<u8> = oifs
        .iter()
        .flat_map(|i| [8u16.to_ne_bytes().as_slice(), &[0, 1], &i.to_ne_bytes()].concat())
        .collect();
    body.extend(attr(libc::RTA_MULTIPATH, &hops));
    header(libc::RTM_NEWROUTE, &body)
}

/// Sends `message` from a process socket in `ns` to rtnetlink multicast `group` (needs
/// CAP_NET_ADMIN there, as root in the namespace has).
pub fn multicast(ns: &Netns, group: u32, message: Vec<u8>) -> anyhow::Result<()> {
    ns.enter(move || {
        // SAFETY: plain socket calls on a socket this closure owns and closes.
        unsafe {
            let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
            anyhow::ensure!(fd >= 0, "netlink socket: {}", std::io::Error::last_os_error());
            let mut to: libc::sockaddr_nl = std::mem::zeroed();
            to.nl_family = libc::AF_NETLINK as u16;
            to.nl_groups = 1 << (group - 1);
            let n = libc::sendto(
                fd,
                message.as_ptr().cast(),
                message.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            anyhow::ensure!(n == message.len() as isize, "netlink sendto: {err}");
        }
        Ok(())
    })
}
