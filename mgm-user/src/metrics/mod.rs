// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Prometheus endpoint (`mgmd --metrics ADDR:PORT`, off by default). On each scrape the
//! run loop hands the daemon one input and gets back a [`Sample`] of its counters and table
//! sizes, taken between two other inputs; with the process's own figures (/proc) it is
//! encoded in the format the scraper asked for ([`text`]: Prometheus 0.0.4 or OpenMetrics).
//!
//! The names and what they count are listed in docs/operations.md.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
};
use tracing::warn;

use crate::proto::Status;

mod process;
pub mod text;

pub use text::Format;
use text::{Family, Kind, Value};

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

/// `sample` and this process, in `format`.
pub fn encode(sample: &Sample, format: Format) -> String {
    let mut all = families(sample);
    all.extend(process::families());
    text::encode(&all, format)
}

/// What a fast-path counter counts: the families a reason goes to, so that a sum over one
/// family's reasons is a count of one thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// Every packet the XDP ingress program sees ends in exactly one outcome.
    Packets,
    /// Every copy of a forwarded packet ends in exactly one outcome (XDP egress or TC).
    Copies,
    /// Every frame the TC program sees ends in exactly one outcome.
    TcFrames,
    /// Upcalls to mgmd: their own families.
    Upcalls,
}

fn counted(reason: &str) -> Option<Counted> {
    use Counted::*;
    Some(match reason {
        "forwarded" => Packets,
        r if r.starts_with("pass_") || r.starts_with("drop_") => Packets,
        "egress_tx" | "egress_no_port" | "egress_released" | "egress_stale" | "egress_too_big"
        | "tc_tx" | "tc_no_neighbour" | "tc_released" => Copies,
        "tc_pass" | "tc_consumed" | "tc_drop_failed" => TcFrames,
        "upcall_sent" | "upcall_lost" | "upcall_not_held" => Upcalls,
        _ => return None,
    })
}

/// The daemon's families.
fn families(sample: &Sample) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let s = &sample.status;
    let mut out = vec![
        Family::new("mgm_build", Kind::Info, "The mgm build that runs")
            .with(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], Value::Int(1)),
    ];
    let by_reason = |name: &str, help: &'static str, what: Counted| {
        let mut f = Family::new(name, Counter, help);
        for (reason, v) in &sample.fastpath {
            if counted(reason) == Some(what) {
                f.sample(vec![("reason", reason.clone())], Value::Int(*v));
            }
        }
        f
    };
    out.push(by_reason(
        "mgm_fastpath_packets",
        "Packets the XDP program saw, by what became of each (one reason per packet)",
        Counted::Packets,
    ));
    out.push(by_reason(
        "mgm_fastpath_copies",
        "Copies of forwarded packets, by what became of each (one reason per copy)",
        Counted::Copies,
    ));
    out.push(by_reason(
        "mgm_tc_frames",
        "Frames the TC program (next hops) saw, by what became of each",
        Counted::TcFrames,
    ));
    let get = |n: &str| Value::Int(sample.fastpath.get(n).copied().unwrap_or(0));
    out.push(
        Family::new(
            "mgm_upcalls",
            Counter,
            "Packets handed to mgmd (no MFE, wrong interface, too big)",
        )
        .one(get("upcall_sent")),
    );
    out.push(
        Family::new("mgm_upcalls_lost", Counter, "Upcalls lost: the ring to mgmd was full")
            .one(get("upcall_lost")),
    );
    out.push(
        Family::new(
            "mgm_first_packets_not_held",
            Counter,
            "Packets of new flows too long to be held until their MFE exists",
        )
        .one(get("upcall_not_held")),
    );
    let per_interface = |name: &str, help: &'static str, v: fn(&InterfaceSample) -> u64| {
        let mut f = Family::new(name, Counter, help);
        for i in &sample.interfaces {
            f.sample(vec![("interface", i.name.clone())], Value::Int(v(i)));
        }
        f
    };
    out.push(per_interface(
        "mgm_interface_copies",
        "Copies sent out of each managed interface",
        |i| i.copies,
    ));
    out.push(
        per_interface(
            "mgm_interface_copy_bytes",
            "Bytes of the copies sent out of each managed interface (whole frames)",
            |i| i.bytes,
        )
        .unit("bytes"),
    );
    out.push(per_interface(
        "mgm_interface_copy_drops",
        "Copies meant for each interface that did not leave (released, too big, stale)",
        |i| i.drops,
    ));
    let n = |v: usize| v as u64;
    let one_value: [(&str, Kind, &'static str, u64); 26] = [
        ("mgm_mfes", Gauge, "MFEs the MGM core holds", n(s.mfes)),
        (
            "mgm_fastpath_mfes",
            Gauge,
            "MFEs in the fast path (MGM, static, followed)",
            n(s.installed),
        ),
        (
            "mgm_fastpath_mfes_capacity",
            Gauge,
            "MFEs the fast path has room for, per family",
            sample.mfe_capacity,
        ),
        ("mgm_static_mfes", Gauge, "Static MFEs (configuration and add_mfe)", sample.statics),
        (
            "mgm_static_mfes_capacity",
            Gauge,
            "Static MFEs allowed (--max-static-mfes)",
            sample.static_capacity,
        ),
        ("mgm_oils", Gauge, "Distinct outgoing lists in the fast path", n(s.oils)),
        (
            "mgm_oils_capacity",
            Gauge,
            "Outgoing lists the fast path has room for",
            sample.oil_capacity,
        ),
        ("mgm_leases_alive", Gauge, "Leases of owned (interface, next hop)s", n(s.leases_alive)),
        ("mgm_leases_released", Gauge, "Leases released, not yet reused", n(s.leases_released)),
        ("mgm_leases_capacity", Gauge, "Leases the fast path has room for", sample.lease_capacity),
        ("mgm_pending_writes", Gauge, "Fast-path writes queued", n(s.pending_writes)),
        (
            "mgm_writes_retrying",
            Gauge,
            "Fast-path writes that failed and wait for a retry",
            n(s.retrying),
        ),
        ("mgm_write_failures", Counter, "Fast-path writes that failed", s.write_failures),
        ("mgm_held_mfes", Gauge, "MFEs taken over from a previous mgmd, held", n(s.held)),
        ("mgm_unresolved_flows", Gauge, "New flows whose first packets are held", n(s.unresolved)),
        ("mgm_first_packets_replayed", Counter, "Held first packets forwarded", s.replayed),
        ("mgm_first_packets_dropped", Counter, "Held first packets dropped", s.replay_dropped),
        ("mgm_flows_refused", Counter, "New flows refused by the creation rate", s.flows_refused),
        ("mgm_mfes_evicted", Counter, "MFEs evicted for room", s.mfes_evicted),
        ("mgm_icmpv6_too_big_sent", Counter, "ICMPv6 Packet Too Big messages sent", s.too_big_sent),
        (
            "mgm_icmpv6_too_big_limited",
            Counter,
            "Packet Too Big messages not sent (rate)",
            s.too_big_limited,
        ),
        ("mgm_clients", Gauge, "Registered MGM clients (handles)", sample.clients),
        ("mgm_connections", Gauge, "Control socket connections", sample.connections),
        ("mgm_interfaces", Gauge, "Managed interfaces", n(sample.interfaces.len())),
        (
            "mgm_client_backlog_bytes",
            Gauge,
            "Replies and events clients left unread",
            n(s.backlog_bytes),
        ),
        (
            "mgm_releases_in_progress",
            Gauge,
            "Interface releases being done in steps",
            n(s.releasing),
        ),
    ];
    for (name, kind, help, v) in one_value {
        let f = Family::new(name, kind, help).one(Value::Int(v));
        out.push(if name.ends_with("_bytes") { f.unit("bytes") } else { f });
    }
    out
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
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let Ok(_turn) = sampling.acquire().await else {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", String::new()));
    };
    let (done, sample) = oneshot::channel();
    let sample = match tx.send(Scrape { done }.into()).await {
        Ok(()) => sample.await.ok(),
        Err(_) => None,
    };
    Ok(match sample {
        Some(s) => reply(StatusCode::OK, format.content_type(), encode(&s, format)),
        None => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "mgmd is stopping\n".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter of the programs is in one family, so no sum mixes packets and copies.
    #[test]
    fn every_fast_path_counter_belongs_to_one_family() {
        for name in mgm_common::counter::NAMES {
            assert!(counted(name).is_some(), "{name} is in no family");
        }
    }
}
