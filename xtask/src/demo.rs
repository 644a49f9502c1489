// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask demo`: one sender, a router running mgmd, three receivers, each in its own
//! network namespace. Ordinary UDP sockets send and receive; mgm's XDP fast path forwards.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use mgm_tests::{Topology, with_magic};

const SENT: u32 = 1000;

pub fn run(bin_dir: &Path) -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet; the harness reads this to find mgmd.
    unsafe { std::env::set_var("MGM_BIN_DIR", bin_dir) };
    crate::step("creating namespaces: sender → router (mgmd) → receivers rx1, rx2, rx3");
    let mut t = Topology::new(3)?;
    t.add_addresses()?;
    let mfe = "10.1.0.1,239.1.1.1,rin,r1+r2";
    crate::step(&format!("starting mgmd with the static MFE {mfe} (rx3 is not on the list)"));
    t.start(&["--mfe", mfe])?;
    let socks: Vec<_> =
        (0..3).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000)).collect::<Result<_, _>>()?;
    let caps = t.captures()?;
    let tx = t.udp_sender(8)?;
    crate::step(&format!("sending {SENT} UDP datagrams to 239.1.1.1:5000 from 10.1.0.1, TTL 8"));
    let magic = b"mgm-demo ";
    for i in 0..SENT {
        let mut p = magic.to_vec();
        p.extend_from_slice(format!("{i:06}").as_bytes());
        p.resize(512, b'.');
        tx.send_to(&p, ("239.1.1.1", 5000))?;
    }
    let mut ctl = t.ctl()?;
    let forwarded = crate::wait_until(Duration::from_secs(5), || {
        ctl.counter("forwarded").is_ok_and(|n| n >= u64::from(SENT))
    });
    println!();
    println!("  RECEIVER  ON OIL    DATAGRAMS DELIVERED  TTL SEEN  SOURCE MAC (router port)");
    let mut delivered_all = Vec::new();
    for (i, (sock, cap)) in socks.iter().zip(&caps).enumerate() {
        let mut delivered = 0;
        let mut buf = [0u8; 2048];
        while let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].starts_with(magic) {
                delivered += 1;
            }
        }
        delivered_all.push(delivered);
        let frames = cap.drain(Duration::from_millis(200))?;
        let frames = with_magic(&frames, magic);
        let (ttl, mac) = frames.first().map_or(("-".to_owned(), "-".to_owned()), |f| {
            (
                f[22].to_string(),
                f[6..12].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
            )
        });
        println!(
            "  rx{:<7} {:<7} {:>21} {:>9}  {}",
            i + 1,
            if i < 2 { "yes" } else { "no" },
            delivered,
            ttl,
            mac
        );
    }
    println!();
    crate::step("mgmctl show");
    let socket = &t.mgmd.as_ref().context("mgmd")?.socket;
    let out =
        Command::new(bin_dir.join("mgmctl")).arg("--socket").arg(socket).arg("show").output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    anyhow::ensure!(
        out.status.success(),
        "mgmctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(forwarded, "the fast path did not forward all {SENT} datagrams");
    crate::step("removing the namespaces");
    Ok(())
}
