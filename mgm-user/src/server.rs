// SPDX-License-Identifier: MIT OR Apache-2.0
//! The control socket: binding (single instance, permissions), accepting, and one task per
//! connection that parses lines into [`ConnEvent`]s for the daemon and writes what the daemon sends
//! back. Replies and events share one outbound queue per connection, filled only by the daemon,
//! so replies leave in request order and after the fast-path writes they depend on. The queue
//! is bounded in bytes, not lines: a burst of callbacks (100k new flows at once) must not cost
//! a client that reads its connection, while one that stops reading cannot grow mgmd's memory
//! beyond [`OUTBOUND_BYTES`].

use std::{
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::mpsc,
};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite, LinesCodec, LinesCodecError};
use tracing::{debug, warn};

use crate::proto::{ErrorCode, MAX_FRAME, Rejected, RequestFrame, WireError, parse_request};

/// Whether a refused connection may be logged now (a local user can connect in a loop):
/// rate limited, with how many were not logged since the last one.
fn refusal_log() -> Option<u64> {
    static LIMIT: std::sync::Mutex<mgm_util::loglimit::LogLimit> =
        std::sync::Mutex::new(mgm_util::loglimit::LogLimit::new());
    LIMIT.lock().ok()?.allow(std::time::Instant::now())
}

/// Identifies a connection for the daemon.
pub type ConnId = u64;

/// Bytes a connection may have queued for writing (replies and events its client has not read
/// yet) before it counts as too slow and is disconnected: about 80,000 callbacks.
pub const OUTBOUND_BYTES: usize = 32 << 20;
/// The smallest limit that can be set: one line of the longest length (below it, a client
/// that reads would be disconnected by the first reply that meets an event on its way).
pub const MIN_OUTBOUND_BYTES: usize = MAX_FRAME;

/// The daemon's end of one connection's outbound queue.
#[derive(Clone, Debug)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    kill: Arc<tokio::sync::Notify>,
    /// Whether the connection's requests are read (see [`Outbound::pause_reading`]).
    reading: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Why [`Outbound::push`] refused a line.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// More than the limit is waiting: the client does not read.
    Full,
    /// The connection is gone.
    Closed,
}

impl Outbound {
    /// A queue that refuses lines once `limit` bytes wait.
    pub fn channel(limit: usize) -> (Self, OutboundRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let kill = Arc::new(tokio::sync::Notify::new());
        let (reading, reading_rx) = tokio::sync::watch::channel(true);
        (
            Self { tx, queued: queued.clone(), limit, kill: kill.clone(), reading: reading.into() },
            OutboundRx { rx, queued, kill, reading: reading_rx },
        )
    }

    /// Stops reading the connection's requests (while a release of its own is answered in
    /// steps: what it sends meanwhile stays in its socket, not in mgmd), or starts again.
    pub fn pause_reading(&self, paused: bool) {
        self.reading.send_replace(!paused);
    }

    /// Closes the connection now, without writing what is still queued: for a client that
    /// does not read, whose socket buffer is full.
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Queues a line, or gives it back when the queue is at its limit (a line longer than
    /// the limit still goes when the queue is empty: no reply is too big to be sent).
    pub fn push(&self, line: String) -> Result<(), (PushError, String)> {
        let n = line.len() + 1;
        let queued = self.queued.load(Ordering::Relaxed);
        if queued > 0 && queued + n > self.limit {
            return Err((PushError::Full, line));
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send(line).map_err(|e| (PushError::Closed, e.0))
    }

    /// The queue's limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The writer's end.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<String>,
    queued: Arc<AtomicUsize>,
    kill: Arc<tokio::sync::Notify>,
    reading: tokio::sync::watch::Receiver<bool>,
}

impl OutboundRx {
    pub async fn recv(&mut self) -> Option<String> {
        let line = self.rx.recv().await?;
        self.queued.fetch_sub(line.len() + 1, Ordering::Relaxed);
        Some(line)
    }

    /// Whether the daemon wants the connection's requests read now.
    pub fn reading(&self) -> bool {
        *self.reading.borrow()
    }

    pub fn try_recv(&mut self) -> Option<String> {
        let line = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(line.len() + 1, Ordering::Relaxed);
        Some(line)
    }
}

/// Binds the control socket, replacing a stale socket file, and restricts access to the owner
/// (root) by default. The caller holds [`lock`] for `path` (taken before anything else, so a
/// second mgmd touches neither the socket nor the pinned fast path).
pub fn bind(path: &Path, _lock: &Lock, mode: u32) -> anyhow::Result<UnixListener> {
    use anyhow::Context as _;
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// Takes the single-instance lock that goes with `socket` (held for the process lifetime).
pub fn lock(socket: &Path) -> anyhow::Result<Lock> {
    lock_file(&lock_path(socket), "is one already running?")
}

/// Takes the lock that goes with a pin directory: two mgmd on different sockets must not
/// share one fast path either. The lock lives in /run/mgm (bpffs holds no regular files, and
/// the directory itself may be replaced when its layout changes).
pub fn lock_pins(pin_dir: &Path) -> anyhow::Result<Lock> {
    let hint = format!("another mgmd uses the pin directory {}", pin_dir.display());
    lock_file(&pins_lock_path(pin_dir), &hint)
}

/// The lock file of a pin directory.
pub fn pins_lock_path(pin_dir: &Path) -> PathBuf {
    let name: String = pin_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    Path::new(PIN_LOCK_DIR).join(format!("pins{name}.lock"))
}

/// Where pin-directory locks live.
pub const PIN_LOCK_DIR: &str = "/run/mgm";

/// A held lock file, removed when dropped (the process ends, starts or fails: nothing of it
/// is left in /run). It is removed while still held, so no other process takes it between.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _flock: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_file(path: &Path, hint: &str) -> anyhow::Result<Lock> {
    use anyhow::Context as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    use std::os::unix::fs::MetadataExt as _;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let flock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .with_context(|| format!("another mgmd holds {} ({hint})", path.display()))?;
        // The holder removes the file as it lets go: a lock taken on the removed file is no
        // lock (another process may create the path anew), so take the path's file again.
        let current = std::fs::metadata(path).map(|m| m.ino()).ok();
        if current == Some(flock.metadata()?.ino()) {
            return Ok(Lock { path: path.to_owned(), _flock: flock });
        }
    }
}

pub fn lock_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Who may use the socket, and how much a connection may leave unread.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Members of this group (primary or supplementary) may connect, besides root and
    /// mgmd's own user. `None`: only those two.
    pub group: Option<u32>,
    /// Bytes of replies and events a client may leave unread before it is disconnected.
    pub queue_bytes: usize,
    /// Connections one user (uid) may have open at once; root is not counted, so that it
    /// always gets in.
    pub conns_per_uid: usize,
}

/// Default of [`Access::conns_per_uid`].
pub const CONNS_PER_UID: usize = 256;

/// Open connections per uid.
type UidCounts = Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>;

/// One open connection counted against its uid, given back when dropped.
struct UidSlot {
    counts: UidCounts,
    uid: u32,
}

impl UidSlot {
    fn take(counts: &UidCounts, uid: u32, limit: usize) -> Option<Self> {
        let mut c = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = c.entry(uid).or_default();
        if uid != 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Self { counts: counts.clone(), uid })
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = c.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.uid);
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one: every client is a file descriptor, and
/// the usual soft limit (1,024) would lock new clients out long before memory runs short.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

impl Access {
    /// The SO_PEERCRED check (the socket file's mode is the first gate; this one holds even
    /// if the file is made world-writable by mistake).
    pub fn allows(&self, uid: u32, gid: u32, pid: i32) -> bool {
        if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
            return true;
        }
        let Some(group) = self.group else { return false };
        gid == group || supplementary_groups(pid).contains(&group)
    }
}

/// The supplementary groups of a process (`Groups:` in /proc/PID/status).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// What happens on the socket, for the daemon (which makes each an input of its own).
#[derive(Debug)]
pub enum ConnEvent {
    /// A client connected (its peer credentials: uid, gid, pid); replies and events go out
    /// through `tx`.
    Connected { conn: ConnId, tx: Outbound, peer: Option<(u32, u32, i32)> },
    /// A line: a parsed request, or the error reply a bad line gets.
    Line { conn: ConnId, line: Result<RequestFrame, Rejected> },
    /// The client went away (or shut down its sending side).
    Disconnected { conn: ConnId },
}

/// Accepts connections forever, one task each.
pub async fn serve<T>(listener: UnixListener, tx: mpsc::Sender<T>, access: Access)
where
    T: From<ConnEvent> + Send + 'static,
{
    let mut next_conn: ConnId = 0;
    let counts = UidCounts::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_conn += 1;
                let tx = tx.clone();
                let conn = next_conn;
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(conn, stream, tx.clone(), access, counts).await {
                        debug!(conn, error = %e, "connection ended with an error");
                    }
                    let _ = tx.send(ConnEvent::Disconnected { conn }.into()).await;
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A line that could not be used as text.
enum BadLine {
    TooLong,
    NotUtf8,
}

/// `LinesCodec` that reports oversize and non-UTF-8 lines as items, not errors: `Framed` ends
/// the stream after any decoder error, and one bad line must not cost the client its session.
/// After an oversize line, `LinesCodec` itself discards up to the next newline.
struct RequestCodec(LinesCodec);

impl Decoder for RequestCodec {
    type Item = Result<String, BadLine>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        lenient(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        lenient(self.0.decode_eof(buf))
    }
}

fn lenient(
    r: Result<Option<String>, LinesCodecError>,
) -> io::Result<Option<Result<String, BadLine>>> {
    match r {
        Ok(line) => Ok(line.map(Ok)),
        Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Err(BadLine::TooLong))),
        // LinesCodec has already consumed the line when UTF-8 validation fails.
        Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
            Ok(Some(Err(BadLine::NotUtf8)))
        }
        Err(LinesCodecError::Io(e)) => Err(e),
    }
}

impl Encoder<String> for RequestCodec {
    type Error = io::Error;

    fn encode(&mut self, line: String, buf: &mut BytesMut) -> io::Result<()> {
        self.0.encode(line, buf).map_err(|e| match e {
            LinesCodecError::Io(e) => e,
            LinesCodecError::MaxLineLengthExceeded => io::Error::other("reply too long"),
        })
    }
}

async fn connection<T: From<ConnEvent>>(
    conn: ConnId,
    stream: UnixStream,
    tx: mpsc::Sender<T>,
    access: Access,
    counts: UidCounts,
) -> io::Result<()> {
    let peer = stream.peer_cred().ok().map(|c| (c.uid(), c.gid(), c.pid().unwrap_or(0)));
    let Some((uid, gid, pid)) = peer.filter(|&(u, g, p)| access.allows(u, g, p)) else {
        if let Some(suppressed) = refusal_log() {
            warn!(conn, peer = ?peer, suppressed, "connection refused: not root, mgmd's user or the socket group");
        }
        let why = bad(ErrorCode::PermissionDenied, "not allowed to use this socket".into());
        return refuse(stream, why).await;
    };
    let Some(_slot) = UidSlot::take(&counts, uid, access.conns_per_uid) else {
        let limit = access.conns_per_uid;
        if let Some(suppressed) = refusal_log() {
            warn!(
                conn,
                uid, gid, pid, limit, suppressed, "connection refused: too many from this user"
            );
        }
        let why = format!("{limit} connections of uid {uid} are open (mgmd --max-conns-per-uid)");
        return refuse(stream, bad(ErrorCode::TooManyConnections, why)).await;
    };
    let (read, write) = stream.into_split();
    let (out_tx, mut out_rx) = Outbound::channel(access.queue_bytes);
    if tx.send(ConnEvent::Connected { conn, tx: out_tx, peer }.into()).await.is_err() {
        return Ok(()); // shutting down
    }
    let mut reader =
        FramedRead::new(read, RequestCodec(LinesCodec::new_with_max_length(MAX_FRAME)));
    let mut writer = FramedWrite::new(write, LinesCodec::new());
    let mut go = out_rx.reading.clone();
    let reading = async {
        loop {
            // Paused while a release of this client's is done in steps.
            if go.wait_for(|reading| *reading).await.is_err() {
                return Ok(());
            }
            let Some(item) = reader.next().await else { break };
            let line = match item? {
                Ok(text) => parse_request(&text),
                Err(BadLine::TooLong) => Err(bad(
                    ErrorCode::TooLarge,
                    format!("request line longer than {MAX_FRAME} bytes; discarded"),
                )),
                Err(BadLine::NotUtf8) => Err(bad(ErrorCode::Malformed, "line is not UTF-8".into())),
            };
            if tx.send(ConnEvent::Line { conn, line }.into()).await.is_err() {
                return Ok(());
            }
        }
        // End of input (the client may have only shut down its sending side, as `nc -N`
        // does): the daemon serves every line before this, then drops the queue, and the
        // writer below ends once it has written their replies.
        let _ = tx.send(ConnEvent::Disconnected { conn }.into()).await;
        std::future::pending::<()>().await;
        Ok::<(), io::Error>(())
    };
    let kill = out_rx.kill.clone();
    let writing = async {
        // Ends when the daemon drops the sender (shutdown, or the client went away).
        while let Some(line) = out_rx.recv().await {
            writer.send(line).await.map_err(|e| match e {
                LinesCodecError::Io(e) => e,
                LinesCodecError::MaxLineLengthExceeded => io::Error::other("line too long"),
            })?;
        }
        Ok::<(), io::Error>(())
    };
    tokio::select! {
        r = reading => r,
        r = writing => r,
        // The daemon gave up on a client that does not read: close at once, whatever is
        // still queued (its socket buffer is full; writing would wait forever).
        () = kill.notified() => Ok(()),
    }
}

/// Tells a peer why it is turned away (one error line), then closes.
async fn refuse(mut stream: UnixStream, why: Rejected) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut line = serde_json::to_string(&why).expect("replies serialize");
    line.push('\n');
    stream.write_all(line.as_bytes()).await?;
    // Half-close and drain for a moment, so the client's first request is not met by a reset
    // before it reads why.
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let drain = async { while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    Ok(())
}

fn bad(code: ErrorCode, message: String) -> Rejected {
    Rejected { id: None, error: WireError::new(code, message) }
}
