// SPDX-License-Identifier: MIT OR Apache-2.0
//! One rtnetlink request, answered on a socket of its own: a dump (links, addresses, routes)
//! or a single object. The daemons' event streams (mgmd's monitor) are theirs; this is the
//! asking.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Every object the kernel lists for `req` (a `Get*` message with the filter it needs).
pub fn dump(req: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    ask(req, NLM_F_REQUEST | NLM_F_DUMP)
}

/// The kernel's answer to `req` asked for one object (acknowledged): the kernel's error,
/// e.g. ENODEV, when there is none.
pub fn get(req: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    ask(req, NLM_F_REQUEST | NLM_F_ACK)
}

/// Sends one request on a socket of its own and collects the replies until the end of a
/// dump, or the acknowledgement of a request.
fn ask(req: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(req));
    msg.header.flags = flags;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0u8; msg.header.length as usize];
    msg.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&buf, 0)?;
    let mut out = Vec::new();
    let mut rbuf = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut rbuf[..], 0)?;
        let mut bytes = &rbuf[..n];
        while !bytes.is_empty() {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) if e.code.is_none() => return Ok(out),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                _ => {}
            }
            if len == 0 || len > bytes.len() {
                break;
            }
            bytes = &bytes[len..];
        }
    }
}
