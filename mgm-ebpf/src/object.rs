// SPDX-License-Identifier: MIT OR Apache-2.0
//! What every eBPF object of this crate needs: a panic handler (the verifier proves it is never
//! reached) and the license the kernel checks for GPL-only helpers.

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
