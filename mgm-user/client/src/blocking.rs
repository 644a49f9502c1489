// SPDX-License-Identifier: MIT OR Apache-2.0
//! The blocking client: one connection on a std socket, for programs without an async
//! runtime (and the tests). The same calls as [`crate::Client`]'s `call`, `call_all` and
//! `next_event`, plus `send`/`reply` to pipeline requests of different methods.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use mgm_proto::{EventFrame, Method, WireError};

use crate::{ClientError, Session};

/// One connection to mgmd. Reads wait as long as [`Client::set_timeout`] says (forever by
/// default); a read that times out loses nothing (the part of a line already read is kept).
pub struct Client {
    reader: BufReader<UnixStream>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    session: Session,
}

impl Client {
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
        Ok(Self { reader: BufReader::new(stream), partial: Vec::new(), session: Session::new() })
    }

    /// How long a read waits before [`ClientError::TimedOut`] (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.reader.get_ref().set_read_timeout(timeout)?)
    }

    fn read_line(&mut self) -> Result<String, ClientError> {
        match self.reader.read_until(b'\n', &mut self.partial) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(ClientError::TimedOut);
            }
            Err(e) => return Err(e.into()),
            Ok(_) if !self.partial.ends_with(b"\n") => return Err(ClientError::Closed),
            Ok(_) => {}
        }
        let mut line = std::mem::take(&mut self.partial);
        line.pop();
        String::from_utf8(line).map_err(|_| ClientError::Protocol("a line not in UTF-8".into()))
    }

    /// Sends one request and waits for its reply; events arriving meanwhile are queued.
    pub fn call<M: Method>(&mut self, method: M) -> Result<M::Reply, ClientError> {
        let id = self.send(method)?;
        Ok(self.reply::<M>(id)??)
    }

    /// Sends several requests of one method in one write and then reads their replies: one
    /// round trip for the lot. Each request's outcome comes back in order; `Err` only for the
    /// connection itself.
    pub fn call_all<M: Method>(
        &mut self,
        methods: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Result<M::Reply, WireError>>, ClientError> {
        let mut ids = Vec::new();
        let mut buf = Vec::new();
        for method in methods {
            let (id, line) = self.session.encode(method)?;
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            ids.push(id);
        }
        self.reader.get_mut().write_all(&buf)?;
        ids.into_iter().map(|id| self.reply::<M>(id)).collect()
    }

    /// Sends a request without waiting for its reply; its id, for [`Client::reply`]. Replies
    /// come in request order.
    pub fn send<M: Method>(&mut self, method: M) -> Result<u64, ClientError> {
        let (id, mut line) = self.session.encode(method)?;
        line.push('\n');
        self.reader.get_mut().write_all(line.as_bytes())?;
        Ok(id)
    }

    /// The reply to the request [`Client::send`] sent as `id`, which must be the next one
    /// on the connection (events arriving first are queued).
    pub fn reply<M: Method>(
        &mut self,
        id: u64,
    ) -> Result<Result<M::Reply, WireError>, ClientError> {
        loop {
            let line = self.read_line()?;
            if let Some(reply) = self.session.accept::<M>(id, &line)? {
                return Ok(reply);
            }
        }
    }

    /// Sends `line` as it is (a method this library does not know, or a test's malformed
    /// line) and returns the next reply line, untouched; events arriving first are queued.
    pub fn raw(&mut self, line: &[u8]) -> Result<String, ClientError> {
        let s = self.reader.get_mut();
        s.write_all(line)?;
        s.write_all(b"\n")?;
        loop {
            let reply = self.read_line()?;
            if !mgm_proto::is_event(&reply) {
                return Ok(reply);
            }
            let event = self.session.event(&reply)?;
            self.session.queue_event(event);
        }
    }

    /// The events that arrived while replies were awaited, oldest first (a program that
    /// lets callbacks take their defaults reads them only to let them go).
    pub fn take_queued_events(&mut self) -> Vec<EventFrame> {
        self.session.take_queued_events()
    }

    /// The next callback event (queued first, then from the socket).
    pub fn next_event(&mut self) -> Result<EventFrame, ClientError> {
        if let Some(ev) = self.session.next_queued_event() {
            return Ok(ev);
        }
        let line = self.read_line()?;
        self.session.event(&line)
    }
}
