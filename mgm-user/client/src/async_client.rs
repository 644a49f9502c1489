// SPDX-License-Identifier: MIT OR Apache-2.0
//! The async client: one connection on tokio.

use std::{net::IpAddr, path::Path};

use futures_util::{SinkExt as _, StreamExt as _};
use mgm_proto::{
    self as proto, EventFrame, HelloInfo, MembershipArgs, Method, MfeReply, PageReply, Snapshot,
    StaticMfe, Status, WireError,
    types::{EnumHandle, EnumType, Handle, Iface, RequestId, SourceGroupEntry},
};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use crate::{ClientError, Session};

/// One connection to mgmd.
pub struct Client {
    framed: Framed<UnixStream, LinesCodec>,
    session: Session,
}

impl Client {
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
        Ok(Self {
            framed: Framed::new(stream, LinesCodec::new_with_max_length(usize::MAX)),
            session: Session::new(),
        })
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        self.framed.next().await.ok_or(ClientError::Closed)?.map_err(codec_err)
    }

    /// Sends one request and waits for its reply; events arriving meanwhile are queued.
    pub async fn call<M: Method>(&mut self, method: M) -> Result<M::Reply, ClientError> {
        let (id, line) = self.session.encode(method)?;
        self.framed.send(line).await.map_err(codec_err)?;
        Ok(self.reply::<M>(id).await??)
    }

    /// Sends several requests of one method at once and then reads their replies (mgmd
    /// answers in request order): one round trip for the lot instead of one each. Each
    /// request's outcome comes back in order; `Err` only for the connection itself.
    pub async fn call_all<M: Method>(
        &mut self,
        methods: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Result<M::Reply, WireError>>, ClientError> {
        let mut ids = Vec::new();
        for method in methods {
            let (id, line) = self.session.encode(method)?;
            self.framed.feed(line).await.map_err(codec_err)?;
            ids.push(id);
        }
        futures_util::SinkExt::<String>::flush(&mut self.framed).await.map_err(codec_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.reply::<M>(id).await?);
        }
        Ok(out)
    }

    /// The reply to request `id` (events arriving first are queued): the server's answer,
    /// or `Err` for the connection itself.
    async fn reply<M: Method>(
        &mut self,
        id: u64,
    ) -> Result<Result<M::Reply, WireError>, ClientError> {
        loop {
            let line = self.read_line().await?;
            if let Some(reply) = self.session.accept::<M>(id, &line)? {
                return Ok(reply);
            }
        }
    }

    /// The next callback event (queued first, then from the socket).
    pub async fn next_event(&mut self) -> Result<EventFrame, ClientError> {
        if let Some(ev) = self.session.next_queued_event() {
            return Ok(ev);
        }
        let line = self.read_line().await?;
        self.session.event(&line)
    }

    pub async fn hello(&mut self) -> Result<HelloInfo, ClientError> {
        self.call(proto::Hello {}).await
    }

    /// Makes this connection a monitor of every callback event (see [`Client::next_event`]).
    pub async fn watch(&mut self) -> Result<(), ClientError> {
        self.call(proto::Watch {}).await.map(drop)
    }

    pub async fn show(&mut self) -> Result<Snapshot, ClientError> {
        self.call(proto::Show::default()).await
    }

    pub async fn status(&mut self) -> Result<Status, ClientError> {
        self.call(proto::GetStatus {}).await
    }

    pub async fn add_mfe(&mut self, spec: StaticMfe) -> Result<(), ClientError> {
        self.call(spec).await.map(drop)
    }

    pub async fn del_mfe(&mut self, source: IpAddr, group: IpAddr) -> Result<(), ClientError> {
        self.call(proto::DelMfe { source, group }).await.map(drop)
    }

    /// RegisterMProtocol.
    pub async fn register(&mut self, protocol: u32, component: u32) -> Result<Handle, ClientError> {
        Ok(self.call(proto::Register { protocol, component }).await?.handle)
    }

    pub async fn deregister(&mut self, handle: Handle) -> Result<(), ClientError> {
        self.call(proto::Deregister { handle }).await.map(drop)
    }

    pub async fn take_interface(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: impl Into<IpAddr>,
    ) -> Result<(), ClientError> {
        let nexthop = nexthop.into();
        self.call(proto::TakeInterface { handle, ifindex, nexthop }).await.map(drop)
    }

    pub async fn release_interface(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: impl Into<IpAddr>,
    ) -> Result<(), ClientError> {
        let nexthop = nexthop.into();
        self.call(proto::ReleaseInterface { handle, ifindex, nexthop }).await.map(drop)
    }

    /// GetProtocolOnInterface: (protocol id, component id).
    pub async fn protocol_on_interface(
        &mut self,
        ifindex: u32,
        nexthop: impl Into<IpAddr>,
    ) -> Result<(u32, u32), ClientError> {
        let nexthop = nexthop.into();
        let r = self.call(proto::GetProtocolOnInterface { ifindex, nexthop }).await?;
        Ok((r.protocol, r.component))
    }

    pub async fn add_membership(&mut self, args: MembershipArgs) -> Result<(), ClientError> {
        self.call(proto::AddMembership(args)).await.map(drop)
    }

    pub async fn delete_membership(&mut self, args: MembershipArgs) -> Result<(), ClientError> {
        self.call(proto::DeleteMembership(args)).await.map(drop)
    }

    pub async fn get_mfe(
        &mut self,
        source: impl Into<IpAddr>,
        group: impl Into<IpAddr>,
        stats: bool,
    ) -> Result<MfeReply, ClientError> {
        let (source, group) = (source.into(), group.into());
        self.call(proto::GetMfe { source, group, max_entries: 1, stats }).await
    }

    /// GetFirstMfe (`after` = None) or GetNextMfe.
    pub async fn get_mfes(
        &mut self,
        after: Option<(IpAddr, IpAddr)>,
        max_entries: usize,
        stats: bool,
    ) -> Result<PageReply<MfeReply>, ClientError> {
        match after {
            None => self.call(proto::GetFirstMfe { max_entries, stats }).await,
            Some((source, group)) => {
                self.call(proto::GetNextMfe { source, group, max_entries, stats }).await
            }
        }
    }

    pub async fn set_mfe(
        &mut self,
        handle: Handle,
        source: impl Into<IpAddr>,
        group: impl Into<IpAddr>,
        iif: Iface,
        upstream: impl Into<IpAddr>,
    ) -> Result<(), ClientError> {
        let req = proto::SetMfe {
            handle,
            source: source.into(),
            group: group.into(),
            iif: iif.ifindex,
            iif_nexthop: Some(iif.nexthop),
            upstream: Some(upstream.into()),
        };
        self.call(req).await.map(drop)
    }

    pub async fn enum_start(
        &mut self,
        handle: Handle,
        enum_type: EnumType,
    ) -> Result<EnumHandle, ClientError> {
        Ok(self.call(proto::GroupEnumStart { handle, enum_type }).await?.enum_handle)
    }

    pub async fn enum_next(
        &mut self,
        handle: Handle,
        enum_handle: EnumHandle,
        max_entries: usize,
    ) -> Result<PageReply<SourceGroupEntry>, ClientError> {
        self.call(proto::GroupEnumNext { handle, enum_handle, max_entries }).await
    }

    pub async fn enum_end(
        &mut self,
        handle: Handle,
        enum_handle: EnumHandle,
    ) -> Result<(), ClientError> {
        self.call(proto::GroupEnumEnd { handle, enum_handle }).await.map(drop)
    }

    pub async fn answer_rpf(
        &mut self,
        handle: Handle,
        request: RequestId,
        ifindex: u32,
        nexthop: impl Into<IpAddr>,
        upstream: impl Into<IpAddr>,
    ) -> Result<(), ClientError> {
        let (nexthop, upstream) = (Some(nexthop.into()), Some(upstream.into()));
        self.call(proto::AnswerRpf { handle, request, ifindex, nexthop, upstream }).await.map(drop)
    }

    pub async fn answer_creation(
        &mut self,
        handle: Handle,
        request: RequestId,
        disabled: Vec<Iface>,
    ) -> Result<(), ClientError> {
        self.call(proto::AnswerCreation { handle, request, disabled }).await.map(drop)
    }

    pub async fn answer_prune(
        &mut self,
        handle: Handle,
        request: RequestId,
        timeout_secs: u64,
    ) -> Result<(), ClientError> {
        self.call(proto::AnswerPrune { handle, request, timeout_secs }).await.map(drop)
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
