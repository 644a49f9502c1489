// SPDX-License-Identifier: MIT OR Apache-2.0
//! Group enumeration: a cursor over the joined entries (group, then source) that costs
//! mgmd nothing while open. The enumeration handle is the library's (RRAS passes only it
//! to GetNext and End); it names the protocol's handle and mgmd's cursor.

use std::net::IpAddr;

use mgm_client::proto::{
    self, PageStatus,
    types::{EnumType, SourceGroupEntry},
};

use crate::{
    ALL_SOURCES, ANY_SOURCE, DWORD, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA, ERROR_NO_MORE_ITEMS, HANDLE, MGM_ENUM_TYPES, NO_ERROR, PBYTE, PDWORD,
    SOURCE_GROUP_ENTRY, SOURCE_GROUP_ENTRY6, code, dword, registry::registry,
};

/// Opens an enumeration of the joined groups: [`ANY_SOURCE`] (one entry per group, source
/// any) or [`ALL_SOURCES`] (every joined entry as added). `*phEnumHandle` names it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGroupEnumerationStart(
    hProtocol: HANDLE,
    metEnumType: MGM_ENUM_TYPES,
    phEnumHandle: *mut HANDLE,
) -> DWORD {
    let enum_type = match metEnumType {
        ANY_SOURCE => EnumType::AnySource,
        ALL_SOURCES => EnumType::AllSources,
        _ => return ERROR_INVALID_PARAMETER,
    };
    if phEnumHandle.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    let reg = registry();
    let p = match reg.proto(hProtocol) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match p.conn.call(proto::GroupEnumStart { handle: p.server, enum_type }) {
        Ok(r) => {
            // SAFETY: checked non-null; the caller passes a place for one HANDLE.
            unsafe { *phEnumHandle = reg.add_enum(hProtocol, r.enum_handle) };
            NO_ERROR
        }
        Err(e) => code(&e),
    }
}

/// What a walk makes of one entry mgmd listed.
enum Keep<T> {
    Entry(T),
    /// Another family's, passed over.
    Skip,
    /// Another family's, after which none of this walk's come.
    End,
}

/// An IPv4 walk: mgmd lists the IPv4 entries first, so the first IPv6 one ends it.
fn keep4(e: &SourceGroupEntry) -> Keep<SOURCE_GROUP_ENTRY> {
    let all = [e.source, e.source_mask, e.group, e.group_mask];
    if !all.iter().all(IpAddr::is_ipv4) {
        return Keep::End;
    }
    Keep::Entry(SOURCE_GROUP_ENTRY {
        dwSourceAddr: dword(e.source),
        dwSourceMask: dword(e.source_mask),
        dwGroupAddr: dword(e.group),
        dwGroupMask: dword(e.group_mask),
    })
}

/// An IPv6 walk passes the IPv4 entries.
fn keep6(e: &SourceGroupEntry) -> Keep<SOURCE_GROUP_ENTRY6> {
    let six = |ip: IpAddr| match ip {
        IpAddr::V6(a) => libc::in6_addr { s6_addr: a.octets() },
        IpAddr::V4(_) => libc::in6_addr { s6_addr: [0; 16] },
    };
    if !e.group.is_ipv6() {
        return Keep::Skip;
    }
    Keep::Entry(SOURCE_GROUP_ENTRY6 { Source: six(e.source), Group: six(e.group) })
}

/// GetNext for either family: as many `T`s as the caller's buffer holds, from pages of mgmd's
/// cursor (more pages while a page held only entries `keep` passes over).
///
/// # Safety
/// The caller's pointers, as [`MgmGroupEnumerationGetNext`] takes them.
unsafe fn get_next<T: Copy>(
    hEnum: HANDLE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
    keep: fn(&SourceGroupEntry) -> Keep<T>,
) -> DWORD {
    // SAFETY: the caller's pointers.
    let (Some(size), Some(count)) =
        (unsafe { pdwBufferSize.as_mut() }, unsafe { pdwNumEntries.as_mut() })
    else {
        return ERROR_INVALID_PARAMETER;
    };
    *count = 0;
    let reg = registry();
    let (e, p) = match reg.enumeration(hEnum).and_then(|e| Ok((e, reg.proto(e.proto as HANDLE)?))) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let one = size_of::<T>();
    let fit = if pbBuffer.is_null() { 0 } else { *size as usize / one };
    let out = pbBuffer.cast::<T>();
    loop {
        let next = proto::GroupEnumNext {
            handle: p.server,
            enum_handle: e.server,
            max_entries: fit.min(4096),
        };
        let page = match p.conn.call(next) {
            Ok(page) => page,
            Err(crate::conn::Failure::Refused(w)) if w.win32 == Some(ERROR_INSUFFICIENT_BUFFER) => {
                *size = one as DWORD;
                return ERROR_INSUFFICIENT_BUFFER;
            }
            Err(f) => return code(&f),
        };
        let mut kept = Vec::new();
        let mut ended = page.status == PageStatus::NoMoreItems;
        for x in &page.entries {
            match keep(x) {
                Keep::Entry(t) => kept.push(t),
                Keep::Skip => {}
                Keep::End => {
                    ended = true;
                    break;
                }
            }
        }
        for (i, entry) in kept.iter().enumerate() {
            // SAFETY: mgmd returned at most `fit` entries, which the buffer holds.
            unsafe { out.add(i).write_unaligned(*entry) };
        }
        *count = kept.len() as DWORD;
        if ended {
            return ERROR_NO_MORE_ITEMS;
        }
        if !kept.is_empty() || page.entries.is_empty() {
            return ERROR_MORE_DATA;
        }
    }
}

/// The next entries, as many SOURCE_GROUP_ENTRYs as fit: ERROR_MORE_DATA,
/// ERROR_NO_MORE_ITEMS (the end: IPv4 entries only; mgmd lists IPv6 ones after them) or
/// ERROR_INSUFFICIENT_BUFFER (`*pdwBufferSize` says what one needs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGroupEnumerationGetNext(
    hEnum: HANDLE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { get_next(hEnum, pdwBufferSize, pbBuffer, pdwNumEntries, keep4) }
}

/// The next IPv6 entries, as many [`crate::SOURCE_GROUP_ENTRY6`]s as fit (the IPv4 entries
/// before them are passed over: walk an enumeration with this or with
/// [`MgmGroupEnumerationGetNext`], not both). Codes as [`MgmGroupEnumerationGetNext`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGroupEnumerationGetNext6(
    hEnum: HANDLE,
    pdwBufferSize: PDWORD,
    pbBuffer: PBYTE,
    pdwNumEntries: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { get_next(hEnum, pdwBufferSize, pbBuffer, pdwNumEntries, keep6) }
}

/// Closes an enumeration; its handle is dead after.
#[unsafe(no_mangle)]
pub extern "C" fn MgmGroupEnumerationEnd(hEnum: HANDLE) -> DWORD {
    let reg = registry();
    let r = reg.enumeration(hEnum).and_then(|e| {
        let p = reg.proto(e.proto as HANDLE)?;
        p.conn
            .call(proto::GroupEnumEnd { handle: p.server, enum_handle: e.server })
            .map_err(|f| code(&f))
    });
    if r.is_ok() {
        reg.remove_enum(hEnum);
    }
    r.err().unwrap_or(NO_ERROR)
}
