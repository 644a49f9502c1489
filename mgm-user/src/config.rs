// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd's static configuration: managed interfaces and static MFEs, from a TOML file and/or
//! the command line.
//!
//! ```toml
//! interfaces = ["eth0", "eth1", "eth2"]
//!
//! [[mfe]]
//! source = "10.0.0.1"
//! group = "239.1.1.1"
//! iif = "eth0"
//! oifs = ["eth1", "eth2"]
//!
//! [[scope_boundary]]
//! interface = "eth2"
//! scope = "site"
//! ```
//!
//! Besides these, which a reload applies, the file may set any of mgmd's start-time options
//! by its long name (`metrics = "127.0.0.1:9750"`, `follow-kernel = true`): [`SETTINGS`].
//! The command line overrides them.
//!
//! On the command line an MFE is `SOURCE,GROUP,IIF,OIF[+OIF...]`, e.g.
//! `--mfe 10.0.0.1,239.1.1.1,eth0,eth1+eth2`, and a boundary `IFACE:SCOPE`
//! (`--scope-boundary eth2:site`; see [`crate::scope`]).

use std::{
    collections::{BTreeSet, HashSet},
    path::Path,
};

pub use mgm_proto::StaticMfe;
use mgm_proto::statics::{BadMfe, QUOTE, ifname_error, quote};
use serde::Deserialize;

use crate::{manager::Sg, scope::Boundary};

/// mgmd's options a file may set, by their long names: what it starts with (a reload tells
/// of a change, and the next start applies it). mgmd checks this list against its command
/// line's definition.
pub const SETTINGS: &[&str] = &[
    "socket",
    "socket-mode",
    "socket-group",
    "max-conns-per-uid",
    "client-queue-bytes",
    "xdp-mode",
    "max-mfes",
    "pin-dir",
    "no-pin",
    "restart-hold-secs",
    "flow-creation-rate",
    "max-handles-per-conn",
    "max-interfaces-per-conn",
    "max-memberships-per-conn",
    "max-enums-per-conn",
    "max-static-mfes",
    "follow-kernel",
    "mroute-table",
    "mroute6-table",
    "heartbeat-ms",
    "metrics",
];

/// What a reload applies: the file's keys that are not [`SETTINGS`].
const ENTRIES: &[&str] = &["interfaces", "mfe", "scope_boundary"];

/// The file's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default, rename = "mfe")]
    pub mfes: Vec<StaticMfe>,
    #[serde(default, rename = "scope_boundary")]
    pub boundaries: Vec<Boundary>,
    /// The [`SETTINGS`] the file gives, each value as the command line would spell it.
    #[serde(skip)]
    pub settings: std::collections::BTreeMap<String, String>,
}

/// A configuration mgmd cannot start with, found past the file's syntax (an interface this
/// system lacks, a group it does not have): mgmd exits with EX_CONFIG.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The largest configuration file read: about 50,000 static MFEs (more than the default
/// `--max-static-mfes`); larger sets of statics belong on the socket (`add_mfe`). Parsing
/// costs some 40 times a file's size in memory, so the bound is also mgmd's memory's.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file ({kind}): the configuration is read from a file")]
    NotAFile { path: String, kind: &'static str },
    #[error("{path} is larger than {max} bytes: put large sets of static MFEs on the socket (add_mfe)", max = MAX_FILE_BYTES)]
    TooBig { path: String },
    #[error("parsing {path}: line {line}, column {column}: {message}{excerpt}")]
    Parse { path: String, line: usize, column: usize, message: String, excerpt: String },
    #[error(transparent)]
    Mfe(#[from] BadMfe),
    #[error("bad interface name {name}: {why}")]
    Interface { name: String, why: &'static str },
    #[error("{count} static MFEs, more than the {limit} allowed (mgmd --max-static-mfes)")]
    TooManyStatics { count: usize, limit: usize },
    #[error("{path}: unknown key {key}{hint} (mgmd.toml(5) lists the keys)")]
    UnknownKey { path: String, key: String, hint: String },
    #[error("{path}: {key} takes one value (a string, number or true/false), not {kind}")]
    NotASetting { path: String, key: String, kind: &'static str },
    #[error("{path}: {key} = {value}: {why}")]
    BadSetting { path: String, key: String, value: String, why: String },
}

fn check_ifname(name: &str) -> Result<(), ConfigError> {
    match ifname_error(name) {
        Some(why) => Err(ConfigError::Interface { name: quote(name), why }),
        None => Ok(()),
    }
}

/// Reads the file at `path`: a regular file (a FIFO, device or directory would block mgmd
/// or never end), opened without blocking, of at most [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::{io::Read as _, os::unix::fs::FileTypeExt as _, os::unix::fs::OpenOptionsExt as _};
    let p = || path.display().to_string();
    let read = |source| ConfigError::Read { path: p(), source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = match () {
            _ if t.is_dir() => "a directory",
            _ if t.is_fifo() => "a FIFO",
            _ if t.is_socket() => "a socket",
            _ if t.is_char_device() || t.is_block_device() => "a device",
            _ => "not a file",
        };
        return Err(ConfigError::NotAFile { path: p(), kind });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::TooBig { path: p() });
    }
    // The size may change while it is read: no more than the bound either way.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooBig { path: p() });
    }
    String::from_utf8(bytes).map_err(|e| {
        read(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8: {e}")))
    })
}

/// Returns the heap's free memory to the system (glibc keeps what a parse freed).
pub fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A TOML error as a position and a short quote of its line, never the input at length.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start.min(text.len()));
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    // The line around the error: what precedes it, and a little of what follows.
    let mut from = at.saturating_sub(QUOTE - 20).max(start);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let excerpt = match text.get(from..end) {
        Some(l) if !l.trim().is_empty() => format!(" in {}", quote(l)),
        _ => String::new(),
    };
    let message = e.message().trim();
    let message = if message.len() > QUOTE { quote(message) } else { message.to_owned() };
    ConfigError::Parse {
        path: path.display().to_string(),
        line,
        column: at - start + 1,
        message,
        excerpt,
    }
}

/// The known key nearest a misspelt one (a typo, `_` for `-`, a plural).
fn closest(key: &str) -> Option<&'static str> {
    let norm = |k: &str| k.replace('_', "-").trim_end_matches('s').to_owned();
    let k = norm(key);
    SETTINGS
        .iter()
        .chain(ENTRIES)
        .copied()
        .find(|known| norm(known) == k || known.starts_with(&k) && k.len() >= 4)
}

impl Config {
    /// The file at `path`, parsed (its entries are checked by [`Config::resolve`], with the
    /// command line's).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_file(path)?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        // The entries straight from the text, so that an error in one has its position.
        let mut cfg: Config = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        let p = || path.display().to_string();
        for (key, value) in table {
            if ENTRIES.contains(&key.as_str()) {
                continue;
            }
            if !SETTINGS.contains(&key.as_str()) {
                let hint =
                    closest(&key).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
                return Err(ConfigError::UnknownKey { path: p(), key: quote(&key), hint });
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::NotASetting {
                        path: p(),
                        key,
                        kind: other.type_str(),
                    });
                }
            };
            cfg.settings.insert(key, value);
        }
        Ok(cfg)
    }

    /// What can be told of this configuration without the kernel: every name an interface
    /// name, every MFE routable.
    pub fn check(&self) -> Result<(), ConfigError> {
        let names = self.interfaces.iter().chain(self.boundaries.iter().map(|b| &b.interface));
        for n in names {
            check_ifname(n)?;
        }
        for m in &self.mfes {
            m.validate().map_err(|why| BadMfe { spec: m.quoted(), why })?;
        }
        Ok(())
    }

    /// What a start checks besides [`Config::check`] (which [`Config::resolve`] did) and the
    /// kernel's links: no more distinct static MFEs than `static_limit`.
    pub fn check_statics(&self, static_limit: usize) -> Result<(), ConfigError> {
        let count =
            self.mfes.iter().map(|m| Sg::new(m.source, m.group)).collect::<BTreeSet<_>>().len();
        if count > static_limit {
            return Err(ConfigError::TooManyStatics { count, limit: static_limit });
        }
        Ok(())
    }

    /// What mgmd runs with: the file's entries (if there is a file), then the command
    /// line's, checked ([`Config::check`]). Read at start and again at each reload.
    pub fn resolve(file: Option<&Path>, cmdline: &Config) -> Result<Config, ConfigError> {
        Config::with_cmdline(file.map(Config::load).transpose()?, cmdline)
    }

    /// [`Config::resolve`] of a file already read (at start: the one whose settings the
    /// command line took, read once).
    pub fn with_cmdline(file: Option<Config>, cmdline: &Config) -> Result<Config, ConfigError> {
        let cfg = match file {
            Some(f) => f.merged(cmdline),
            None => cmdline.clone(),
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// A setting the file gave, with its value, as an error saying why it cannot be used.
    pub fn bad_setting(path: &Path, key: &str, value: &str, why: impl ToString) -> ConfigError {
        ConfigError::BadSetting {
            path: path.display().to_string(),
            key: key.to_owned(),
            value: quote(value),
            why: why.to_string(),
        }
    }

    /// This configuration and `other`'s entries (the file's, then the command line's).
    pub fn merged(mut self, other: &Config) -> Config {
        self.interfaces.extend(other.interfaces.iter().cloned());
        self.mfes.extend(other.mfes.iter().cloned());
        self.boundaries.extend(other.boundaries.iter().cloned());
        self
    }

    /// Every interface named anywhere (explicitly or by an MFE), in first-seen order (in
    /// one pass: 200,000 names took 34 s when each was looked for in the list).
    pub fn all_interfaces(&self) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let named = self
            .interfaces
            .iter()
            .chain(self.mfes.iter().flat_map(|m| std::iter::once(&m.iif).chain(m.oifs.iter())));
        named.filter(|n| seen.insert(n.as_str())).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parses_and_lists_interfaces_once() {
        let dir = std::env::temp_dir().join(format!("mgm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mgmd.toml");
        std::fs::write(
            &path,
            r#"
interfaces = ["a", "d"]
[[mfe]]
source = "10.0.0.1"
group = "239.1.1.1"
iif = "a"
oifs = ["b", "c"]
[[scope_boundary]]
interface = "c"
scope = "site"
"#,
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cfg.all_interfaces(), ["a", "d", "b", "c"]);
        assert_eq!(cfg.mfes.len(), 1);
        assert_eq!(cfg.boundaries, ["c:5".parse().unwrap()]);
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir =
            std::env::temp_dir().join(format!("mgm-cfg-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mgmd.toml");
        std::fs::write(&path, text).unwrap();
        let r = Config::load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let e = load("interfaces = []\nbogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("unknown key \"bogus\""), "{e}");
        let e = load("interface = [\"a\"]\n").unwrap_err().to_string();
        assert!(e.contains("did you mean interfaces?"), "{e}");
        let e = load("follow_kernel = true\n").unwrap_err().to_string();
        assert!(e.contains("did you mean follow-kernel?"), "{e}");
        let e = load("[[mfe]]\nsource = \"10.0.0.1\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = []\nbogus = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6"), "an entry's error keeps its position: {e}");
    }

    #[test]
    fn settings_are_read_as_the_command_line_spells_them() {
        let cfg = load("follow-kernel = true\nmax-mfes = 4096\nmetrics = \"127.0.0.1:9750\"\ninterfaces = [\"a\"]\n").unwrap();
        let got: Vec<(&str, &str)> =
            cfg.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [("follow-kernel", "true"), ("max-mfes", "4096"), ("metrics", "127.0.0.1:9750")]
        );
        assert_eq!(cfg.interfaces, ["a"]);
        let e = load("metrics = [\"a\"]\n").unwrap_err().to_string();
        assert!(e.contains("metrics takes one value"), "{e}");
    }
}
