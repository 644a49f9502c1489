// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm.h is checked in (the package and a C programmer read it; building it needs no
//! cbindgen) and must be what the Rust definitions generate: a change to them that is not
//! in the header fails here. `MGM_BLESS=1 cargo test -p mgm-capi --test header` writes it.

use std::path::Path;

#[test]
fn the_checked_in_header_is_what_the_definitions_generate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("generating mgm.h")
        .write(&mut generated);
    let path = dir.join("include/mgm.h");
    if std::env::var_os("MGM_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing mgm.h");
    }
    let checked_in = std::fs::read(&path).expect("include/mgm.h");
    assert!(
        checked_in == generated,
        "include/mgm.h is not what the definitions generate: \
         MGM_BLESS=1 cargo test -p mgm-capi --test header, and check the ABI (libmgm(3))"
    );
}
