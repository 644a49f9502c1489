// SPDX-License-Identifier: MIT OR Apache-2.0
//! Client library for the mgmd control socket: what `mgmctl` uses and what a Rust routing
//! daemon embeds.
//!
//! One [`Client`] is one connection, and the handles it registers live and die with it.
//! Replies and callback events share the connection: events that arrive while a call waits for
//! its reply are queued and returned by [`Client::next_event`], in order.
//!
//! ```no_run
//! # async fn f() -> Result<(), mgm::client::ClientError> {
//! use mgm::{client::Client, manager::Event};
//! let mut c = Client::connect("/run/mgm/mgmd.sock").await?;
//! let pim = c.register(103, 1).await?;
//! c.take_interface(pim, 2, "0.0.0.0".parse().unwrap()).await?;
//! loop {
//!     let ev = c.next_event().await?;
//!     if let Event::Rpf { request, iif, upstream, .. } = ev.event {
//!         c.answer_rpf(pim, request, iif.ifindex, iif.nexthop, upstream).await?;
//!     }
//! }
//! # }
//! ```

use std::{collections::VecDeque, net::Ipv4Addr, path::Path};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use crate::{
    config::StaticMfe,
    manager::{EnumHandle, EnumType, Handle, Iface, RequestId, SourceGroupEntry},
    proto::{
        EventFrame, HelloInfo, MAX_FRAME, MembershipArgs, MfeReply, PageReply, ReplyBody,
        ReplyFrame, Request, RequestFrame, Snapshot, WireError,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "connecting to {path}: {source} (is mgmd running, and are you allowed to use its socket?)"
    )]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("mgmd closed the connection")]
    Closed,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("mgmd: {0}")]
    Server(#[from] WireError),
}

/// One connection to mgmd.
pub struct Client {
    framed: Framed<UnixStream, LinesCodec>,
    next_id: u64,
    events: VecDeque<EventFrame>,
}

impl Client {
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
        Ok(Self {
            framed: Framed::new(stream, LinesCodec::new_with_max_length(usize::MAX)),
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    async fn read_line(&mut self) -> Result<Value, ClientError> {
        let line = self.framed.next().await.ok_or(ClientError::Closed)?.map_err(codec_err)?;
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(format!("{line:?}: {e}")))
    }

    /// Sends one request and waits for its reply; events arriving meanwhile are queued.
    pub async fn call(&mut self, request: Request) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = serde_json::to_string(&RequestFrame { id, request }).expect("serializable");
        if line.len() > MAX_FRAME {
            return Err(ClientError::Protocol(format!(
                "request of {} bytes exceeds {MAX_FRAME}",
                line.len()
            )));
        }
        self.framed.send(line).await.map_err(codec_err)?;
        loop {
            let v = self.read_line().await?;
            if v.get("event").is_some() {
                let ev = serde_json::from_value(v)
                    .map_err(|e| ClientError::Protocol(format!("bad event: {e}")))?;
                self.events.push_back(ev);
                continue;
            }
            let reply: ReplyFrame = serde_json::from_value(v)
                .map_err(|e| ClientError::Protocol(format!("bad reply: {e}")))?;
            if reply.id != Some(id) {
                // An error with no id is about the connection itself (e.g. permission_denied
                // before closing it): report it as such.
                if let (None, ReplyBody::Error(e)) = (reply.id, &reply.body) {
                    return Err(e.clone().into());
                }
                return Err(ClientError::Protocol(format!("reply id {:?} for {id}", reply.id)));
            }
            return match reply.body {
                ReplyBody::Result(r) => Ok(r),
                ReplyBody::Error(e) => Err(e.into()),
            };
        }
    }

    /// The next callback event (queued first, then from the socket).
    pub async fn next_event(&mut self) -> Result<EventFrame, ClientError> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(ev);
        }
        let v = self.read_line().await?;
        serde_json::from_value(v)
            .map_err(|e| ClientError::Protocol(format!("expected an event: {e}")))
    }

    async fn typed<T: DeserializeOwned>(&mut self, request: Request) -> Result<T, ClientError> {
        let v = self.call(request).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("bad result: {e}")))
    }

    async fn done(&mut self, request: Request) -> Result<(), ClientError> {
        self.call(request).await.map(drop)
    }

    pub async fn hello(&mut self) -> Result<HelloInfo, ClientError> {
        self.typed(Request::Hello).await
    }

    /// Makes this connection a monitor of every callback event (see [`Client::next_event`]).
    pub async fn watch(&mut self) -> Result<(), ClientError> {
        self.done(Request::Watch).await
    }

    pub async fn show(&mut self) -> Result<Snapshot, ClientError> {
        self.typed(Request::Show).await
    }

    pub async fn add_mfe(&mut self, spec: StaticMfe) -> Result<(), ClientError> {
        self.done(Request::AddMfe(spec)).await
    }

    pub async fn del_mfe(&mut self, source: Ipv4Addr, group: Ipv4Addr) -> Result<(), ClientError> {
        self.done(Request::DelMfe { source, group }).await
    }

    /// RegisterMProtocol.
    pub async fn register(&mut self, protocol: u32, component: u32) -> Result<Handle, ClientError> {
        let v = self.call(Request::Register { protocol, component }).await?;
        serde_json::from_value(v["handle"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad handle: {e}")))
    }

    pub async fn deregister(&mut self, handle: Handle) -> Result<(), ClientError> {
        self.done(Request::Deregister { handle }).await
    }

    pub async fn take_interface(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: Ipv4Addr,
    ) -> Result<(), ClientError> {
        self.done(Request::TakeInterface { handle, ifindex, nexthop }).await
    }

    pub async fn release_interface(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: Ipv4Addr,
    ) -> Result<(), ClientError> {
        self.done(Request::ReleaseInterface { handle, ifindex, nexthop }).await
    }

    /// GetProtocolOnInterface: (protocol id, component id).
    pub async fn protocol_on_interface(
        &mut self,
        ifindex: u32,
        nexthop: Ipv4Addr,
    ) -> Result<(u32, u32), ClientError> {
        let v = self.call(Request::GetProtocolOnInterface { ifindex, nexthop }).await?;
        match (v["protocol"].as_u64(), v["component"].as_u64()) {
            (Some(p), Some(c)) => Ok((p as u32, c as u32)),
            _ => Err(ClientError::Protocol(format!("bad result {v}"))),
        }
    }

    pub async fn add_membership(&mut self, args: MembershipArgs) -> Result<(), ClientError> {
        self.done(Request::AddMembership(args)).await
    }

    pub async fn delete_membership(&mut self, args: MembershipArgs) -> Result<(), ClientError> {
        self.done(Request::DeleteMembership(args)).await
    }

    pub async fn get_mfe(
        &mut self,
        source: Ipv4Addr,
        group: Ipv4Addr,
        stats: bool,
    ) -> Result<MfeReply, ClientError> {
        self.typed(Request::GetMfe { source, group, max_entries: 1, stats }).await
    }

    /// GetFirstMfe (`after` = None) or GetNextMfe.
    pub async fn get_mfes(
        &mut self,
        after: Option<(Ipv4Addr, Ipv4Addr)>,
        max_entries: usize,
        stats: bool,
    ) -> Result<PageReply<MfeReply>, ClientError> {
        let req = match after {
            None => Request::GetFirstMfe { max_entries, stats },
            Some((source, group)) => Request::GetNextMfe { source, group, max_entries, stats },
        };
        self.typed(req).await
    }

    pub async fn set_mfe(
        &mut self,
        handle: Handle,
        source: Ipv4Addr,
        group: Ipv4Addr,
        iif: Iface,
        upstream: Ipv4Addr,
    ) -> Result<(), ClientError> {
        let req = Request::SetMfe {
            handle,
            source,
            group,
            iif: iif.ifindex,
            iif_nexthop: iif.nexthop,
            upstream,
        };
        self.done(req).await
    }

    pub async fn enum_start(
        &mut self,
        handle: Handle,
        enum_type: EnumType,
    ) -> Result<EnumHandle, ClientError> {
        let v = self.call(Request::GroupEnumStart { handle, enum_type }).await?;
        serde_json::from_value(v["enum_handle"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad enum handle: {e}")))
    }

    pub async fn enum_next(
        &mut self,
        handle: Handle,
        enum_handle: EnumHandle,
        max_entries: usize,
    ) -> Result<PageReply<SourceGroupEntry>, ClientError> {
        self.typed(Request::GroupEnumNext { handle, enum_handle, max_entries }).await
    }

    pub async fn enum_end(
        &mut self,
        handle: Handle,
        enum_handle: EnumHandle,
    ) -> Result<(), ClientError> {
        self.done(Request::GroupEnumEnd { handle, enum_handle }).await
    }

    pub async fn answer_rpf(
        &mut self,
        handle: Handle,
        request: RequestId,
        ifindex: u32,
        nexthop: Ipv4Addr,
        upstream: Ipv4Addr,
    ) -> Result<(), ClientError> {
        self.done(Request::AnswerRpf { handle, request, ifindex, nexthop, upstream }).await
    }

    pub async fn answer_creation(
        &mut self,
        handle: Handle,
        request: RequestId,
        disabled: Vec<Iface>,
    ) -> Result<(), ClientError> {
        self.done(Request::AnswerCreation { handle, request, disabled }).await
    }

    pub async fn answer_prune(
        &mut self,
        handle: Handle,
        request: RequestId,
        timeout_secs: u64,
    ) -> Result<(), ClientError> {
        self.done(Request::AnswerPrune { handle, request, timeout_secs }).await
    }
}

fn codec_err(e: tokio_util::codec::LinesCodecError) -> ClientError {
    match e {
        tokio_util::codec::LinesCodecError::Io(e) => ClientError::Io(e),
        tokio_util::codec::LinesCodecError::MaxLineLengthExceeded => {
            ClientError::Protocol("reply line too long".into())
        }
    }
}
