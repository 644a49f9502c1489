// SPDX-License-Identifier: MIT OR Apache-2.0
//! One connection's protocol state without its I/O: the next request id, the events that
//! arrived while a reply was awaited, and the typed decoding of each line. The async and
//! the blocking client move lines; this decides what they mean.

use std::collections::VecDeque;

use mgm_proto::{EventFrame, MAX_FRAME, Method, ReplyBody, ReplyFrame, RequestFrame, WireError};

use crate::ClientError;

/// See the module documentation.
#[derive(Debug)]
pub struct Session {
    next_id: u64,
    events: VecDeque<EventFrame>,
}

impl Default for Session {
    fn default() -> Self {
        Self { next_id: 1, events: VecDeque::new() }
    }
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request as its line (without the newline), under the next id.
    pub fn encode<M: Method>(&mut self, method: M) -> Result<(u64, String), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = RequestFrame { id, request: method.into() };
        let line = serde_json::to_string(&frame).expect("requests serialize");
        if line.len() > MAX_FRAME {
            return Err(ClientError::Protocol(format!(
                "request of {} bytes exceeds {MAX_FRAME}",
                line.len()
            )));
        }
        Ok((id, line))
    }

    /// A line read while request `id` waits for its reply: `None` if it was an event (queued
    /// for [`Session::next_queued_event`]), else the reply — the server's answer, or `Err`
    /// when the line breaks the protocol or speaks for the whole connection.
    pub fn accept<M: Method>(
        &mut self,
        id: u64,
        line: &str,
    ) -> Result<Option<Result<M::Reply, WireError>>, ClientError> {
        if mgm_proto::is_event(line) {
            let event = decode(line)?;
            self.queue_event(event);
            return Ok(None);
        }
        let reply: ReplyFrame<M::Reply> = decode(line)?;
        if reply.id != Some(id) {
            // An error with no id is about the connection itself (e.g. permission_denied
            // before closing it): report it as such.
            if let (None, ReplyBody::Error(e)) = (reply.id, &reply.body) {
                return Err(e.clone().into());
            }
            return Err(ClientError::Protocol(format!("reply id {:?} for {id}", reply.id)));
        }
        Ok(Some(match reply.body {
            ReplyBody::Result(r) => Ok(r),
            ReplyBody::Error(e) => Err(e),
        }))
    }

    /// A line read while no reply is awaited: an event.
    pub fn event(&mut self, line: &str) -> Result<EventFrame, ClientError> {
        decode(line)
    }

    /// Sets an event aside for [`Session::next_queued_event`] (one read while waiting for a
    /// reply the session did not decode).
    pub fn queue_event(&mut self, event: EventFrame) {
        self.events.push_back(event);
    }

    /// Every event queued so far, oldest first.
    pub fn take_queued_events(&mut self) -> Vec<EventFrame> {
        self.events.drain(..).collect()
    }

    /// The oldest event that arrived while a reply was awaited.
    pub fn next_queued_event(&mut self) -> Option<EventFrame> {
        self.events.pop_front()
    }
}

fn decode<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, ClientError> {
    serde_json::from_str(line).map_err(|e| ClientError::Protocol(format!("{line:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use mgm_proto::{ErrorCode, Hello, Register, types::Handle};

    use super::*;

    #[test]
    fn replies_are_typed_and_events_set_aside() {
        let mut s = Session::new();
        let (id, line) = s.encode(Register { protocol: 103, component: 1 }).unwrap();
        assert_eq!(line, r#"{"id":1,"method":"register","protocol":103,"component":1}"#);
        let event =
            r#"{"handle":4,"event":"disable_igmp","iface":{"ifindex":2,"nexthop":"0.0.0.0"}}"#;
        assert!(s.accept::<Register>(id, event).unwrap().is_none());
        let reply = s.accept::<Register>(id, r#"{"id":1,"result":{"handle":7}}"#).unwrap();
        assert_eq!(reply.unwrap().unwrap().handle, Handle(7));
        assert_eq!(s.next_queued_event().unwrap().handle, Handle(4));
        assert!(s.next_queued_event().is_none());
    }

    #[test]
    fn a_server_error_is_the_calls_and_an_idless_one_the_connections() {
        let mut s = Session::new();
        let (id, _) = s.encode(Hello {}).unwrap();
        let refused = r#"{"id":1,"error":{"code":"invalid_params","message":"no"}}"#;
        let e = s.accept::<Hello>(id, refused).unwrap().unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParams);
        let (id, _) = s.encode(Hello {}).unwrap();
        let closing = r#"{"id":null,"error":{"code":"permission_denied","message":"no"}}"#;
        let e = s.accept::<Hello>(id, closing).unwrap_err();
        assert_eq!(e.server().map(|e| e.code), Some(ErrorCode::PermissionDenied));
        let (id, _) = s.encode(Hello {}).unwrap();
        assert!(matches!(
            s.accept::<Hello>(id, r#"{"id":1,"result":{}}"#),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(s.accept::<Hello>(id, "not json"), Err(ClientError::Protocol(_))));
    }
}
