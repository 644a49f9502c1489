// SPDX-License-Identifier: MIT OR Apache-2.0
//! The methods as command lines (`mgmctl call`, the session): clap parsers for the
//! protocol's values, behind the `clap` feature.

use std::net::IpAddr;

use crate::{
    AddMembership, DeleteMembership, MembershipArgs,
    types::{EnumHandle, EnumType, Handle, Iface, RequestId},
};

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

pub(crate) fn parse_handle(s: &str) -> Result<Handle, String> {
    parse_u64(s).map(Handle)
}

pub(crate) fn parse_request_id(s: &str) -> Result<RequestId, String> {
    parse_u64(s).map(RequestId)
}

pub(crate) fn parse_enum_handle(s: &str) -> Result<EnumHandle, String> {
    parse_u64(s).map(EnumHandle)
}

pub(crate) fn parse_enum_type(s: &str) -> Result<EnumType, String> {
    match s {
        "any-source" | "any_source" | "0" => Ok(EnumType::AnySource),
        "all-sources" | "all_sources" | "1" => Ok(EnumType::AllSources),
        _ => Err(format!("{s:?}: expected any-source or all-sources")),
    }
}

/// `IFINDEX` or `IFINDEX@NEXTHOP`.
pub(crate) fn parse_iface(s: &str) -> Result<Iface, String> {
    let (i, hop) = s.split_once('@').unwrap_or((s, "0.0.0.0"));
    let ifindex = i.parse().map_err(|e| format!("{s:?}: ifindex: {e}"))?;
    let nexthop: IpAddr = hop.parse().map_err(|e| format!("{s:?}: next hop: {e}"))?;
    Ok(Iface::new(ifindex, nexthop))
}

/// The membership methods take [`MembershipArgs`] as their command-line arguments too.
macro_rules! membership_args {
    ($($t:ident),*) => {$(
        impl clap::FromArgMatches for $t {
            fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
                MembershipArgs::from_arg_matches(m).map(Self)
            }
            fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
                self.0.update_from_arg_matches(m)
            }
        }
        impl clap::Args for $t {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                MembershipArgs::augment_args(cmd)
            }
            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                MembershipArgs::augment_args_for_update(cmd)
            }
        }
    )*};
}
membership_args!(AddMembership, DeleteMembership);
