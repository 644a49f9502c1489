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

use crate::proto::Status;

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

enum Kind {
    Counter,
    Gauge,
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
        use Kind::{Counter, Gauge};
        let n = |v: usize| v as u64;
        let one_value: [(&str, Kind, &str, u64); 26] = [
            ("mfes", Gauge, "MFEs the MGM core holds", n(s.mfes)),
            (
                "fastpath_mfes",
                Gauge,
                "MFEs in the fast path (MGM, static, followed)",
                n(s.installed),
            ),
            (
                "fastpath_mfes_capacity",
                Gauge,
                "MFEs the fast path has room for, per family",
                self.mfe_capacity,
            ),
            ("static_mfes", Gauge, "Static MFEs (configuration and add_mfe)", self.statics),
            (
                "static_mfes_capacity",
                Gauge,
                "Static MFEs allowed (--max-static-mfes)",
                self.static_capacity,
            ),
            ("oils", Gauge, "Distinct outgoing lists in the fast path", n(s.oils)),
            (
                "oils_capacity",
                Gauge,
                "Outgoing lists the fast path has room for",
                self.oil_capacity,
            ),
            ("leases_alive", Gauge, "Leases of owned (interface, next hop)s", n(s.leases_alive)),
            ("leases_released", Gauge, "Leases released, not yet reused", n(s.leases_released)),
            ("leases_capacity", Gauge, "Leases the fast path has room for", self.lease_capacity),
            ("pending_writes", Gauge, "Fast-path writes queued", n(s.pending_writes)),
            (
                "writes_retrying",
                Gauge,
                "Fast-path writes that failed and wait for a retry",
                n(s.retrying),
            ),
            ("write_failures", Counter, "Fast-path writes that failed", s.write_failures),
            ("held_mfes", Gauge, "MFEs taken over from a previous mgmd, held", n(s.held)),
            ("unresolved_flows", Gauge, "New flows whose first packets are held", n(s.unresolved)),
            ("first_packets_replayed", Counter, "Held first packets forwarded", s.replayed),
            ("first_packets_dropped", Counter, "Held first packets dropped", s.replay_dropped),
            ("flows_refused", Counter, "New flows refused by the creation rate", s.flows_refused),
            ("mfes_evicted", Counter, "MFEs evicted for room", s.mfes_evicted),
            ("icmpv6_too_big_sent", Counter, "ICMPv6 Packet Too Big messages sent", s.too_big_sent),
            (
                "icmpv6_too_big_limited",
                Counter,
                "Packet Too Big messages not sent (rate)",
                s.too_big_limited,
            ),
            ("clients", Gauge, "Registered MGM clients (handles)", self.clients),
            ("connections", Gauge, "Control socket connections", self.connections),
            ("interfaces", Gauge, "Managed interfaces", n(self.interfaces.len())),
            (
                "client_backlog_bytes",
                Gauge,
                "Replies and events clients left unread",
                n(s.backlog_bytes),
            ),
            (
                "releases_in_progress",
                Gauge,
                "Interface releases being done in steps",
                n(s.releasing),
            ),
        ];
        for (name, kind, help, v) in one_value {
            match kind {
                Counter => counter(e, name, help, v)?,
                Gauge => gauge(e, name, help, v)?,
            }
        }
        Ok(())
    }
}

/// Connections served at once. When all are taken, a new connection takes the place of the
/// one that has waited longest without sending a complete request: clients that connect and
/// stall (or send half a request and reconnect when closed) only ever displace each other,
/// while a real scraper, whose request follows its connection within a round trip, is
/// served before 64 more connections arrive.
const CONNECTIONS: usize = 64;
/// A scraper that does not send its request within this is disconnected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections still waiting for their request, oldest first, each with the sender
/// that closes it.
#[derive(Clone, Default)]
struct Waiting(Arc<std::sync::Mutex<BTreeMap<u64, oneshot::Sender<()>>>>);

impl Waiting {
    fn insert(&self, id: u64, close: oneshot::Sender<()>) {
        self.0.lock().expect("not poisoned").insert(id, close);
    }

    /// Connection `id` sent its request (or ended): it can no longer be displaced.
    fn remove(&self, id: u64) {
        self.0.lock().expect("not poisoned").remove(&id);
    }

    /// Closes the connection that has waited longest; false if none is waiting.
    fn close_oldest(&self) -> bool {
        let oldest = self.0.lock().expect("not poisoned").pop_first();
        oldest.map(|(_, close)| close.send(())).is_some()
    }
}

/// A scrape, for the daemon: the [`Sample`] goes to `done`.
#[derive(Debug)]
pub struct Scrape {
    pub done: oneshot::Sender<Sample>,
}

/// Serves `GET /metrics` on `listener` until the daemon is gone.
pub async fn serve<T>(listener: TcpListener, tx: mpsc::Sender<T>)
where
    T: From<Scrape> + Send + 'static,
{
    let conns = Arc::new(Semaphore::new(CONNECTIONS));
    // One sample at a time: a burst of scrapes is one input of the daemon's after another,
    // never a queue that delays its clients.
    let sampling = Arc::new(Semaphore::new(1));
    let waiting = Waiting::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "metrics endpoint: accepting");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let place = match conns.clone().try_acquire_owned() {
            Ok(p) => p,
            // Full: the stalest silent connection makes room (its task ends at once).
            Err(_) if waiting.close_oldest() => {
                let freed = conns.clone().acquire_owned();
                match tokio::time::timeout(Duration::from_millis(100), freed).await {
                    Ok(Ok(p)) => p,
                    _ => continue,
                }
            }
            Err(_) => continue,
        };
        next_id += 1;
        let id = next_id;
        let (close, closed) = oneshot::channel();
        waiting.insert(id, close);
        let (tx, sampling, waiting) = (tx.clone(), sampling.clone(), waiting.clone());
        tokio::spawn(async move {
            let w = waiting.clone();
            let service = hyper::service::service_fn(move |req| {
                w.remove(id);
                respond(req, tx.clone(), sampling.clone())
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, conn) => {}
                // Only a close sent by `close_oldest`: the sender is also dropped (an error
                // here) once the request has arrived, and the connection goes on then.
                Ok(()) = closed => {}
            }
            waiting.remove(id);
            drop(place);
        });
    }
}

async fn respond<T: From<Scrape>>(
    req: Request<Incoming>,
    tx: mpsc::Sender<T>,
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
    let sample = match tx.send(Scrape { done }.into()).await {
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
