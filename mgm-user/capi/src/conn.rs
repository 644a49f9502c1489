// SPDX-License-Identifier: MIT OR Apache-2.0
//! A connection to mgmd, shared by every thread and handle of the process (as RRAS's MGM is
//! one per router): calls from any thread write a request and wait for its reply; a reader
//! thread of the library's takes every line off the socket, hands each reply to its caller
//! and queues the events, raising the library's event descriptor.
//!
//! The reader never runs a callback: callbacks run where the daemon chooses
//! ([`crate::MgmDispatch`] on its own loop, or the library's dispatch thread), so a callback
//! may call the library (a join alert answered with a membership) without deadlocking it.

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead as _, BufReader, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

use mgm_client::{
    ClientError, Session,
    proto::{EventFrame, Method, WireError},
};

/// How long a call waits for mgmd's reply before ERROR_TIMEOUT: 30 s, or
/// `$MGM_REPLY_TIMEOUT_MS` (read once).
fn reply_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("MGM_REPLY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(30), Duration::from_millis)
    })
}

/// Why a call did not get mgmd's answer.
#[derive(Debug)]
pub enum Failure {
    /// mgmd refused it.
    Refused(WireError),
    /// The connection is gone (mgmd stopped or restarted): every handle of it is dead.
    Lost,
    /// No reply in [`reply_timeout`].
    TimedOut,
    /// A reply that breaks the protocol.
    Protocol,
}

/// The library's event descriptor (an eventfd made once for the process's life, so a
/// daemon polls one descriptor across reconnections): readable while events wait or a lost
/// connection is still to be reported.
pub struct Wake(OwnedFd);

impl Wake {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd returns a new descriptor or -1, checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd this struct owns.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Empties the eventfd's counter: not readable until it is raised again.
    pub fn drain(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from the non-blocking eventfd owned here.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

struct State {
    replies: HashMap<u64, String>,
    events: VecDeque<EventFrame>,
    lost: bool,
}

struct Shared {
    state: Mutex<State>,
    replied: Condvar,
    wake: Arc<Wake>,
}

/// One connection to mgmd. The handles registered on it live and die with it.
pub struct Conn {
    out: Mutex<(UnixStream, Session)>,
    shared: Arc<Shared>,
}

impl Conn {
    /// Connects to mgmd's socket and starts the reader thread, which raises `wake` when
    /// events arrive and when the connection ends.
    pub fn connect(path: &str, wake: Arc<Wake>) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                replies: HashMap::new(),
                events: VecDeque::new(),
                lost: false,
            }),
            replied: Condvar::new(),
            wake,
        });
        let reader = BufReader::new(stream.try_clone()?);
        let s = shared.clone();
        std::thread::Builder::new().name("libmgm-reader".into()).spawn(move || read(reader, &s))?;
        Ok(Self { out: Mutex::new((stream, Session::new())), shared })
    }

    /// Sends `method` and waits for its reply.
    pub fn call<M: Method>(&self, method: M) -> Result<M::Reply, Failure> {
        let id = {
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            let (id, mut line) = out.1.encode(method).map_err(|_| Failure::Protocol)?;
            line.push('\n');
            if out.0.write_all(line.as_bytes()).is_err() {
                return Err(Failure::Lost);
            }
            id
        };
        let deadline = std::time::Instant::now() + reply_timeout();
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = st.replies.remove(&id) {
                drop(st);
                return match Session::new().accept::<M>(id, &line) {
                    Ok(Some(Ok(reply))) => Ok(reply),
                    Ok(Some(Err(e))) | Err(ClientError::Server(e)) => Err(Failure::Refused(e)),
                    Ok(None) | Err(_) => Err(Failure::Protocol),
                };
            }
            if st.lost {
                return Err(Failure::Lost);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Failure::TimedOut);
            }
            st = self.shared.replied.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// The events that arrived, oldest first.
    pub fn take_events(&self) -> Vec<EventFrame> {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.events.drain(..).collect()
    }

    /// Whether the connection is gone.
    pub fn lost(&self) -> bool {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).lost
    }
}

/// The reader thread: replies to their callers, events to the queue, until the socket ends.
fn read(mut reader: BufReader<UnixStream>, shared: &Shared) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_end_matches('\n');
        if mgm_client::proto::is_event(text) {
            // An event this library does not know (a newer mgmd) is not its to act on.
            if let Ok(ev) = serde_json::from_str::<EventFrame>(text) {
                shared.state.lock().unwrap_or_else(|p| p.into_inner()).events.push_back(ev);
                shared.wake.raise();
            }
            continue;
        }
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
        // A reply without an id is about the whole connection (permission denied): the
        // connection closes next, and the calls waiting learn it then.
        if let Some(id) = id {
            let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.replies.insert(id, text.to_owned());
            shared.replied.notify_all();
        }
    }
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    st.lost = true;
    shared.replied.notify_all();
    drop(st);
    shared.wake.raise();
}
