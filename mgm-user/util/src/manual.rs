// SPDX-License-Identifier: MIT OR Apache-2.0
//! Manual pages and shell completions, rendered from the programs' own command-line
//! definitions so that they cannot drift from what the programs parse.
//!
//! `cargo xtask package` asks each program for them: `PROGRAM --generate DIR` writes
//! `DIR/man/PROGRAM.8` (and `PROGRAM-SUBCOMMAND.8` for each subcommand) and
//! `DIR/completions/{bash/PROGRAM.bash, zsh/_PROGRAM, fish/PROGRAM.fish}`. The flag is read
//! before the command line is parsed, so it stays out of the definitions it renders.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap_complete::Shell;
use roff::{Roff, bold, roman};

/// What a program's page says beyond its options: examples (a command line and what it
/// does), then sections of prose (a title and its paragraphs, separated by blank lines).
pub struct Page {
    pub examples: &'static [(&'static str, &'static str)],
    pub sections: &'static [(&'static str, &'static str)],
}

impl Page {
    /// The examples as `--help` shows them, after the options.
    pub fn examples_help(&self) -> String {
        let width = self.examples.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let mut s = String::from("Examples:\n");
        for (cmd, what) in self.examples {
            s.push_str(&format!("  {cmd:width$}  {what}\n"));
        }
        s
    }

    fn roff(&self) -> Roff {
        let mut r = Roff::new();
        if !self.examples.is_empty() {
            r.control("SH", ["EXAMPLES"]);
            for (cmd, what) in self.examples {
                r.control("TP", []).text([bold(*cmd)]).text([roman(*what)]);
            }
        }
        for (title, body) in self.sections {
            r.control("SH", [*title]);
            for para in body.split("\n\n") {
                r.control("PP", []).text([roman(para.replace('\n', " "))]);
            }
        }
        r
    }
}

/// The directory of `--generate DIR`, when the program was started that way.
pub fn requested() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    (args.next()? == "--generate").then(|| args.next().map(PathBuf::from))?
}

/// [`generate`] as a program's whole run (`PROGRAM --generate DIR`): its exit status, and
/// what went wrong said on stderr.
pub fn generate_and_exit(cmd: clap::Command, page: &Page, dir: &Path) -> std::process::ExitCode {
    let name = cmd.get_name().to_owned();
    match generate(cmd, page, dir) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes `cmd`'s manual pages (section 8: the programs are the administrator's) and its
/// completions for bash, zsh and fish under `dir`.
fn generate(cmd: clap::Command, page: &Page, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_owned();
    let man = dir.join("man");
    fs::create_dir_all(&man)?;
    let man_page = |cmd: clap::Command| {
        clap_mangen::Man::new(cmd)
            .section("8")
            .source(format!("mgm {}", env!("CARGO_PKG_VERSION")))
            .manual("mgm")
    };
    let write = |file: String, out: Vec<u8>| {
        fs::write(man.join(&file), out).with_context(|| format!("writing {file}"))
    };
    // The program's page: the examples and the sections of `page` in place of the text
    // `--help` shows after the options.
    let m = man_page(cmd.clone());
    let mut out = Vec::new();
    m.render_title(&mut out)?;
    m.render_name_section(&mut out)?;
    m.render_synopsis_section(&mut out)?;
    m.render_description_section(&mut out)?;
    m.render_options_section(&mut out)?;
    if cmd.has_subcommands() {
        m.render_subcommands_section(&mut out)?;
    }
    page.roff().to_writer(&mut out)?;
    m.render_version_section(&mut out)?;
    write(format!("{name}.8"), out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // `mgmctl show` is documented as mgmctl-show(8), as git and ip do.
        let full = format!("{name}-{}", sub.get_name());
        let mut out = Vec::new();
        man_page(sub.clone().name(full.clone())).render(&mut out)?;
        write(format!("{full}.8"), out)?;
    }
    for (shell, sub) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
        let d = dir.join("completions").join(sub);
        fs::create_dir_all(&d)?;
        clap_complete::generate_to(shell, &mut cmd, &name, &d)
            .with_context(|| format!("writing {sub} completions"))?;
    }
    Ok(())
}
