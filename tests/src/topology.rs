// SPDX-License-Identifier: MIT OR Apache-2.0
//! The standard topology: a sender, a router running mgmd and receivers, in namespaces joined by
//! veth pairs, in either address family.

use super::*;

/// The standard topology: a sender, a router running mgmd, `n` receivers.
pub struct Topology {
    // Field order is drop order: mgmd goes before its namespaces.
    pub mgmd: Option<Mgmd>,
    pub sender: Netns,
    pub router: Netns,
    pub receivers: Vec<Netns>,
    pub tx: PacketSocket,
    pub sender_mac: [u8; 6],
}

pub const SOURCE: [u8; 4] = [10, 1, 0, 1];
pub const GROUP: [u8; 4] = [239, 1, 1, 1];

/// The address family a test runs in: the same flows, sockets and MGM calls over IPv4 or
/// IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The flows' group: [`GROUP`], or ff3e::8000:1.
    pub fn group(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::from(GROUP).into(),
            Self::V6 => std::net::Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 1).into(),
        }
    }

    /// The sender's address: [`SOURCE`], or 2001:db8:1::1.
    pub fn source(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::from(SOURCE).into(),
            Self::V6 => std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into(),
        }
    }

    /// The interfaces' side of this family (the next hop of a broadcast link).
    pub fn side(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Self::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    /// A UDP frame from `mac` and made-up source number `i` to the group, port `port`.
    pub fn frame_from(self, mac: [u8; 6], i: u32, port: u16, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(mac, [0; 6]);
        let (b, dst_mac) = match self {
            Self::V4 => (b.ipv4((0x0a03_0000 + i).to_be_bytes(), GROUP, 8), group_mac(GROUP)),
            Self::V6 => {
                let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                src[12..].copy_from_slice(&i.to_be_bytes());
                let std::net::IpAddr::V6(g) = self.group() else { unreachable!() };
                (b.ipv6(src, g.octets(), 8), group_mac6(&g.octets()))
            }
        };
        let b = b.udp(40000, port);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("writing to a Vec cannot fail");
        out[..6].copy_from_slice(&dst_mac);
        out
    }
}

impl Topology {
    pub fn new(receivers: usize) -> anyhow::Result<Self> {
        require_root();
        Self::around(Netns::new("rtr")?, receivers)
    }

    /// The same topology around a router namespace made elsewhere (a container's).
    pub fn around(router: Netns, receivers: usize) -> anyhow::Result<Self> {
        let sender = Netns::new("snd")?;
        veth(&sender, "s0", &router, "rin")?;
        let mut rx = Vec::new();
        for i in 1..=receivers {
            let ns = Netns::new(&format!("rx{i}"))?;
            veth(&router, &format!("r{i}"), &ns, "eth0")?;
            // XDP frames redirected into a veth are dropped unless its peer runs XDP or has
            // GRO on (docs/building.md).
            ns.exec("ethtool", &["-K", "eth0", "gro", "on"])?;
            rx.push(ns);
        }
        let tx = PacketSocket::open(&sender, "s0")?;
        let sender_mac = sender.mac("s0")?;
        Ok(Self { mgmd: None, sender, router, receivers: rx, tx, sender_mac })
    }

    /// Starts mgmd managing `rin` and every `r<i>`, with extra arguments.
    pub fn start(&mut self, extra: &[&str]) -> anyhow::Result<&Mgmd> {
        self.start_with(extra, Launch::default())
    }

    /// [`Topology::start`], launched as `launch` says.
    pub fn start_with(&mut self, extra: &[&str], launch: Launch) -> anyhow::Result<&Mgmd> {
        let mut args = vec!["--iface".to_owned(), "rin".to_owned()];
        for i in 1..=self.receivers.len() {
            args.push("--iface".into());
            args.push(format!("r{i}"));
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.mgmd = Some(Mgmd::start_with(&self.router, &args, launch)?);
        Ok(self.mgmd.as_ref().expect("just set"))
    }

    /// Where receiver `i` (0-based) may have dropped packets on its own: its IP and UDP
    /// counters that are not zero (full socket buffers, bad checksums, discards), its
    /// device's core drops and the veth pair's counters, both ends (for a failure message).
    pub fn receiver_drops(&self, i: usize) -> String {
        let rx = &self.receivers[i];
        let snmp = rx.exec("nstat", &["-as"]).map(|s| {
            s.lines()
                .filter(|l| ["Ip", "Udp", "Icmp"].iter().any(|p| l.starts_with(p)))
                .collect::<Vec<_>>()
                .join("\n")
        });
        let core = rx.exec(
            "sh",
            &[
                "-c",
                "cd /sys/class/net/eth0/statistics && \
                 grep -sH . rx_dropped rx_nohandler rx_errors rx_otherhost_dropped; true",
            ],
        );
        let peer = rx
            .exec("ethtool", &["-S", "eth0"])
            .map(|e| format!("{e}\n{}", core.unwrap_or_default().replace(':', " ")));
        let port = self.router.exec("ethtool", &["-S", &format!("r{}", i + 1)]);
        let nonzero = |r: anyhow::Result<String>| match r {
            Ok(s) => s
                .lines()
                .filter(|l| l.split_whitespace().nth(1).is_some_and(|v| v != "0"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => e.to_string(),
        };
        format!(
            "receiver {}: sockets [{}], eth0 [{}], r{} [{}]",
            i + 1,
            nonzero(snmp),
            nonzero(peer),
            i + 1,
            nonzero(port)
        )
    }

    pub fn ctl(&self) -> anyhow::Result<Ctl> {
        self.mgmd.as_ref().context("mgmd not started")?.ctl()
    }

    /// Gives every host an address so ordinary sockets work: the sender 10.1.0.1/24 (the
    /// [`SOURCE`]) with a multicast route out of s0, receiver i 10.2.i.2/24.
    pub fn add_addresses(&self) -> anyhow::Result<()> {
        self.sender.exec("ip", &["addr", "add", "10.1.0.1/24", "dev", "s0"])?;
        self.sender.exec("ip", &["route", "add", "224.0.0.0/4", "dev", "s0"])?;
        // veth offloads the UDP checksum (leaves it partial, to be finished by the stack), and
        // an XDP redirect cannot carry that state to the next device: receivers would count
        // InCsumErrors. A physical NIC always sends complete checksums; so does s0 now.
        self.sender.exec("ethtool", &["-K", "s0", "tx", "off"])?;
        for (i, ns) in self.receivers.iter().enumerate() {
            ns.exec("ip", &["addr", "add", &format!("10.2.{}.2/24", i + 1), "dev", "eth0"])?;
            ns.exec("ip", &["route", "add", "default", "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Addresses for ordinary sockets of `family` ([`Topology::add_addresses`] for IPv4; for
    /// IPv6 the sender gets 2001:db8:1::1/64 and receiver i 2001:db8:2:i::2/64, without
    /// duplicate address detection).
    pub fn add_addresses_for(&self, family: Family) -> anyhow::Result<()> {
        if family == Family::V4 {
            return self.add_addresses();
        }
        ipv6_on(&self.sender, "s0")?;
        self.sender.exec("ip", &["-6", "addr", "add", "2001:db8:1::1/64", "dev", "s0", "nodad"])?;
        self.sender.exec("ethtool", &["-K", "s0", "tx", "off"])?;
        for (i, ns) in self.receivers.iter().enumerate() {
            ipv6_on(ns, "eth0")?;
            let a = format!("2001:db8:2:{}::2/64", i + 1);
            ns.exec("ip", &["-6", "addr", "add", &a, "dev", "eth0", "nodad"])?;
        }
        Ok(())
    }

    /// A UDP socket in receiver `i` bound to `port` and joined to `family`'s group on eth0.
    pub fn udp_receiver_for(
        &self,
        family: Family,
        i: usize,
        port: u16,
    ) -> anyhow::Result<std::net::UdpSocket> {
        let std::net::IpAddr::V6(g) = family.group() else {
            return self.udp_receiver(i, GROUP, port);
        };
        let s = ipv6_listener(&self.receivers[i], g, port)?;
        // A burst must not overflow the default ~200 KiB buffer before the test reads.
        set_rcvbuf(&s, 8 << 20)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        Ok(s)
    }

    /// A UDP socket in the sender namespace bound to `family`'s source, with this hop limit.
    pub fn udp_sender_for(&self, family: Family, hops: u32) -> anyhow::Result<std::net::UdpSocket> {
        if family == Family::V4 {
            return self.udp_sender(hops);
        }
        let source = family.source();
        self.sender.enter(move || {
            let s = std::net::UdpSocket::bind((source, 0))?;
            let sock = socket2::SockRef::from(&s);
            sock.set_multicast_if_v6(nix::net::if_::if_nametoindex("s0")?)?;
            sock.set_multicast_hops_v6(hops)?;
            Ok(s)
        })
    }

    /// A UDP socket in receiver `i` (0-based) bound to `port` and joined to `group` on eth0.
    pub fn udp_receiver(
        &self,
        i: usize,
        group: [u8; 4],
        port: u16,
    ) -> anyhow::Result<std::net::UdpSocket> {
        let local: std::net::Ipv4Addr = [10, 2, i as u8 + 1, 2].into();
        self.receivers[i].enter(move || {
            let s = std::net::UdpSocket::bind(("0.0.0.0", port))?;
            s.join_multicast_v4(&group.into(), &local)?;
            // A burst must not overflow the default ~200 KiB buffer before the test reads.
            set_rcvbuf(&s, 8 << 20)?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            Ok(s)
        })
    }

    /// A UDP socket in the sender namespace, bound to the source address, with this TTL.
    pub fn udp_sender(&self, ttl: u32) -> anyhow::Result<std::net::UdpSocket> {
        self.sender.enter(move || {
            let s = std::net::UdpSocket::bind("10.1.0.1:0")?;
            s.set_multicast_ttl_v4(ttl)?;
            Ok(s)
        })
    }

    /// Opens a capture on every receiver (before sending).
    pub fn captures(&self) -> anyhow::Result<Vec<PacketSocket>> {
        self.receivers.iter().map(|ns| PacketSocket::open(ns, "eth0")).collect()
    }

    /// A UDP frame from the sender to `GROUP` with this payload and TTL.
    pub fn frame(&self, ttl: u8, payload: &[u8]) -> Vec<u8> {
        udp_frame(self.sender_mac, SOURCE, GROUP, ttl, payload)
    }
}

/// A UDP socket in `ns` bound to `port` and joined to `group` on eth0 by IPV6_JOIN_GROUP
/// (any source): the host stack reports it with MLD.
pub fn ipv6_listener(
    ns: &Netns,
    group: std::net::Ipv6Addr,
    port: u16,
) -> anyhow::Result<std::net::UdpSocket> {
    ns.enter(move || {
        let s = std::net::UdpSocket::bind(("::", port))?;
        s.join_multicast_v6(&group, nix::net::if_::if_nametoindex("eth0")?)?;
        Ok(s)
    })
}

/// IPv6 on `dev` in `ns` (the harness turns it off everywhere), without duplicate address
/// detection, so the link-local address is there at once.
pub fn ipv6_on(ns: &Netns, dev: &str) -> anyhow::Result<()> {
    for k in ["all", "default", dev] {
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")])?;
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=0")])?;
    }
    Ok(())
}
