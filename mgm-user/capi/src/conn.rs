// SPDX-License-Identifier: MIT OR Apache-2.0
//! The process's one connection to mgmd, shared by every thread and handle (as RRAS's MGM
//! is one per router): calls from any thread write a request and wait for its reply; a
//! reader thread of the library's takes every line off the socket, hands each reply to its
//! caller and queues the events, making the event descriptor readable while any wait.
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

/// How long a call waits for mgmd's reply before ERROR_TIMEOUT.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call did not get mgmd's answer.
#[derive(Debug)]
pub enum Failure {
    /// mgmd refused it.
    Refused(WireError),
    /// The connection is gone (mgmd stopped or restarted): every handle of it is dead.
    Lost(String),
    /// No reply in [`REPLY_TIMEOUT`].
    TimedOut,
    /// A reply that breaks the protocol.
    Protocol(String),
}

struct State {
    replies: HashMap<u64, String>,
    events: VecDeque<EventFrame>,
    lost: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    replied: Condvar,
    /// An eventfd, readable while events wait (or once the connection is lost).
    wake: OwnedFd,
}

impl Shared {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd this struct owns.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Empties the eventfd's counter (it is readable again at the next event).
    fn drain_wake(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from the non-blocking eventfd owned here.
        unsafe { libc::read(self.wake.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

pub struct Conn {
    out: Mutex<(UnixStream, Session)>,
    shared: Arc<Shared>,
}

impl Conn {
    /// Connects to mgmd's socket and starts the reader thread.
    pub fn connect(path: &str) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        // SAFETY: eventfd returns a new descriptor or -1, checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                replies: HashMap::new(),
                events: VecDeque::new(),
                lost: None,
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
            let (id, mut line) =
                out.1.encode(method).map_err(|e| Failure::Protocol(e.to_string()))?;
            line.push('\n');
            if let Err(e) = out.0.write_all(line.as_bytes()) {
                return Err(Failure::Lost(format!("writing to mgmd: {e}")));
            }
            id
        };
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = st.replies.remove(&id) {
                drop(st);
                return match Session::new().accept::<M>(id, &line) {
                    Ok(Some(Ok(reply))) => Ok(reply),
                    Ok(Some(Err(e))) => Err(Failure::Refused(e)),
                    Ok(None) => Err(Failure::Protocol("an event where a reply was due".into())),
                    Err(ClientError::Server(e)) => Err(Failure::Refused(e)),
                    Err(e) => Err(Failure::Protocol(e.to_string())),
                };
            }
            if let Some(why) = &st.lost {
                return Err(Failure::Lost(why.clone()));
            }
            let (next, timeout) = self
                .shared
                .replied
                .wait_timeout(st, REPLY_TIMEOUT)
                .unwrap_or_else(|p| p.into_inner());
            st = next;
            if timeout.timed_out() && !st.replies.contains_key(&id) {
                return Err(Failure::TimedOut);
            }
        }
    }

    /// The events that arrived, oldest first; the event descriptor is not readable after
    /// (until the next one).
    pub fn take_events(&self) -> Vec<EventFrame> {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.drain_wake();
        st.events.drain(..).collect()
    }

    /// Why the connection is gone, if it is.
    pub fn lost(&self) -> Option<String> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).lost.clone()
    }

    /// The descriptor a daemon's loop polls for readability.
    pub fn event_fd(&self) -> RawFd {
        self.shared.wake.as_raw_fd()
    }

    /// Closes the connection (mgmd releases everything its handles held); the reader ends.
    pub fn close(&self) {
        let out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.0.shutdown(std::net::Shutdown::Both);
    }
}

/// The reader thread: replies to their callers, events to the queue, until the socket ends.
fn read(mut reader: BufReader<UnixStream>, shared: &Shared) {
    let mut line = String::new();
    let why = loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break "mgmd closed the connection".to_owned(),
            Ok(_) => {}
            Err(e) => break format!("reading from mgmd: {e}"),
        }
        let text = line.trim_end_matches('\n');
        if mgm_client::proto::is_event(text) {
            match serde_json::from_str::<EventFrame>(text) {
                Ok(ev) => {
                    shared.state.lock().unwrap_or_else(|p| p.into_inner()).events.push_back(ev);
                    shared.wake();
                }
                // An event this library does not know (a newer mgmd): not ours to act on.
                Err(_) => continue,
            }
            continue;
        }
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
        match id {
            Some(id) => {
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                st.replies.insert(id, text.to_owned());
                shared.replied.notify_all();
            }
            // An error about the whole connection (permission denied): it closes next.
            None => {}
        }
    };
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    st.lost = Some(why);
    shared.replied.notify_all();
    drop(st);
    shared.wake();
}
