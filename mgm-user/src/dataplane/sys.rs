// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `bpf(2)` calls aya does not wrap, through one helper: test runs of a program
//! (benchmarks, packet fuzzing, replaying held packets), the OIL pool's batch update, and the
//! element writes made from other threads (the liveness stamp, the grace period's slot 0).

use std::io;

use aya_obj::generated::{bpf_attr, bpf_cmd};

use super::BpfFastPath;

/// An all-zero `bpf_attr`, the documented initial state of every command's member.
pub(super) fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a plain C union of integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// One `bpf(2)` call: `cmd` with `attr`, whose pointers the caller keeps valid for the call.
/// The kernel writes its answers back into `attr`, on failure too.
pub(super) fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: attr is a valid bpf_attr of the size passed; what it points to outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// One map element written (create or replace) through a descriptor of the map's own: for
/// the writers that live on other threads than the `BpfFastPath` (the liveness stamp, the
/// grace period's slot 0).
pub(super) fn update_elem<K, V>(
    map: std::os::fd::BorrowedFd<'_>,
    key: &K,
    value: &V,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let mut attr = zeroed_attr();
    // Writing union fields is safe; the kernel reads the map-element member.
    attr.__bindgen_anon_2.map_fd = map.as_raw_fd() as u32;
    attr.__bindgen_anon_2.key = key as *const K as u64;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = value as *const V as u64;
    attr.__bindgen_anon_2.flags = super::BPF_ANY;
    bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// What [`BpfFastPath::test_run`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// XDP action (XDP_DROP 1, XDP_PASS 2, XDP_REDIRECT 4...).
    pub action: u32,
    /// Mean time per run in nanoseconds, as the kernel measured it.
    pub ns_per_run: u32,
    /// The frame after the program (e.g. with the TTL decremented).
    pub frame: Vec<u8>,
}

/// BPF_PROG_TEST_RUN of an XDP program on one frame as if it arrived on `ifindex` (in the
/// caller's network namespace): returns (action, ns per run) and, with `out`, the frame after
/// the program (truncated to its size). With [`BPF_F_TEST_XDP_LIVE_FRAMES`] in `flags` the
/// verdict is carried out for real, `repeat` times (a traffic generator with `XDP_TX`).
pub fn prog_test_run(
    prog: std::os::fd::BorrowedFd<'_>,
    frame: &[u8],
    ctx: &[u32],
    repeat: u32,
    flags: u32,
    out: Option<&mut Vec<u8>>,
    ctx_out: Option<&mut [u32]>,
) -> std::io::Result<(u32, u32)> {
    use std::os::fd::AsRawFd as _;
    let mut attr = zeroed_attr();
    // Writing union fields is safe; the kernel reads the `test` member.
    attr.test.prog_fd = prog.as_raw_fd() as u32;
    attr.test.data_in = frame.as_ptr() as u64;
    attr.test.data_size_in = frame.len() as u32;
    if let Some(out) = &out {
        attr.test.data_out = out.as_ptr() as u64;
        attr.test.data_size_out = out.len() as u32;
    }
    attr.test.ctx_in = ctx.as_ptr() as u64;
    attr.test.ctx_size_in = size_of_val(ctx) as u32;
    if let Some(c) = &ctx_out {
        attr.test.ctx_out = c.as_ptr() as u64;
        attr.test.ctx_size_out = size_of_val(*c) as u32;
    }
    attr.test.repeat = repeat;
    attr.test.flags = flags;
    bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel filled the `test` member.
    let (action, ns, len) =
        unsafe { (attr.test.retval, attr.test.duration, attr.test.data_size_out) };
    if let Some(out) = out {
        out.truncate(len as usize);
    }
    Ok((action, ns))
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: the test run's redirects really transmit.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The context of an XDP test run: struct xdp_md (data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex); the kernel wants data_end == the frame
/// length.
pub fn xdp_ctx(frame: &[u8], ingress_ifindex: u32) -> [u32; 6] {
    [0, frame.len() as u32, 0, ingress_ifindex, 0, 0]
}

impl BpfFastPath {
    /// Runs the ingress program once per `repeat` on `frame` as if it arrived on
    /// `ingress_ifindex` (BPF_PROG_TEST_RUN, which aya 0.14 does not wrap). Nothing is
    /// transmitted: a redirect is only reported as the action. For benchmarks and packet
    /// fuzzing; the maps are the live ones, so counters move.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> std::io::Result<TestRun> {
        use std::os::fd::AsFd as _;
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = xdp_ctx(frame, ingress_ifindex);
        let mut ctx_out = ctx;
        let fd = self.ingress_fd.as_fd();
        let r = prog_test_run(fd, frame, &ctx, repeat, 0, Some(&mut out), Some(&mut ctx_out))?;
        // The kernel hands back the metadata in front of the frame; `data` is its length.
        out.drain(..(ctx_out[0] as usize).min(out.len()));
        Ok(TestRun { action: r.0, ns_per_run: r.1, frame: out })
    }

    /// Runs the TC program once on `frame` as if it arrived on `ingress_ifindex` (which must
    /// exist in the caller's network namespace). Its copies are really sent; `frame` in the
    /// result is the packet after the last of them was made; `action` the TC verdict.
    pub fn test_run_tc(&self, frame: &[u8], ingress_ifindex: u32) -> std::io::Result<TestRun> {
        use std::os::fd::AsFd as _;
        let mut out = vec![0u8; frame.len() + 256];
        // struct __sk_buff up to `ifindex`: the arriving interface (skb_iif) and the device.
        let mut ctx = [0u32; 11];
        ctx[9] = ingress_ifindex;
        ctx[10] = ingress_ifindex;
        let r = prog_test_run(self.tc_fd.as_fd(), frame, &ctx, 1, 0, Some(&mut out), None)?;
        Ok(TestRun { action: r.0, ns_per_run: r.1, frame: out })
    }
}
