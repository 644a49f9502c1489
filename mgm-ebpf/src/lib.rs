// SPDX-License-Identifier: MIT OR Apache-2.0
//! Exists so that `mgm-user` can name this crate as a build dependency (cargo then rebuilds
//! the eBPF object when it changes). The programs are in `main.rs`.
#![no_std]
