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

/// The declarations of a header: comments dropped, each top-level declaration (up to its
/// `;`) and each `#define` one whitespace-normalised item.
fn declarations(text: &str) -> std::collections::BTreeSet<String> {
    let mut code = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    let mut items = std::collections::BTreeSet::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut lines = code.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with('#') {
            // A macro with its continuation lines; include guards and includes are not ABI.
            let mut m = line.trim_end_matches('\\').to_owned();
            let mut l = line;
            while l.ends_with('\\') {
                l = lines.next().unwrap_or_default();
                m.push(' ');
                m.push_str(l.trim_end_matches('\\'));
            }
            if m.trim_start().starts_with("#define") && !m.contains("MGM_H") {
                items.insert(m.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            continue;
        }
        for c in line.chars().chain(std::iter::once(' ')) {
            current.push(c);
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ';' if depth == 0 => {
                    let item = current.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !item.is_empty() {
                        items.insert(item);
                    }
                    current.clear();
                }
                _ => {}
            }
        }
    }
    items
}

/// libmgm.so.0's ABI is the header it was released with (abi/mgm.h.0): every declaration of
/// it, a structure's fields, a function's parameters, a constant's value, stays as it was.
/// Adding is fine; changing or removing one breaks programs built against libmgm.so.0, and
/// needs a new soname (SONAME_MAJOR in build.rs and xtask) and abi/mgm.h.1.
#[test]
fn the_abi_of_libmgm_so_0_is_kept() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let frozen = declarations(&read("abi/mgm.h.0"));
    let now = declarations(&read("include/mgm.h"));
    assert!(frozen.len() > 60, "{frozen:#?}");
    let broken: Vec<&String> = frozen.difference(&now).collect();
    assert!(broken.is_empty(), "changed or removed from libmgm.so.0's ABI: {broken:#?}");
}

#[test]
fn a_changed_field_or_parameter_is_an_abi_change() {
    let before = declarations(
        "typedef struct { DWORD a; DWORD b; } T; /* x */\nDWORD f(DWORD x);\n#define N 1\n",
    );
    for after in [
        "typedef struct { DWORD a; ULONG b; } T;\nDWORD f(DWORD x);\n#define N 1\n",
        "typedef struct { DWORD a; DWORD b; DWORD c; } T;\nDWORD f(DWORD x);\n#define N 1\n",
        "typedef struct { DWORD a; DWORD b; } T;\nDWORD f(DWORD x, DWORD y);\n#define N 1\n",
        "typedef struct { DWORD a; DWORD b; } T;\nDWORD f(DWORD x);\n#define N 2\n",
    ] {
        assert!(!before.is_subset(&declarations(after)), "{after}");
    }
    let added =
        "typedef struct { DWORD a; DWORD b; } T;\nDWORD f(DWORD x);\n#define N 1\nDWORD g(void);\n";
    assert!(before.is_subset(&declarations(added)));
}
