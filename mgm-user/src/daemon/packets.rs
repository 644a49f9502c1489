// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packets the fast path handed up: the core hears of new flows and wrong interfaces, the
//! first packets of a flow wait for its MFE and are forwarded once it exists, and an IPv6
//! source gets a Packet Too Big for a link too small.

use super::*;

impl<D: Dataplane> Daemon<D> {
    /// An upcall from the fast path: the core hears of the packet (if the record is an
    /// event), and the first packets of a flow without MFE are held until it has one.
    pub(super) fn upcall(&mut self, u: Upcall, now: Duration) {
        let key = u.sg;
        if u.kind == upcall::Kind::TooBig {
            // Whoever owns the entry: the source must lower its path MTU.
            self.packet_too_big(&key, u.ip(), now);
            return;
        }
        if self.writer.is_outside_core(&key) {
            // A static route, or the kernel's (which queues and forwards its first packets
            // itself): not the MGM clients' business.
            return;
        }
        if u.event {
            self.manager.new_packet(key, u.ifindex, u.header(), now);
        }
        // A kernel that cannot replay: the packet went to the kernel, as without mgm; nothing
        // is held, forwarded again or counted as lost.
        let can_replay = self.writer.dataplane().can_replay();
        if u.queued && u.kind == upcall::Kind::NoMfe && can_replay {
            if self.writer.mirror().get(&key).is_some() && !self.first.is_waiting(&key) {
                // It missed an MFE installed since: it goes at once.
                self.replay(u.ifindex, u.frame);
            } else if self.manager.knows(key) {
                // (One the core will not create an MFE for is not kept: the kernel got it.)
                self.first.hold(key, u.ifindex, &u.frame, now);
            }
        }
        self.settle(now);
    }

    /// Tells the source of an IPv6 packet too long for its entry's smallest link that MTU.
    pub(super) fn packet_too_big(&mut self, key: &Sg, ip: &[u8], now: Duration) {
        let Some(mtu) = self.writer.mirror().path_mtu(key) else { return };
        let Some((to, message)) = too_big::message(ip, mtu) else {
            return;
        };
        if self.too_big.allow(now) {
            self.to_kernel.push(ToKernel::PacketTooBig { to, message });
        }
    }

    /// Has the run loop forward a held packet as if it arrived on `ifindex` now (through its
    /// `Replayer`, whose queue-full drops the status subtracts again).
    pub(super) fn replay(&mut self, ifindex: u32, frame: Vec<u8>) {
        self.to_kernel.push(ToKernel::Replay { ifindex, frame });
        self.first.replayed += 1;
    }
}
