// SPDX-License-Identifier: MIT OR Apache-2.0
//! What both eBPF objects share, as a library they link (as aya's ebpf-panic crate is shared):
//! [`packet`] (the packet as either program reads it), [`parse`] (IPv4's checks and checksums), [`parse6`] (IPv6's checks and
//! extension-header walk) and the panic handler. The programs are in `main.rs` (mgmd's object)
//! and `bin/bench.rs` (the benchmarks'); each object declares its own license.
//!
//! `mgm-user` also names this crate as a build dependency (so cargo rebuilds the objects when
//! it changes): built for the host, it is empty.
#![no_std]
// An empty `asm!` hides a bounded value from the optimiser (`parse::opaque`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
pub mod packet;
#[cfg(target_arch = "bpf")]
pub mod parse;
#[cfg(target_arch = "bpf")]
pub mod parse6;

/// The verifier proves the panic handler is never reached.
#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
