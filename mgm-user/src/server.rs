// SPDX-License-Identifier: MIT OR Apache-2.0
//! The control socket: binding (single instance, permissions), accepting, and one task per
//! connection that parses lines into [`Cmd`]s for the router and writes what the router sends
//! back. Replies and events share one outbound queue per connection, filled only by the router,
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

use crate::proto::{ErrorCode, MAX_FRAME, ReplyBody, ReplyFrame, WireError, parse_request};

/// Identifies a connection for the router.
pub type ConnId = u64;

/// Bytes a connection may have queued for writing (replies and events its client has not read
/// yet) before it counts as too slow and is disconnected: about 80,000 callbacks.
pub const OUTBOUND_BYTES: usize = 32 << 20;

/// The router's end of one connection's outbound queue.
#[derive(Clone, Debug)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
    limit: usize,
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
        (Self { tx, queued: queued.clone(), limit }, OutboundRx { rx, queued })
    }

    pub fn push(&self, line: String) -> Result<(), PushError> {
        let n = line.len() + 1;
        if self.queued.load(Ordering::Relaxed) + n > self.limit {
            return Err(PushError::Full);
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send(line).map_err(|_| PushError::Closed)
    }
}

/// The writer's end.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<String>,
    queued: Arc<AtomicUsize>,
}

impl OutboundRx {
    pub async fn recv(&mut self) -> Option<String> {
        let line = self.rx.recv().await?;
        self.queued.fetch_sub(line.len() + 1, Ordering::Relaxed);
        Some(line)
    }

    pub fn try_recv(&mut self) -> Option<String> {
        let line = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(line.len() + 1, Ordering::Relaxed);
        Some(line)
    }
}

/// What connection tasks tell the router.
#[derive(Debug)]
pub enum Cmd {
    /// A client connected; the router writes to it through `tx`.
    Connected { conn: ConnId, tx: Outbound, peer: Option<(u32, u32, i32)> },
    /// A line: a parsed request, or the error reply a bad line gets.
    Line { conn: ConnId, line: Result<crate::proto::RequestFrame, ReplyFrame> },
    /// The client went away.
    Disconnected { conn: ConnId },
}

/// Binds the control socket, replacing a stale socket file, and restricts access to the owner
/// (root) by default. The caller holds [`lock`] for `path` (taken before anything else, so a
/// second mgmd touches neither the socket nor the pinned fast path).
pub fn bind(
    path: &Path,
    _lock: &nix::fcntl::Flock<std::fs::File>,
    mode: u32,
) -> anyhow::Result<UnixListener> {
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
pub fn lock(socket: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use anyhow::Context as _;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = lock_path(socket);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .with_context(|| {
            format!("another mgmd holds {} (is one already running?)", lock_path.display())
        })
}

pub fn lock_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Accepts connections forever, one task each.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Cmd>) {
    let mut next_conn: ConnId = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_conn += 1;
                let tx = tx.clone();
                let conn = next_conn;
                tokio::spawn(async move {
                    if let Err(e) = connection(conn, stream, tx.clone()).await {
                        debug!(conn, error = %e, "connection ended with an error");
                    }
                    let _ = tx.send(Cmd::Disconnected { conn }).await;
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

async fn connection(conn: ConnId, stream: UnixStream, tx: mpsc::Sender<Cmd>) -> io::Result<()> {
    let peer = stream.peer_cred().ok().map(|c| (c.uid(), c.gid(), c.pid().unwrap_or(0)));
    let (read, write) = stream.into_split();
    let (out_tx, mut out_rx) = Outbound::channel(OUTBOUND_BYTES);
    if tx.send(Cmd::Connected { conn, tx: out_tx, peer }).await.is_err() {
        return Ok(()); // shutting down
    }
    let mut reader =
        FramedRead::new(read, RequestCodec(LinesCodec::new_with_max_length(MAX_FRAME)));
    let mut writer = FramedWrite::new(write, LinesCodec::new());
    let reading = async {
        while let Some(item) = reader.next().await {
            let line = match item? {
                Ok(text) => parse_request(&text),
                Err(BadLine::TooLong) => Err(bad(
                    ErrorCode::TooLarge,
                    format!("request line longer than {MAX_FRAME} bytes; discarded"),
                )),
                Err(BadLine::NotUtf8) => Err(bad(ErrorCode::Malformed, "line is not UTF-8".into())),
            };
            if tx.send(Cmd::Line { conn, line }).await.is_err() {
                break;
            }
        }
        Ok::<(), io::Error>(())
    };
    let writing = async {
        // Ends when the router drops the sender: on shutdown, or when it gave up on a client
        // that does not read.
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
    }
}

fn bad(code: ErrorCode, message: String) -> ReplyFrame {
    ReplyFrame { id: None, body: ReplyBody::Error(WireError::new(code, message)) }
}
