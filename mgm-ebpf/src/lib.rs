// SPDX-License-Identifier: MIT OR Apache-2.0
//! Exists so that `mgm-user` can name this crate as a build dependency (cargo then rebuilds
//! the eBPF objects when they change). The programs are in `main.rs` (mgmd's object) and
//! `bin/bench.rs` (the benchmarks').
#![no_std]
