// SPDX-License-Identifier: MIT OR Apache-2.0
//! The upcall ring's records, decoded: what the fast path did not forward, of which flow (for
//! both families: an IPv6 record's addresses are read from the frame it carries), and the
//! bytes the callbacks quote.

use std::net::Ipv6Addr;

use mgm_common::{
    UPCALL_F_EVENT, UPCALL_F_IPV6, UPCALL_F_QUEUED, UPCALL_FRAME_MAX, UPCALL_NO_MFE,
    UPCALL_TOO_BIG, UPCALL_WRONG_IIF,
};

use crate::manager::{Family, Sg};

/// Why the fast path handed a packet up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No MFE for its flow.
    NoMfe,
    /// It arrived on another interface than its MFE's.
    WrongIif,
    /// An IPv6 packet longer than one of its MFE's links takes.
    TooBig,
}

/// One packet the fast path handed up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upcall {
    pub kind: Kind,
    pub sg: Sg,
    /// Where it arrived.
    pub ifindex: u32,
    /// The core is to hear of it (the flow's first packet in a while: the rate limiter let
    /// it through).
    pub event: bool,
    /// The packet itself was kept from the kernel, so it can be held and forwarded once its
    /// MFE exists.
    pub queued: bool,
    /// The frame, from its Ethernet header on (at most [`UPCALL_FRAME_MAX`] bytes).
    pub frame: Vec<u8>,
}

impl Upcall {
    /// The IP datagram.
    pub fn ip(&self) -> &[u8] {
        self.frame.get(14..).unwrap_or_default()
    }

    /// What the callbacks quote: the first 28 bytes of an IPv4 packet (its header without
    /// options, and 8 bytes of data), the first 48 of an IPv6 one (its fixed header and 8).
    pub fn header(&self) -> &[u8] {
        let n = match self.sg.family() {
            Family::Ipv4 => 28,
            Family::Ipv6 => 48,
        };
        let ip = self.ip();
        &ip[..ip.len().min(n)]
    }
}

/// Decodes one ring record: an [`mgm_common::Upcall`] header, then `frame_len` bytes of the
/// frame. `None` for a record that does not hold what its header says (a kind the programs
/// do not write, a frame shorter than its length, an IPv6 frame without its addresses).
pub fn decode(record: &[u8]) -> Option<Upcall> {
    let (head, rest) = record.split_at_checked(size_of::<mgm_common::Upcall>())?;
    // SAFETY: Upcall is plain old data of exactly this size; the read is unaligned-safe.
    let u = unsafe { head.as_ptr().cast::<mgm_common::Upcall>().read_unaligned() };
    if u.frame_len as usize > UPCALL_FRAME_MAX {
        return None;
    }
    let frame = rest.get(..u.frame_len as usize)?;
    let kind = match u.kind {
        UPCALL_NO_MFE => Kind::NoMfe,
        UPCALL_WRONG_IIF => Kind::WrongIif,
        UPCALL_TOO_BIG => Kind::TooBig,
        _ => return None,
    };
    let sg = if u.flags & UPCALL_F_IPV6 == 0 {
        Sg::v4(u.source, u.group)
    } else {
        let ip = frame.get(14..54)?;
        let addr = |at: usize| -> Option<Ipv6Addr> {
            Some(<[u8; 16]>::try_from(ip.get(at..at + 16)?).ok()?.into())
        };
        Sg::new(addr(8)?, addr(24)?)
    };
    Some(Upcall {
        kind,
        sg,
        ifindex: u.ifindex,
        event: u.flags & UPCALL_F_EVENT != 0,
        queued: u.flags & UPCALL_F_QUEUED != 0,
        frame: frame.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(u: mgm_common::Upcall, frame: &[u8]) -> Vec<u8> {
        // SAFETY: Upcall is plain old data; its bytes are its representation.
        let head = unsafe {
            std::slice::from_raw_parts(
                (&u as *const mgm_common::Upcall).cast::<u8>(),
                size_of::<mgm_common::Upcall>(),
            )
        };
        [head, frame].concat()
    }

    #[test]
    fn records_decode_for_both_families_and_bad_ones_are_refused() {
        let v4 = mgm_common::Upcall {
            source: [10, 0, 0, 1],
            group: [239, 1, 1, 1],
            ifindex: 3,
            kind: UPCALL_NO_MFE,
            flags: UPCALL_F_EVENT,
            frame_len: 60,
        };
        let frame = vec![0x45; 60];
        let u = decode(&record(v4, &frame)).unwrap();
        assert_eq!(
            (u.kind, u.sg, u.ifindex),
            (Kind::NoMfe, Sg::v4([10, 0, 0, 1], [239, 1, 1, 1]), 3)
        );
        assert!(u.event && !u.queued);
        assert_eq!(u.header().len(), 28);
        // IPv6: the addresses come from the frame (Ethernet, then the fixed header).
        let mut frame6 = vec![0u8; 14 + 48];
        let (s, g): (Ipv6Addr, Ipv6Addr) =
            ("2001:db8::1".parse().unwrap(), "ff3e::1".parse().unwrap());
        frame6[14 + 8..14 + 24].copy_from_slice(&s.octets());
        frame6[14 + 24..14 + 40].copy_from_slice(&g.octets());
        let v6 = mgm_common::Upcall {
            kind: UPCALL_TOO_BIG,
            flags: UPCALL_F_IPV6 | UPCALL_F_QUEUED,
            frame_len: frame6.len() as u32,
            ..v4
        };
        let u = decode(&record(v6, &frame6)).unwrap();
        assert_eq!((u.kind, u.sg), (Kind::TooBig, Sg::new(s, g)));
        assert!(!u.event && u.queued);
        assert_eq!(u.header().len(), 48);
        // A frame shorter than said, an IPv6 frame without its addresses, an unknown kind.
        assert!(decode(&record(v4, &frame[..59])).is_none());
        let short6 = mgm_common::Upcall { frame_len: 40, ..v6 };
        assert!(decode(&record(short6, &frame6[..40])).is_none());
        assert!(decode(&record(mgm_common::Upcall { kind: 99, ..v4 }, &frame)).is_none());
        assert!(decode(&[1, 2, 3]).is_none());
    }
}
