// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd's runtime: the [`Router`] that owns the fast path and answers requests, and the Unix
//! socket server that feeds it.
//!
//! ```text
//!  client ─┐                                   ┌─────────────── main task ──────────────┐
//!  client ─┼─ connection tasks ── mpsc<Cmd> ──▶│ Router: Mirror<BpfFastPath>, interfaces │
//!  client ─┘   (parse, reply in order)  ◀─ oneshot reply ─┘                                  │
//!                                              └────────────────────────────────────────┘
//! ```
//! Only the main task touches BPF objects; connection tasks never block it: a request is
//! parsed before it is queued, and a slow reader only slows its own connection.

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use mgm_common::{MfeKey, counter};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};
use tracing::{debug, info, warn};

use crate::{
    dataplane::BpfFastPath,
    fastpath::{FastPath, FastPathError, Mirror},
    netdev::{self, NetDev},
    proto::{
        ErrorCode, InterfaceInfo, MAX_FRAME, MfeInfo, MfeSpec, PROTOCOL_VERSION, ReplyBody,
        ReplyFrame, Request, Response, Snapshot, WireError, parse_request,
    },
};

impl From<&FastPathError> for ErrorCode {
    fn from(e: &FastPathError) -> Self {
        match e {
            FastPathError::Full { .. } | FastPathError::OilTooLong(_) => ErrorCode::Full,
            FastPathError::UnknownPort(_) | FastPathError::PortInUse(..) => {
                ErrorCode::NoSuchInterface
            }
            FastPathError::Map { .. } | FastPathError::XdpMap { .. } => ErrorCode::FastPath,
        }
    }
}

impl From<FastPathError> for WireError {
    fn from(e: FastPathError) -> Self {
        WireError::new(ErrorCode::from(&e), e.to_string())
    }
}

/// The state owner: managed interfaces and the fast-path mirror.
pub struct Router<F: FastPath = BpfFastPath> {
    mirror: Mirror<F>,
    interfaces: BTreeMap<String, NetDev>,
    /// Reads the global counters (only the BPF fast path has them).
    counters: fn(&F) -> Result<[u64; counter::COUNT as usize], FastPathError>,
}

impl Router<BpfFastPath> {
    pub fn new(fp: BpfFastPath) -> Self {
        Self {
            mirror: Mirror::new(fp),
            interfaces: BTreeMap::new(),
            counters: BpfFastPath::counters,
        }
    }

    /// Attaches the ingress program to `dev` and makes it usable as an outgoing interface.
    pub fn manage(&mut self, dev: NetDev, mode: aya::programs::XdpMode) -> anyhow::Result<()> {
        self.mirror.fast_path_mut().attach(dev.ifindex, mode)?;
        self.mirror.add_port(dev.ifindex, dev.mac)?;
        info!(ifname = %dev.name, ifindex = dev.ifindex, mac = %netdev::fmt_mac(&dev.mac), "managing interface");
        self.interfaces.insert(dev.name.clone(), dev);
        Ok(())
    }
}

impl<F: FastPath> Router<F> {
    fn ifindex(&self, name: &str) -> Result<u32, WireError> {
        self.interfaces.get(name).map(|d| d.ifindex).ok_or_else(|| {
            WireError::new(
                ErrorCode::NoSuchInterface,
                format!("{name:?} is not a managed interface (start mgmd with --iface {name})"),
            )
        })
    }

    /// Installs a static MFE named by interfaces.
    pub fn add_mfe(&mut self, spec: &MfeSpec) -> Result<(), WireError> {
        if !spec.group.is_multicast() || spec.group.octets()[..3] == [224, 0, 0] {
            return Err(WireError::new(
                ErrorCode::InvalidParams,
                format!("{} is not a routable multicast group", spec.group),
            ));
        }
        let iif = self.ifindex(&spec.iif)?;
        let oifs = spec
            .oifs
            .iter()
            .map(|n| self.ifindex(n))
            .collect::<Result<Vec<_>, _>>()?;
        let key = MfeKey::new(spec.source.octets(), spec.group.octets());
        self.mirror.install(key, iif, &oifs)?;
        info!(source = %spec.source, group = %spec.group, iif = %spec.iif, oifs = ?spec.oifs, "mfe installed");
        Ok(())
    }

    pub fn handle(&mut self, req: Request) -> Result<Response, WireError> {
        match req {
            Request::Hello => Ok(Response::Hello {
                protocol: PROTOCOL_VERSION,
                server: format!("mgmd {}", env!("CARGO_PKG_VERSION")),
            }),
            Request::Show => self.snapshot().map(Response::Show),
            Request::AddMfe(spec) => self.add_mfe(&spec).map(|()| Response::Done {}),
            Request::DelMfe { source, group } => {
                let key = MfeKey::new(source.octets(), group.octets());
                if self.mirror.remove(&key)? {
                    info!(%source, %group, "mfe removed");
                    Ok(Response::Done {})
                } else {
                    Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no MFE ({source}, {group})"),
                    ))
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Snapshot, WireError> {
        let interfaces = self
            .interfaces
            .values()
            .map(|d| InterfaceInfo {
                name: d.name.clone(),
                ifindex: d.ifindex,
                mac: netdev::fmt_mac(&d.mac),
            })
            .collect();
        let mut mfes = Vec::new();
        for (k, m) in self.mirror.mfes() {
            let s = self.mirror.fast_path().mfe_stats(m.slot)?;
            mfes.push(MfeInfo {
                source: k.source.into(),
                group: k.group.into(),
                iif: m.iif,
                oifs: m.oifs.clone(),
                packets: s.packets,
                bytes: s.bytes,
                wrong_iif: s.wrong_iif,
                ttl_expired: s.ttl_expired,
            });
        }
        let values = (self.counters)(self.mirror.fast_path())?;
        let counters = counter::NAMES
            .iter()
            .zip(values)
            .map(|(n, v)| ((*n).to_owned(), v))
            .collect();
        Ok(Snapshot {
            interfaces,
            mfes,
            counters,
        })
    }
}

/// A request travelling from a connection task to the router.
pub struct Cmd {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Response, WireError>>,
}

/// Binds the control socket: takes the single-instance lock first, then replaces a stale
/// socket file, and restricts access to the owner (root) by default.
pub fn bind(
    path: &Path,
    mode: u32,
) -> anyhow::Result<(UnixListener, nix::fcntl::Flock<std::fs::File>)> {
    use anyhow::Context as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = lock_path(path);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .with_context(|| {
            format!(
                "another mgmd holds {} (is one already running?)",
                lock_path.display()
            )
        })?;
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok((listener, lock))
}

pub fn lock_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Accepts connections forever, one task each.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Cmd>) {
    let mut next_conn = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_conn += 1;
                let tx = tx.clone();
                let conn = next_conn;
                tokio::spawn(async move {
                    debug!(conn, "client connected");
                    if let Err(e) = connection(stream, tx).await {
                        debug!(conn, error = %e, "connection ended with an error");
                    }
                    debug!(conn, "client disconnected");
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

async fn connection(stream: UnixStream, tx: mpsc::Sender<Cmd>) -> io::Result<()> {
    let mut framed = Framed::new(
        stream,
        RequestCodec(LinesCodec::new_with_max_length(MAX_FRAME)),
    );
    while let Some(line) = framed.next().await {
        let reply = match line? {
            Ok(line) => match parse_request(&line) {
                Ok(frame) => {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    if tx
                        .send(Cmd {
                            request: frame.request,
                            reply: reply_tx,
                        })
                        .await
                        .is_err()
                    {
                        return Ok(()); // shutting down
                    }
                    let body = match reply_rx.await {
                        Ok(Ok(r)) => ReplyBody::Result(r),
                        Ok(Err(e)) => ReplyBody::Error(e),
                        Err(_) => return Ok(()),
                    };
                    ReplyFrame {
                        id: Some(frame.id),
                        body,
                    }
                }
                Err(reply) => reply,
            },
            Err(BadLine::TooLong) => ReplyFrame {
                id: None,
                body: ReplyBody::Error(WireError::new(
                    ErrorCode::TooLarge,
                    format!("request line longer than {MAX_FRAME} bytes; discarded"),
                )),
            },
            Err(BadLine::NotUtf8) => ReplyFrame {
                id: None,
                body: ReplyBody::Error(WireError::new(ErrorCode::Malformed, "line is not UTF-8")),
            },
        };
        framed
            .send(serde_json::to_string(&reply).expect("replies always serialize"))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastpath::MemFastPath;

    fn router() -> Router<MemFastPath> {
        let mut r = Router {
            mirror: Mirror::new(MemFastPath::with_capacity(16)),
            interfaces: BTreeMap::new(),
            counters: |_| Ok([0; counter::COUNT as usize]),
        };
        for (name, ifindex) in [("in", 1), ("o1", 2), ("o2", 3)] {
            r.mirror
                .add_port(ifindex, [2, 0, 0, 0, 0, ifindex as u8])
                .unwrap();
            r.interfaces.insert(
                name.into(),
                NetDev {
                    name: name.into(),
                    ifindex,
                    mac: [0; 6],
                },
            );
        }
        r
    }

    fn spec(oifs: &[&str]) -> MfeSpec {
        MfeSpec {
            source: "10.0.0.1".parse().unwrap(),
            group: "239.1.1.1".parse().unwrap(),
            iif: "in".into(),
            oifs: oifs.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn add_show_delete() {
        let mut r = router();
        r.handle(Request::AddMfe(spec(&["o2", "o1"]))).unwrap();
        let Response::Show(s) = r.handle(Request::Show).unwrap() else {
            panic!()
        };
        assert_eq!(s.mfes.len(), 1);
        assert_eq!(s.mfes[0].iif, 1);
        assert_eq!(s.mfes[0].oifs, vec![2, 3]);
        assert_eq!(s.interfaces.len(), 3);
        assert_eq!(s.counters.len(), counter::COUNT as usize);
        let del = Request::DelMfe {
            source: "10.0.0.1".parse().unwrap(),
            group: "239.1.1.1".parse().unwrap(),
        };
        r.handle(del.clone()).unwrap();
        assert_eq!(r.handle(del).unwrap_err().code, ErrorCode::NotFound);
        assert!(r.mirror.fast_path().mfes.is_empty());
    }

    #[test]
    fn unmanaged_interfaces_and_bad_groups_change_nothing() {
        let mut r = router();
        let e = r.handle(Request::AddMfe(spec(&["eth9"]))).unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchInterface);
        assert!(e.message.contains("eth9"));
        let mut s = spec(&["o1"]);
        s.group = "224.0.0.5".parse().unwrap();
        assert_eq!(
            r.handle(Request::AddMfe(s)).unwrap_err().code,
            ErrorCode::InvalidParams
        );
        assert!(r.mirror.fast_path().mfes.is_empty());
        assert!(r.mirror.fast_path().oils.is_empty());
    }
}
