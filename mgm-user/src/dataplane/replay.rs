// SPDX-License-Identifier: MIT OR Apache-2.0
//! Held first packets forwarded for real once their MFE exists: through the ingress
//! program as a live-frame test run, on a thread of its own.

use super::{
    BpfFastPath,
    sys::{BPF_F_TEST_XDP_LIVE_FRAMES, prog_test_run, xdp_ctx},
};

/// Frames waiting for the replay thread, at most.
const REPLAY_QUEUE: usize = 256;

/// Forwards held packets through the ingress program for real, off the router's thread: a
/// test run waits for an RCU grace period (~16 ms here).
fn spawn_replayer(prog: std::os::fd::OwnedFd) -> std::sync::mpsc::SyncSender<(u32, Vec<u8>)> {
    use std::os::fd::AsFd as _;
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(REPLAY_QUEUE);
    std::thread::Builder::new()
        .name("mgm-replay".into())
        .spawn(move || {
            for (ifindex, frame) in rx {
                let r = prog_test_run(
                    prog.as_fd(),
                    &frame,
                    &xdp_ctx(&frame, ifindex),
                    1,
                    BPF_F_TEST_XDP_LIVE_FRAMES,
                    None,
                    None,
                );
                if let Err(e) = r {
                    tracing::warn!(ifindex, error = %e, "forwarding a held packet failed");
                }
            }
        })
        .expect("spawning a thread");
    tx
}

/// Where held packets go to be forwarded: the replay thread's queue, and the count of packets
/// dropped because it was full. The run loop holds it and carries out the daemon's
/// `ToKernel::Replay`; the daemon reads the count for its status.
#[derive(Clone, Debug)]
pub struct Replayer {
    tx: std::sync::mpsc::SyncSender<(u32, Vec<u8>)>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Replayer {
    /// Forwards `frame` as if it arrived on `ifindex` now (queued to the thread; dropped and
    /// counted if the queue is full).
    pub fn send(&self, ifindex: u32, frame: Vec<u8>) {
        if self.tx.try_send((ifindex, frame)).is_err() {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The count of packets dropped so far, shared.
    pub fn dropped(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.dropped.clone()
    }
}

impl BpfFastPath {
    /// The replay thread's handle, started now: `None` on a kernel without live-frame test
    /// runs (held packets cannot be forwarded there), or if the thread could not start.
    pub fn replayer(&self) -> Option<Replayer> {
        use std::os::fd::AsFd as _;
        if !self.live_frames {
            return None;
        }
        match self.ingress_fd.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(Replayer { tx: spawn_replayer(fd), dropped: Default::default() }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the replay thread");
                None
            }
        }
    }
}
