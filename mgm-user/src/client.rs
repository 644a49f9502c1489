// SPDX-License-Identifier: MIT OR Apache-2.0
//! Client library for the mgmd control socket: what `mgmctl` uses and what a Rust routing
//! daemon embeds.

use std::path::Path;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use crate::proto::{
    MAX_FRAME, MfeSpec, ReplyBody, ReplyFrame, Request, RequestFrame, Response, Snapshot, WireError,
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

/// One connection to mgmd. Calls are answered in order.
pub struct Client {
    framed: Framed<UnixStream, LinesCodec>,
    next_id: u64,
}

impl Client {
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            framed: Framed::new(stream, LinesCodec::new_with_max_length(usize::MAX)),
            next_id: 1,
        })
    }

    /// Sends one request and waits for its reply.
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
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
        let line = self
            .framed
            .next()
            .await
            .ok_or(ClientError::Closed)?
            .map_err(codec_err)?;
        let reply: ReplyFrame = serde_json::from_str(&line)
            .map_err(|e| ClientError::Protocol(format!("bad reply {line:?}: {e}")))?;
        if reply.id != Some(id) {
            return Err(ClientError::Protocol(format!(
                "reply id {:?} for request {id}",
                reply.id
            )));
        }
        match reply.body {
            ReplyBody::Result(r) => Ok(r),
            ReplyBody::Error(e) => Err(e.into()),
        }
    }

    pub async fn show(&mut self) -> Result<Snapshot, ClientError> {
        match self.call(Request::Show).await? {
            Response::Show(s) => Ok(s),
            other => Err(ClientError::Protocol(format!(
                "unexpected reply to show: {other:?}"
            ))),
        }
    }

    pub async fn add_mfe(&mut self, spec: MfeSpec) -> Result<(), ClientError> {
        self.call(Request::AddMfe(spec)).await.map(drop)
    }

    pub async fn del_mfe(
        &mut self,
        source: std::net::Ipv4Addr,
        group: std::net::Ipv4Addr,
    ) -> Result<(), ClientError> {
        self.call(Request::DelMfe { source, group }).await.map(drop)
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
