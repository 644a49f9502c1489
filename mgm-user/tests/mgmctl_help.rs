// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mgmctl session --help` lists every command a script line may be, with its arguments
//! (from the commands' own definitions, so the list cannot drift from what a line parses).

#[test]
fn session_help_lists_every_command_with_its_arguments() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mgmctl"))
        .args(["session", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let listed = |cmd: &str| {
        text.lines().any(|l| {
            let l = l.trim_start();
            l == cmd || l.starts_with(&format!("{cmd} "))
        })
    };
    for cmd in [
        "hello",
        "show",
        "status",
        "add-mfe",
        "del-mfe",
        "register",
        "deregister",
        "take-interface",
        "release-interface",
        "get-protocol-on-interface",
        "add-membership",
        "delete-membership",
        "get-mfe",
        "get-first-mfe",
        "get-next-mfe",
        "set-mfe",
        "group-enum-start",
        "group-enum-next",
        "group-enum-end",
        "answer-rpf",
        "answer-creation",
        "answer-prune",
        "watch",
        "sleep",
    ] {
        assert!(listed(cmd), "{cmd} is not listed:\n{text}");
    }
    // With its arguments and options.
    assert!(text.contains("take-interface <HANDLE> <IFINDEX> [NEXTHOP]"), "{text}");
    assert!(text.contains("--source <SOURCE>"), "{text}");
    let commands = &text[text.find("Commands (").expect("the list")..];
    assert!(!commands.contains("--help") && !commands.contains("[OPTIONS]"), "{commands}");
}
