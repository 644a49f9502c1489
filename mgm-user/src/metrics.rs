// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Prometheus endpoint (`mgmd --metrics ADDR:PORT`, off by default). On each scrape the
//! run loop hands the daemon one input and gets back a [`Sample`] of its counters and table
//! sizes, taken between two other inputs; it is encoded here in the OpenMetrics text format
//! with the Prometheus client's own encoder (`_total` counters, units in names).
//!
//! The names and what they count are listed in docs/operations.md.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
};
use tracing::warn;

use crate::{daemon::Input, proto::Status};

/// What a scrape reports, read from the daemon at once.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub status: Status,
    /// The fast path's counters by reason (`mgmctl show counters`).
    pub fastpath: BTreeMap<String, u64>,
    /// Capacities of the fast path's tables.
    pub mfe_capacity: u64,
    pub oil_capacity: u64,
    pub lease_capacity: u64,
    pub statics: u64,
    pub static_capacity: u64,
    /// Registered MGM clients, and control connections.
    pub clients: u64,
    pub connections: u64,
    /// Each managed interface's copies.
    pub interfaces: Vec<InterfaceSample>,
}

/// Copies sent to one interface and copies meant for it that did not leave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSample {
    pub name: String,
    pub copies: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// The OpenMetrics text of `sample`.
pub fn encode(sample: Sample) -> String {
    let mut registry = Registry::with_prefix("mgm");
    registry.register_collector(Box::new(sample));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String");
    out
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter per interface.
fn per_interface(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: impl Iterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut family =
        e.encode_descriptor(name, help, unit, ConstCounter::new(0u64).metric_type())?;
    for (iface, v) in values {
        ConstCounter::new(v).encode(family.encode_family(&[("interface", iface)])?)?;
    }
    Ok(())
}

impl Collector for Sample {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = &self.status;
        let e = &mut e;
        let reasons = e.encode_descriptor(
            "fastpath_packets",
            "Packets (and, for the egress_ and tc_ reasons, copies) by what the fast path did",
            None,
            ConstCounter::new(0u64).metric_type(),
        );
        let mut reasons = reasons?;
        for (reason, v) in &self.fastpath {
            ConstCounter::new(*v).encode(reasons.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let get = |n: &str| self.fastpath.get(n).copied().unwrap_or(0);
        counter(
            e,
            "upcalls",
            "Packets handed to mgmd (no MFE, wrong interface, too big)",
            get("upcall_sent"),
        )?;
        counter(e, "upcalls_lost", "Upcalls lost: the ring to mgmd was full", get("upcall_lost"))?;
        per_interface(
            e,
            "interface_copies",
            "Copies sent out of each managed interface",
            None,
            self.interfaces.iter().map(|i| (i.name.clone(), i.copies)),
        )?;
        per_interface(
            e,
            "interface_copy",
            "Bytes of the copies sent out of each managed interface (whole frames)",
            Some(&Unit::Bytes),
            self.interfaces.iter().map(|i| (i.name.clone(), i.bytes)),
        )?;
        per_interface(
            e,
            "interface_copy_drops",
            "Copies meant for each interface that did not leave (released, too big, stale)",
            None,
            self.interfaces.iter().map(|i| (i.name.clone(), i.drops)),
        )?;
        gauge(e, "mfes", "MFEs the MGM core holds", s.mfes as u64)?;
        gauge(
            e,
            "fastpath_mfes",
            "MFEs in the fast path (MGM, static, followed)",
            s.installed as u64,
        )?;
        gauge(
            e,
            "fastpath_mfes_capacity",
            "MFEs the fast path has room for, per family",
            self.mfe_capacity,
        )?;
        gauge(e, "static_mfes", "Static MFEs (configuration and add_mfe)", self.statics)?;
        gauge(
            e,
            "static_mfes_capacity",
            "Static MFEs allowed (--max-static-mfes)",
            self.static_capacity,
        )?;
        gauge(e, "oils", "Distinct outgoing lists in the fast path", s.oils as u64)?;
        gauge(e, "oils_capacity", "Outgoing lists the fast path has room for", self.oil_capacity)?;
        gauge(e, "leases_alive", "Leases of owned (interface, next hop)s", s.leases_alive as u64)?;
        gauge(e, "leases_released", "Leases released, not yet reused", s.leases_released as u64)?;
        gauge(e, "leases_capacity", "Leases the fast path has room for", self.lease_capacity)?;
        gauge(e, "pending_writes", "Fast-path writes queued", s.pending_writes as u64)?;
        gauge(
            e,
            "writes_retrying",
            "Fast-path writes that failed and wait for a retry",
            s.retrying as u64,
        )?;
        counter(e, "write_failures", "Fast-path writes that failed", s.write_failures)?;
        gauge(e, "held_mfes", "MFEs taken over from a previous mgmd, held", s.held as u64)?;
        gauge(
            e,
            "unresolved_flows",
            "New flows whose first packets are held",
            s.unresolved as u64,
        )?;
        counter(e, "first_packets_replayed", "Held first packets forwarded", s.replayed)?;
        counter(e, "first_packets_dropped", "Held first packets dropped", s.replay_dropped)?;
        counter(e, "flows_refused", "New flows refused by the creation rate", s.flows_refused)?;
        counter(e, "mfes_evicted", "MFEs evicted for room", s.mfes_evicted)?;
        counter(e, "icmpv6_too_big_sent", "ICMPv6 Packet Too Big messages sent", s.too_big_sent)?;
        counter(
            e,
            "icmpv6_too_big_limited",
            "Packet Too Big messages not sent (rate)",
            s.too_big_limited,
        )?;
        gauge(e, "clients", "Registered MGM clients (handles)", self.clients)?;
        gauge(e, "connections", "Control socket connections", self.connections)?;
        gauge(e, "interfaces", "Managed interfaces", self.interfaces.len() as u64)?;
        gauge(
            e,
            "client_backlog_bytes",
            "Replies and events clients left unread",
            s.backlog_bytes as u64,
        )?;
        gauge(
            e,
            "releases_in_progress",
            "Interface releases being done in steps",
            s.releasing as u64,
        )
    }
}

/// Connections served at once: one more is closed at once (an idle one holds its place
/// for [`REQUEST_TIMEOUT`] at most, so a scraper that does not speak cannot keep others out
/// for long).
const CONNECTIONS: usize = 64;
/// A scraper that does not send its request within this is disconnected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the daemon is gone.
pub async fn serve(listener: TcpListener, tx: mpsc::Sender<Input>) {
    let conns = Arc::new(Semaphore::new(CONNECTIONS));
    // One sample at a time: a burst of scrapes is one input of the daemon's after another,
    // never a queue that delays its clients.
    let sampling = Arc::new(Semaphore::new(1));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "metrics endpoint: accepting");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = conns.clone().try_acquire_owned() else { continue };
        let (tx, sampling) = (tx.clone(), sampling.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| respond(req, tx.clone(), sampling.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, conn).await;
            drop(place);
        });
    }
}

async fn respond(
    req: Request<Incoming>,
    tx: mpsc::Sender<Input>,
    sampling: Arc<Semaphore>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ctype));
        r
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(StatusCode::NOT_FOUND, "text/plain", "mgmd serves /metrics\n".into()));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let body = "GET /metrics\n".into();
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", body));
    }
    let Ok(_turn) = sampling.acquire().await else {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", String::new()));
    };
    let (done, sample) = oneshot::channel();
    let sample = match tx.send(Input::Metrics { done }).await {
        Ok(()) => sample.await.ok(),
        Err(_) => None,
    };
    Ok(match sample {
        Some(s) => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            encode(s),
        ),
        None => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "mgmd is stopping\n".into()),
    })
}
