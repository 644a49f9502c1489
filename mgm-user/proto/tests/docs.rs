// SPDX-License-Identifier: MIT OR Apache-2.0
//! docs/protocol.md against the types: the version it states is the code's, and every
//! method, event and error code the code has is documented (and no other).

use mgm_proto::{ErrorCode, MethodName, PROTOCOL_VERSION, types::Event};

const DOC: &str = include_str!("../../../docs/protocol.md");

/// The part of the document from heading `title` to the next heading of its level.
fn section(title: &str) -> &'static str {
    let start = DOC.find(&format!("\n## {title}\n")).unwrap_or_else(|| panic!("no {title}"));
    let rest = &DOC[start + 1..];
    &rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)]
}

/// The names in the first column of a section's table rows (`| `name` |`, or several
/// separated by ` / `).
fn table_names(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .flat_map(|l| {
            let first = l.split(" |").next().unwrap_or_default();
            first.split(" / ").map(|n| n.trim_matches('`').to_owned()).collect::<Vec<_>>()
        })
        .collect()
}

/// The variant names serde knows for a tagged or unit enum: an unknown one is refused with
/// the list of the expected ones.
fn serde_names<T: serde::de::DeserializeOwned>(probe: &str) -> Vec<String> {
    let e = serde_json::from_str::<T>(probe).err().expect("an unknown variant is refused");
    let msg = e.to_string();
    let list = msg.split("expected one of ").nth(1).unwrap_or_else(|| panic!("{msg}"));
    list.split(", ").map(|n| n.split('`').nth(1).expect("a quoted name").to_owned()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_version_is_the_codes() {
    let title = DOC.lines().next().unwrap();
    assert_eq!(title, format!("# mgmd control protocol, version {PROTOCOL_VERSION}"));
    let hello = section("Methods").lines().find(|l| l.starts_with("| `hello`")).unwrap();
    assert!(hello.contains(&format!(r#""protocol": {PROTOCOL_VERSION},"#)), "{hello}");
}

#[test]
fn every_method_is_documented() {
    let code: Vec<String> = MethodName::ALL
        .iter()
        .map(|m| serde_json::to_value(m).unwrap().as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(table_names(section("Methods"))), sorted(code));
}

#[test]
fn every_event_is_documented() {
    let code = serde_names::<Event>(r#"{"event": "?"}"#);
    assert!(code.len() > 5, "{code:?}");
    assert_eq!(sorted(table_names(section("Events"))), sorted(code));
}

#[test]
fn every_error_code_is_documented() {
    let code = serde_names::<ErrorCode>(r#""?""#);
    assert_eq!(sorted(table_names(section("Error codes"))), sorted(code));
}
