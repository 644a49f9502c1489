// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel's IPv4 neighbour table (ARP), for copies addressed to one next hop.

use std::{collections::HashMap, net::Ipv4Addr};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// (ifindex, IPv4 address) -> MAC, for entries the kernel would use to send.
pub type Table = HashMap<(u32, Ipv4Addr), [u8; 6]>;

/// Dumps the neighbour table of the caller's network namespace (RTM_GETNEIGH).
pub fn dump() -> std::io::Result<Table> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    let mut req = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetNeighbour(msg)),
    );
    req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0u8; req.header.length as usize];
    req.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&buf, 0)?;
    let mut table = Table::new();
    let mut rbuf = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut rbuf[..], 0)?;
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(table),
                NetlinkPayload::Error(e) => return Err(std::io::Error::other(format!("{e:?}"))),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(nm))
                    if usable(nm.header.state) =>
                {
                    let (mut ip, mut mac) = (None, None);
                    for a in &nm.attributes {
                        match a {
                            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                                ip = Some(*v)
                            }
                            NeighbourAttribute::LinkLayerAddress(m) => {
                                mac = <[u8; 6]>::try_from(m.as_slice()).ok()
                            }
                            _ => {}
                        }
                    }
                    if let (Some(ip), Some(mac)) = (ip, mac) {
                        table.insert((nm.header.ifindex, ip), mac);
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// States in which the kernel itself would send to the neighbour.
fn usable(s: NeighbourState) -> bool {
    matches!(
        s,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    )
}

/// Makes the kernel resolve `ip` (an empty datagram to the discard port: the ARP request is
/// the point; the datagram itself is harmless). The next hop must be on-link.
pub fn solicit(ip: Ipv4Addr) {
    if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
        let _ = s.send_to(&[], (ip, 9));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_can_be_read() {
        // Contents depend on the machine; the dump itself must work (no privileges needed).
        super::dump().unwrap();
    }
}
