// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-util: what mgm's daemons (mgmd, mgm-igmpd) and mgmctl share at their edges, and
//! nothing of their logic: logging and the service manager (here), [`loglimit`] for lines a
//! peer can repeat, [`manual`] pages and completions from the command-line definitions, and
//! [`rtnl`], one rtnetlink request and its replies.

pub mod loglimit;
pub mod manual;
pub mod rtnl;

/// Exit status of a daemon whose configuration cannot be used (sysexits.h EX_CONFIG): the
/// units do not restart on it (RestartPreventExitStatus=78), since the same file would fail
/// again.
pub const EX_CONFIG: u8 = 78;

/// The programs' logging, to stderr with `RUST_LOG` filtering (default `info`). On a
/// terminal: times and colours. To the journal (a unit's stderr): each line starts with its
/// syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug; sd-daemon(3)), so
/// that `journalctl -p warning` finds the warnings, with no time (the journal has its own)
/// and no colour. Anywhere else (a file, a pipe): times, no colour.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let plain = tracing_subscriber::fmt::format().with_ansi(false);
    let fmt = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if stderr_is_journal() {
        fmt.event_format(Journal(plain.without_time())).init();
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Whether stderr is the journal's stream: systemd says so with `JOURNAL_STREAM`, the
/// device and inode of the stream it connected (systemd.exec(5)); a child whose stderr was
/// redirected elsewhere inherits the variable but not the stream.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else { return false };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else { return false };
    stream == format!("{}:{}", stderr.dev(), stderr.ino())
}

/// Events as the journal reads a stream: `<priority>` first.
struct Journal<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Journal<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// A level's syslog priority (syslog(3): LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7).
pub fn syslog_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// Tells the service manager how the daemon is doing (`Type=notify` units); does nothing
/// when it was not started by one (no `NOTIFY_SOCKET`).
pub fn notify_service_manager(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "telling the service manager");
    }
}

pub use sd_notify::NotifyState;
