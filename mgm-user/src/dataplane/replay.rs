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

impl BpfFastPath {
    /// Forwards a packet that arrived on `ifindex` before its MFE existed, through the
    /// ingress program as if it arrived now (BPF_PROG_TEST_RUN with live frames). Queued to a
    /// thread; returns false if that queue is full (the packet is dropped).
    pub fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool {
        use std::os::fd::AsFd as _;
        if !self.live_frames {
            return false;
        }
        if self.replayer.is_none() {
            match self.ingress_fd.as_fd().try_clone_to_owned() {
                Ok(fd) => self.replayer = Some(spawn_replayer(fd)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the replay thread");
                    return false;
                }
            }
        }
        self.replayer.as_ref().is_some_and(|tx| tx.try_send((ifindex, frame)).is_ok())
    }
}
