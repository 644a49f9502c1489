// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm.so's soname carries the ABI's major version: programs linked against libmgm.so.0
//! keep working across compatible releases (libmgm0's symbols file checks it).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmgm.so.{}", SONAME_MAJOR);
}

const SONAME_MAJOR: u32 = 0;
