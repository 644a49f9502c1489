// SPDX-License-Identifier: MIT OR Apache-2.0
//! One rtnetlink request, answered on a socket of its own: a dump (links, addresses, routes)
//! or a single object. The daemons' event streams (mgmd's monitor) are theirs; this is the
//! asking.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
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

/// How often a dump the kernel interrupted (the table changed under it) is asked again
/// before its last answer is taken as it is.
const DUMP_TRIES: usize = 4;

/// Sends one request and collects the replies; a dump the kernel marks interrupted
/// (`NLM_F_DUMP_INTR`: an object came or went while it was read, so one may be missing or
/// listed twice) is asked again.
fn ask(req: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (out, interrupted) = ask_once(&req, flags)?;
        if !interrupted || tries == DUMP_TRIES {
            return Ok(out);
        }
    }
}

/// One request on a socket of its own: the replies until the end of a dump or the
/// acknowledgement, and whether the kernel said the dump was interrupted. A reply this
/// library cannot decode (an attribute of a newer kernel) is left out, not the whole
/// answer: one object the caller cannot read must not hide the others.
fn ask_once(req: &RouteNetlinkMessage, flags: u16) -> io::Result<(Vec<RouteNetlinkMessage>, bool)> {
    let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(req.clone()));
    msg.header.flags = flags;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0u8; msg.header.length as usize];
    msg.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&buf, 0)?;
    let mut answer = Answer::default();
    let mut rbuf = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut rbuf[..], 0)?;
        if answer.read(&rbuf[..n])? {
            if answer.skipped > 0 {
                tracing::warn!(
                    skipped = answer.skipped,
                    "netlink replies this program cannot decode were left out"
                );
            }
            return Ok((answer.replies, answer.interrupted));
        }
    }
}

/// The replies to one request, as its datagrams are read.
#[derive(Default)]
struct Answer {
    replies: Vec<RouteNetlinkMessage>,
    interrupted: bool,
    skipped: usize,
}

impl Answer {
    /// Takes one datagram's messages; true once the answer is complete (the dump's end,
    /// or the acknowledgement). The kernel's error is the error.
    fn read(&mut self, mut bytes: &[u8]) -> io::Result<bool> {
        while bytes.len() >= 16 {
            let len = u32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
            let flags = u16::from_ne_bytes(bytes[6..8].try_into().expect("2 bytes"));
            if len < 16 || len > bytes.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a netlink message of {len} bytes in a datagram of {}", bytes.len()),
                ));
            }
            self.interrupted |= flags & NLM_F_DUMP_INTR != 0;
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len]) {
                Ok(m) => match m.payload {
                    NetlinkPayload::Done(_) => return Ok(true),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(true),
                    NetlinkPayload::Error(e) => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(inner) => self.replies.push(inner),
                    _ => {}
                },
                Err(_) => self.skipped += 1,
            }
            // Messages are 4-byte aligned in the datagram.
            bytes = &bytes[((len + 3) & !3).min(bytes.len())..];
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{DoneMessage, NLM_F_MULTIPART};
    use netlink_packet_route::link::LinkMessage;

    use super::*;

    fn bytes(payload: NetlinkPayload<RouteNetlinkMessage>, flags: u16) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), payload);
        m.header.flags = flags;
        m.finalize();
        let mut b = vec![0u8; m.header.length as usize];
        m.serialize(&mut b);
        b
    }

    #[test]
    fn an_undecodable_reply_is_left_out_and_an_interrupted_dump_is_seen() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let good = bytes(RouteNetlinkMessage::NewLink(link).into(), NLM_F_MULTIPART);
        // A link message whose attribute runs past its end.
        let mut bad = good.clone();
        bad.extend_from_slice(&[0xff, 0x00, 0x03, 0x00]);
        let len = bad.len() as u32;
        bad[..4].copy_from_slice(&len.to_ne_bytes());
        let mut datagram = [good.clone(), bad, good].concat();
        let mut a = Answer::default();
        assert!(!a.read(&datagram).unwrap(), "no end yet");
        assert_eq!((a.replies.len(), a.skipped, a.interrupted), (2, 1, false));
        datagram =
            bytes(NetlinkPayload::Done(DoneMessage::default()), NLM_F_MULTIPART | NLM_F_DUMP_INTR);
        assert!(a.read(&datagram).unwrap(), "the dump's end");
        assert!(a.interrupted);
    }

    #[test]
    fn a_length_past_the_datagram_is_an_error_not_a_loop() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let mut b = bytes(RouteNetlinkMessage::NewLink(link).into(), NLM_F_MULTIPART);
        b[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(Answer::default().read(&b).unwrap_err().kind(), io::ErrorKind::InvalidData);
        b[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(Answer::default().read(&b).is_err());
    }
}
