// SPDX-License-Identifier: MIT OR Apache-2.0
//! MFE reads and SetMfe, in RRAS's buffers: a caller's buffer of `*pdwBufferSize` bytes
//! takes as many whole MFEs (each followed by its outgoing interfaces) as fit, packed one
//! after the other; `SIZEOF_MIB_MFE(n)` (and the statistics forms' macros) say where the
//! next one starts. Walks are of IPv4 MFEs, by group then source (mgmd lists IPv6 entries
//! after every IPv4 one: the walk ends there).

use std::{
    collections::HashMap,
    mem::{offset_of, size_of},
    net::IpAddr,
};

use mgm_client::proto::{self, MfeReply, PageReply, PageStatus, types::Iface};

use crate::{
    DWORD, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_PARAMETER, ERROR_MORE_DATA,
    ERROR_NO_MORE_ITEMS, HANDLE, MGM_MFE_STATS_0, MGM_MFE_STATS_1, MIB_IPMCAST_MFE,
    MIB_IPMCAST_MFE_STATS, MIB_IPMCAST_MFE_STATS_EX, MIB_IPMCAST_OIF, MIB_IPMCAST_OIF_STATS,
    NO_ERROR, PBYTE, PDWORD,
    conn::Conn,
    dword, ipv4, status,
    v6::{MGM_MFE6, MGM_OIF6},
    with_conn, with_proto,
};

/// Which structure a read fills.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Mfe,
    Stats,
    StatsEx,
    /// mgm's IPv6 MFE, with its counters.
    Mfe6,
}

impl Shape {
    fn of_flags(flags: DWORD) -> Option<Self> {
        match flags {
            MGM_MFE_STATS_0 => Some(Self::Stats),
            MGM_MFE_STATS_1 => Some(Self::StatsEx),
            _ => None,
        }
    }

    /// The bytes before the outgoing interfaces (`SIZEOF_MIB_MFE(0)`).
    fn header(self) -> usize {
        match self {
            Self::Mfe => offset_of!(MIB_IPMCAST_MFE, rgmioOutInfo),
            Self::Stats => offset_of!(MIB_IPMCAST_MFE_STATS, rgmiosOutStats),
            Self::StatsEx => offset_of!(MIB_IPMCAST_MFE_STATS_EX, rgmiosOutStats),
            Self::Mfe6 => offset_of!(MGM_MFE6, rgOutInfo),
        }
    }

    fn oif(self) -> usize {
        match self {
            Self::Mfe => size_of::<MIB_IPMCAST_OIF>(),
            Self::Stats | Self::StatsEx => size_of::<MIB_IPMCAST_OIF_STATS>(),
            Self::Mfe6 => size_of::<MGM_OIF6>(),
        }
    }

    /// One MFE with `n` outgoing interfaces (`SIZEOF_MIB_MFE(n)`).
    fn size(self, n: usize) -> usize {
        self.header() + n * self.oif()
    }

    fn stats(self) -> bool {
        self != Self::Mfe
    }
}

/// Writes `v` at byte `at` of `buf`.
fn put(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// An IPv6 address as `struct in6_addr` (network byte order).
fn put6(buf: &mut [u8], at: usize, ip: IpAddr) {
    if let IpAddr::V6(a) = ip {
        buf[at..at + 16].copy_from_slice(&a.octets());
    }
}

/// A 64-bit counter as RRAS's 32-bit ULONG: its low bits (it wraps, as Counter32 does).
fn low(v: u64) -> u32 {
    v as u32
}

/// One MFE in the caller's structure. `in_protocol` is the protocol id owning its
/// incoming interface (0: none).
fn encode(shape: Shape, m: &MfeReply, in_protocol: DWORD) -> Vec<u8> {
    let v = &m.mfe;
    let n = v.oifs.len();
    let mut b = vec![0u8; shape.size(n)];
    let st = m.counters();
    macro_rules! header {
        ($t:ty) => {{
            put(&mut b, offset_of!($t, dwGroup), dword(v.group));
            put(&mut b, offset_of!($t, dwSource), dword(v.source));
            let mask = if v.source.is_unspecified() { 0 } else { u32::MAX };
            put(&mut b, offset_of!($t, dwSrcMask), mask);
            put(&mut b, offset_of!($t, dwUpStrmNgbr), dword(v.upstream));
            put(&mut b, offset_of!($t, dwInIfIndex), v.iif.ifindex);
            put(&mut b, offset_of!($t, dwInIfProtocol), in_protocol);
            put(&mut b, offset_of!($t, ulUpTime), low(v.uptime_secs));
            put(&mut b, offset_of!($t, ulExpiryTime), low(v.expiry_secs));
            put(&mut b, offset_of!($t, ulNumOutIf), n as u32);
        }};
    }
    macro_rules! counters {
        ($t:ty) => {{
            put(&mut b, offset_of!($t, ulInPkts), low(st.in_packets));
            put(&mut b, offset_of!($t, ulInOctets), low(st.in_octets));
            put(&mut b, offset_of!($t, ulPktsDifferentIf), low(st.wrong_interface));
        }};
    }
    if shape == Shape::Mfe6 {
        return encode6(m, in_protocol);
    }
    match shape {
        Shape::Mfe6 => unreachable!("above"),
        Shape::Mfe => {
            header!(MIB_IPMCAST_MFE);
            put(&mut b, offset_of!(MIB_IPMCAST_MFE, ulTimeOut), low(v.timeout_secs));
        }
        Shape::Stats => {
            header!(MIB_IPMCAST_MFE_STATS);
            counters!(MIB_IPMCAST_MFE_STATS);
        }
        Shape::StatsEx => {
            header!(MIB_IPMCAST_MFE_STATS_EX);
            counters!(MIB_IPMCAST_MFE_STATS_EX);
            let total: u64 = st.oifs.iter().map(|o| o.out_packets).sum();
            put(&mut b, offset_of!(MIB_IPMCAST_MFE_STATS_EX, ulInDiscards), low(st.ttl_expired));
            put(&mut b, offset_of!(MIB_IPMCAST_MFE_STATS_EX, ulTotalOutPackets), low(total));
        }
    }
    for (i, oif) in v.oifs.iter().enumerate() {
        let at = shape.header() + i * shape.oif();
        match shape {
            Shape::Mfe => {
                put(&mut b, at + offset_of!(MIB_IPMCAST_OIF, dwOutIfIndex), oif.ifindex);
                put(&mut b, at + offset_of!(MIB_IPMCAST_OIF, dwNextHopAddr), dword(oif.nexthop));
            }
            Shape::Mfe6 => unreachable!("above"),
            Shape::Stats | Shape::StatsEx => {
                // The counters of this interface: at its place in the list, else by index.
                let c = oif_counters(&st, i, oif.ifindex);
                type S = MIB_IPMCAST_OIF_STATS;
                put(&mut b, at + offset_of!(S, dwOutIfIndex), oif.ifindex);
                put(&mut b, at + offset_of!(S, dwNextHopAddr), dword(oif.nexthop));
                put(&mut b, at + offset_of!(S, ulTtlTooLow), low(c.ttl_too_low));
                put(&mut b, at + offset_of!(S, ulFragNeeded), low(c.frag_needed));
                put(&mut b, at + offset_of!(S, ulOutPackets), low(c.out_packets));
                put(&mut b, at + offset_of!(S, ulOutDiscards), low(c.out_discards));
            }
        }
    }
    b
}

/// The counters of the `i`th outgoing interface (at its place in the list, else found by
/// index; zero if mgmd sent none).
fn oif_counters(st: &proto::MfeStatsReply, i: usize, ifindex: u32) -> proto::OifStatsReply {
    st.oifs
        .get(i)
        .filter(|c| c.ifindex == ifindex)
        .or_else(|| st.oifs.iter().find(|c| c.ifindex == ifindex))
        .copied()
        .unwrap_or_default()
}

/// One IPv6 MFE as [`MGM_MFE6`], its 64-bit counters included.
fn encode6(m: &MfeReply, in_protocol: DWORD) -> Vec<u8> {
    type T = MGM_MFE6;
    type O = MGM_OIF6;
    let v = &m.mfe;
    let st = m.counters();
    let mut b = vec![0u8; Shape::Mfe6.size(v.oifs.len())];
    put6(&mut b, offset_of!(T, Group), v.group);
    put6(&mut b, offset_of!(T, Source), v.source);
    put6(&mut b, offset_of!(T, UpStrmNgbr), v.upstream);
    put6(&mut b, offset_of!(T, InIfNextHopAddr), v.iif.nexthop);
    put(&mut b, offset_of!(T, dwInIfIndex), v.iif.ifindex);
    put(&mut b, offset_of!(T, dwInIfProtocol), in_protocol);
    put(&mut b, offset_of!(T, ulUpTime), low(v.uptime_secs));
    put(&mut b, offset_of!(T, ulExpiryTime), low(v.expiry_secs));
    put(&mut b, offset_of!(T, ulTimeOut), low(v.timeout_secs));
    put(&mut b, offset_of!(T, ulNumOutIf), v.oifs.len() as u32);
    put64(&mut b, offset_of!(T, ullInPkts), st.in_packets);
    put64(&mut b, offset_of!(T, ullInOctets), st.in_octets);
    put64(&mut b, offset_of!(T, ullPktsDifferentIf), st.wrong_interface);
    put64(&mut b, offset_of!(T, ullInDiscards), st.ttl_expired);
    for (i, oif) in v.oifs.iter().enumerate() {
        let at = Shape::Mfe6.size(i);
        let c = oif_counters(&st, i, oif.ifindex);
        put(&mut b, at + offset_of!(O, dwOutIfIndex), oif.ifindex);
        put6(&mut b, at + offset_of!(O, NextHopAddr), oif.nexthop);
        put64(&mut b, at + offset_of!(O, ullOutPackets), c.out_packets);
        put64(&mut b, at + offset_of!(O, ullOutOctets), c.out_octets);
        put64(&mut b, at + offset_of!(O, ullFragNeeded), c.frag_needed);
        put64(&mut b, at + offset_of!(O, ullOutDiscards), c.out_discards);
    }
    b
}

/// The protocol ids owning the incoming interfaces of `mfes` (0 where none does).
fn in_protocols(conn: &Conn, mfes: &[MfeReply]) -> HashMap<Iface, DWORD> {
    let mut ids = HashMap::new();
    for m in mfes {
        let iif = m.mfe.iif;
        ids.entry(iif).or_insert_with(|| {
            let q = proto::GetProtocolOnInterface { ifindex: iif.ifindex, nexthop: iif.nexthop };
            conn.call(q).map_or(0, |p| p.protocol)
        });
    }
    ids
}

/// Packs whole entries into the caller's buffer; how many fit.
unsafe fn pack(entries: &[Vec<u8>], buf: *mut u8, size: usize) -> usize {
    let mut used = 0;
    let mut n = 0;
    for e in entries {
        if used + e.len() > size {
            break;
        }
        // SAFETY: the caller's buffer has `size` bytes; this entry ends within them.
        unsafe { std::ptr::copy_nonoverlapping(e.as_ptr(), buf.add(used), e.len()) };
        used += e.len();
        n += 1;
    }
    n
}

/// The (S,G) a caller's MFE structure names (its first fields, in every form).
unsafe fn named(pimm: *const MIB_IPMCAST_MFE) -> Option<(IpAddr, IpAddr)> {
    // SAFETY: the caller passes a valid MIB_IPMCAST_MFE (or NULL); only the fixed header
    // is read, so a structure without outgoing interfaces is enough.
    let m = unsafe { pimm.cast::<[DWORD; 2]>().as_ref() }?;
    Some((ipv4(m[1]), ipv4(m[0])))
}

/// One MFE, (source, group), into the caller's buffer.
unsafe fn get_one(
    key: Option<(IpAddr, IpAddr)>,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    shape: Shape,
) -> DWORD {
    // SAFETY: the caller's pointer.
    let (Some((source, group)), Some(size)) = (key, unsafe { pdwBufferSize.as_mut() }) else {
        return ERROR_INVALID_PARAMETER;
    };
    let r = with_conn(|c| {
        let m = c.call(proto::GetMfe { source, group, max_entries: 1, stats: shape.stats() })?;
        let ids = in_protocols(c, std::slice::from_ref(&m));
        Ok(encode(shape, &m, ids.get(&m.mfe.iif).copied().unwrap_or(0)))
    });
    let entry = match r {
        Ok(e) => e,
        Err(e) => return e,
    };
    if (*size as usize) < entry.len() || pbBuffer.is_null() {
        *size = entry.len() as DWORD;
        return ERROR_INSUFFICIENT_BUFFER;
    }
    // SAFETY: checked: the buffer holds the entry.
    unsafe { pack(&[entry], pbBuffer, *size as usize) };
    NO_ERROR
}

/// One page of a walk: `after` is None for the first.
unsafe fn walk(
    after: Option<(IpAddr, IpAddr)>,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
    shape: Shape,
) -> DWORD {
    // SAFETY: the caller's pointers.
    let (Some(size), Some(count)) =
        (unsafe { pdwBufferSize.as_mut() }, unsafe { pdwNumEntries.as_mut() })
    else {
        return ERROR_INVALID_PARAMETER;
    };
    *count = 0;
    let cap = if pbBuffer.is_null() { 0 } else { *size as usize };
    // As many as could fit (at least one: to learn the size one needs).
    let max_entries = (cap / shape.size(0)).clamp(1, 4096);
    let stats = shape.stats();
    let r = with_conn(|c| {
        let page: PageReply<MfeReply> = match after {
            None => c.call(proto::GetFirstMfe { max_entries, stats })?,
            Some((source, group)) => {
                c.call(proto::GetNextMfe { source, group, max_entries, stats })?
            }
        };
        let ids = in_protocols(c, &page.entries);
        Ok((page, ids))
    });
    let (page, ids) = match r {
        Ok(p) => p,
        Err(e) => return e,
    };
    // IPv4 walks end where mgmd's list reaches the IPv6 entries; IPv6 walks start there.
    let v6 = shape == Shape::Mfe6;
    let ours: Vec<&MfeReply> =
        page.entries.iter().take_while(|m| m.mfe.group.is_ipv6() == v6).collect();
    let ended = ours.len() < page.entries.len() || page.status == PageStatus::NoMoreItems;
    let entries: Vec<Vec<u8>> =
        ours.iter().map(|m| encode(shape, m, ids.get(&m.mfe.iif).copied().unwrap_or(0))).collect();
    // SAFETY: the caller's buffer of `cap` bytes (none when NULL).
    let n = if cap == 0 { 0 } else { unsafe { pack(&entries, pbBuffer, cap) } };
    *count = n as DWORD;
    match entries.first() {
        Some(first) if n == 0 => {
            *size = first.len() as DWORD;
            ERROR_INSUFFICIENT_BUFFER
        }
        _ if n < entries.len() || !ended => ERROR_MORE_DATA,
        _ => ERROR_NO_MORE_ITEMS,
    }
}

/// The MFE `pimm->dwSource`, `pimm->dwGroup` names, into `pbBuffer`. ERROR_NOT_FOUND;
/// ERROR_INSUFFICIENT_BUFFER with the size needed in `*pdwBufferSize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetMfe(
    pimm: *const MIB_IPMCAST_MFE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { get_one(named(pimm), pdwBufferSize, pbBuffer, Shape::Mfe) }
}

/// The MFE's counters: MIB_IPMCAST_MFE_STATS ([`MGM_MFE_STATS_0`]) or
/// MIB_IPMCAST_MFE_STATS_EX ([`MGM_MFE_STATS_1`]).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetMfeStats(
    pimm: *const MIB_IPMCAST_MFE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    dwFlags: DWORD,
) -> DWORD {
    let Some(shape) = Shape::of_flags(dwFlags) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: the caller's pointers, passed on.
    unsafe { get_one(named(pimm), pdwBufferSize, pbBuffer, shape) }
}

/// The first MFEs, as many as fit: ERROR_MORE_DATA (more remain: go on with
/// [`MgmGetNextMfe`] after the last one), ERROR_NO_MORE_ITEMS (the end, with
/// `*pdwNumEntries` of them) or ERROR_INSUFFICIENT_BUFFER (not one fits: `*pdwBufferSize`
/// says how much one needs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetFirstMfe(
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { walk(None, pdwBufferSize, pbBuffer, pdwNumEntries, Shape::Mfe) }
}

/// [`MgmGetFirstMfe`] with counters (`dwFlags` as for [`MgmGetMfeStats`]).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetFirstMfeStats(
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
    dwFlags: DWORD,
) -> DWORD {
    let Some(shape) = Shape::of_flags(dwFlags) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: the caller's pointers, passed on.
    unsafe { walk(None, pdwBufferSize, pbBuffer, pdwNumEntries, shape) }
}

/// The MFEs strictly after `pimmStart`'s (S,G) (whether or not it still exists).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetNextMfe(
    pimmStart: *const MIB_IPMCAST_MFE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    let Some(after) = (unsafe { named(pimmStart) }) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: as above.
    unsafe { walk(Some(after), pdwBufferSize, pbBuffer, pdwNumEntries, Shape::Mfe) }
}

/// [`MgmGetNextMfe`] with counters. `pimmStart` may point at any of the three forms (their
/// first two fields are the group and the source).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetNextMfeStats(
    pimmStart: *const MIB_IPMCAST_MFE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
    dwFlags: DWORD,
) -> DWORD {
    let Some(shape) = Shape::of_flags(dwFlags) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: the caller's pointers, passed on.
    let Some(after) = (unsafe { named(pimmStart) }) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: as above.
    unsafe { walk(Some(after), pdwBufferSize, pbBuffer, pdwNumEntries, shape) }
}

/// Changes an MFE's incoming interface (`dwInIfIndex`, next hop 0) and upstream neighbour
/// (`dwUpStrmNgbr`) after an RPF change. Any registered handle may; ERROR_NOT_FOUND for an
/// unknown (S,G).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmSetMfe(hProtocol: HANDLE, pmimm: *const MIB_IPMCAST_MFE) -> DWORD {
    // SAFETY: the caller passes a valid structure or NULL.
    let Some(m) = (unsafe { pmimm.cast::<[DWORD; 5]>().as_ref() }) else {
        return ERROR_INVALID_PARAMETER;
    };
    let (group, source, upstream, iif) = (ipv4(m[0]), ipv4(m[1]), ipv4(m[3]), m[4]);
    status(with_proto(hProtocol, |p| {
        let s = proto::SetMfe {
            handle: p.server,
            source,
            group,
            iif,
            iif_nexthop: None,
            upstream: Some(upstream),
        };
        p.conn.call(s).map(drop)
    }))
}

/// An IPv6 (source, group) from the caller's pointers (NULL: `::`).
unsafe fn named6(
    source: *const libc::in6_addr,
    group: *const libc::in6_addr,
) -> Option<(IpAddr, IpAddr)> {
    // SAFETY: the caller passes valid in6_addrs or NULL.
    let (s, g) = unsafe { (source.as_ref(), group.as_ref()?) };
    let s = s.map_or([0; 16], |a| a.s6_addr);
    Some((std::net::Ipv6Addr::from(s).into(), std::net::Ipv6Addr::from(g.s6_addr).into()))
}

/// The IPv6 MFE (source, group), with its counters, as an [`MGM_MFE6`] followed by its
/// outgoing interfaces (`SIZEOF_MGM_MFE6(n)` bytes). Codes as [`MgmGetMfe`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetMfe6(
    pSource: *const libc::in6_addr,
    pGroup: *const libc::in6_addr,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { get_one(named6(pSource, pGroup), pdwBufferSize, pbBuffer, Shape::Mfe6) }
}

/// The first IPv6 MFEs, by group then source, as many as fit. Codes as [`MgmGetFirstMfe`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetFirstMfe6(
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // mgmd lists every IPv4 entry first: the IPv6 ones come after the largest IPv4 key.
    let last4: IpAddr = std::net::Ipv4Addr::BROADCAST.into();
    // SAFETY: the caller's pointers, passed on.
    unsafe { walk(Some((last4, last4)), pdwBufferSize, pbBuffer, pdwNumEntries, Shape::Mfe6) }
}

/// The IPv6 MFEs strictly after (source, group). Codes as [`MgmGetNextMfe`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetNextMfe6(
    pSource: *const libc::in6_addr,
    pGroup: *const libc::in6_addr,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers.
    let Some(after) = (unsafe { named6(pSource, pGroup) }) else { return ERROR_INVALID_PARAMETER };
    // SAFETY: as above.
    unsafe { walk(Some(after), pdwBufferSize, pbBuffer, pdwNumEntries, Shape::Mfe6) }
}

/// Gives the IPv6 MFE (source, group) a new incoming interface (`dwInIfIndex`, next hop
/// `pInIfNextHop`, NULL: `::`) and upstream neighbour (`pUpStreamNbr`, NULL: `::`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmSetMfe6(
    hProtocol: HANDLE,
    pSource: *const libc::in6_addr,
    pGroup: *const libc::in6_addr,
    dwInIfIndex: DWORD,
    pInIfNextHop: *const libc::in6_addr,
    pUpStreamNbr: *const libc::in6_addr,
) -> DWORD {
    // SAFETY: the caller's pointers.
    let Some((source, group)) = (unsafe { named6(pSource, pGroup) }) else {
        return ERROR_INVALID_PARAMETER;
    };
    // SAFETY: as above (NULL is `::`).
    let any = |p: *const libc::in6_addr| -> IpAddr {
        std::net::Ipv6Addr::from(unsafe { p.as_ref() }.map_or([0; 16], |a| a.s6_addr)).into()
    };
    let (iif_nexthop, upstream) = (any(pInIfNextHop), any(pUpStreamNbr));
    status(with_proto(hProtocol, |p| {
        let s = proto::SetMfe {
            handle: p.server,
            source,
            group,
            iif: dwInIfIndex,
            iif_nexthop: Some(iif_nexthop),
            upstream: Some(upstream),
        };
        p.conn.call(s).map(drop)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sizes_are_rrass_on_this_abi() {
        // The offsets C code computes with SIZEOF_MIB_MFE and friends.
        assert_eq!(Shape::Mfe.size(0), std::mem::offset_of!(MIB_IPMCAST_MFE, rgmioOutInfo));
        assert_eq!(Shape::Mfe.size(1), size_of::<MIB_IPMCAST_MFE>());
        assert_eq!(Shape::Stats.size(1), size_of::<MIB_IPMCAST_MFE_STATS>());
        assert_eq!(Shape::StatsEx.size(1), size_of::<MIB_IPMCAST_MFE_STATS_EX>());
        // Each entry keeps the next one aligned.
        for s in [Shape::Mfe, Shape::Stats, Shape::StatsEx] {
            assert_eq!(s.size(0) % align_of::<MIB_IPMCAST_OIF_STATS>(), 0, "{s:?}");
            assert_eq!(s.oif() % align_of::<MIB_IPMCAST_OIF_STATS>(), 0, "{s:?}");
        }
    }

    #[test]
    fn an_mfe_is_written_where_the_c_structure_has_it() {
        let line = r#"{"source":"10.0.0.1","group":"239.1.2.3","iif":{"ifindex":4,"nexthop":"0.0.0.0"},
            "upstream":"10.0.0.254","oifs":[{"ifindex":5,"nexthop":"0.0.0.0"},{"ifindex":6,"nexthop":"10.9.9.9"}],
            "uptime_secs":7,"expiry_secs":893,"timeout_secs":900,"origin":"mgm",
            "stats":{"in_packets":4294967297,"in_octets":100,"wrong_interface":2,"ttl_expired":3,
            "oifs":[{"ifindex":5,"out_packets":10,"out_octets":1000,"frag_needed":1,"out_discards":0,"ttl_too_low":0},
                    {"ifindex":6,"out_packets":11,"out_octets":1100,"frag_needed":0,"out_discards":2,"ttl_too_low":0}]}}"#;
        let m: MfeReply = serde_json::from_str(line).unwrap();
        let b = encode(Shape::Mfe, &m, 103);
        // SAFETY: `b` holds the header and two interfaces; read unaligned.
        let h = unsafe { b.as_ptr().cast::<MIB_IPMCAST_MFE>().read_unaligned() };
        assert_eq!(h.dwGroup, u32::from_ne_bytes([239, 1, 2, 3]));
        assert_eq!(h.dwSource, u32::from_ne_bytes([10, 0, 0, 1]));
        assert_eq!((h.dwSrcMask, h.dwInIfIndex, h.dwInIfProtocol), (u32::MAX, 4, 103));
        assert_eq!((h.ulUpTime, h.ulExpiryTime, h.ulTimeOut, h.ulNumOutIf), (7, 893, 900, 2));
        let oif = |i: usize| unsafe {
            b.as_ptr().add(Shape::Mfe.size(i)).cast::<MIB_IPMCAST_OIF>().read_unaligned()
        };
        assert_eq!((oif(0).dwOutIfIndex, oif(1).dwOutIfIndex), (5, 6));
        assert_eq!(oif(1).dwNextHopAddr, u32::from_ne_bytes([10, 9, 9, 9]));

        let b = encode(Shape::StatsEx, &m, 0);
        // SAFETY: as above.
        let s = unsafe { b.as_ptr().cast::<MIB_IPMCAST_MFE_STATS_EX>().read_unaligned() };
        assert_eq!((s.ulInPkts, s.ulPktsDifferentIf, s.ulInDiscards), (1, 2, 3), "low 32 bits");
        assert_eq!(s.ulTotalOutPackets, 21);
        let o = unsafe {
            b.as_ptr().add(Shape::StatsEx.size(1)).cast::<MIB_IPMCAST_OIF_STATS>().read_unaligned()
        };
        assert_eq!((o.dwOutIfIndex, o.ulOutPackets, o.ulOutDiscards), (6, 11, 2));
    }
}
