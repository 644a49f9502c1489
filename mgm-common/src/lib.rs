// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel↔user ABI of mgm: map names, key/value layouts and counter indices shared by the
//! XDP programs (`mgm-ebpf`) and the daemon (`mgm-user`).
//!
//! Rules for every type here: `#[repr(C)]`, fixed-width integers and byte arrays only, explicit
//! zeroed padding, IPv4 addresses as `[u8; 4]` in network order (as read from the packet, so the
//! fast path never converts), ifindexes and ids in host order. Each type is declared with
//! `abi!`, which checks at compile time that it has no implicit padding, and a size check
//! sits next to it so a layout change cannot slip through on one side only. The maps
//! (`maps!`) and the counters (`counters!`) are each declared once, in one list.
#![no_std]

/// Declares an ABI type: `#[repr(C)]`, and checked at compile time to have no implicit
/// padding (its size is the sum of its fields'), so nothing uninitialised reaches the kernel
/// and both sides read the same bytes.
macro_rules! abi {
    (
        $(#[$m:meta])*
        pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident: $t:ty, )* }
    ) => {
        $(#[$m])*
        #[repr(C)]
        pub struct $name { $( $(#[$fm])* pub $f: $t, )* }
        const _: () = assert!(
            core::mem::size_of::<$name>() == 0 $( + core::mem::size_of::<$t>() )*,
            concat!(stringify!($name), " has implicit padding")
        );
    };
}

/// Declares the maps once: each one's name in the object, and whether it is pinned (kept in
/// the pin directory, so a restarted mgmd takes it over with its contents) or lives for one
/// run (scratch space). `PINNED` and `ALL` follow; a test of mgm-user checks that the object
/// has exactly `ALL`, and the loader pins exactly `PINNED`.
macro_rules! maps {
    (
        pinned { $( $(#[$pdoc:meta])* $pname:ident = $ptext:literal, )* }
        per_run { $( $(#[$rdoc:meta])* $rname:ident = $rtext:literal, )* }
    ) => {
        $( $(#[$pdoc])* pub const $pname: &str = $ptext; )*
        $( $(#[$rdoc])* pub const $rname: &str = $rtext; )*
        /// The maps kept in the pin directory.
        pub const PINNED: &[&str] = &[$( $ptext ),*];
        /// Every map of the object.
        pub const ALL: &[&str] = &[$( $ptext, )* $( $rtext ),*];
    };
}

/// Names of the maps in the eBPF object. The eBPF side declares them with these exact names.
pub mod maps {
    maps! {
        pinned {
            /// `HashMap<MfeKey, MfeValue>`: the IPv4 forwarding entries.
            MFES = "MGM_MFES",
            /// `HashMap<MfeKey6, MfeValue>`: the IPv6 forwarding entries (their counters, lists and
            /// leases share the IPv4 entries' maps and slots).
            MFES6 = "MGM_MFES6",
            /// `ArrayOfMaps<DevMapHash>`: interned outgoing interface lists, indexed by OIL id.
            OILS = "MGM_OILS",
            /// `PerCpuArray<MfeStats>`: per-MFE counters, indexed by `MfeValue::stats`.
            MFE_STATS = "MGM_MFE_STATS",
            /// `PerCpuArray<u64>`: global counters, indexed by the [`crate::counter`] constants.
            COUNTERS = "MGM_COUNTERS",
            /// `HashMap<u32, PortValue>`: per egress ifindex data used when a copy leaves.
            PORTS = "MGM_PORTS",
            /// `PerCpuArray<PortStats>`: per-interface copy counters, indexed by
            /// [`crate::PortValue::stats`] (0: none).
            PORT_STATS = "MGM_PORT_STATS",
            /// `RingBuf` of [`crate::Upcall`]: packets the fast path could not forward.
            UPCALLS = "MGM_UPCALLS",
            /// `LruHashMap<UpcallKey, UpcallSeen>`: the upcall rate limiter.
            UPCALL_SEEN = "MGM_UPCALL_SEEN",
            /// `LruHashMap<UpcallKey6, UpcallSeen>`: the same for IPv6.
            UPCALL_SEEN6 = "MGM_UPCALL_SEEN6",
            /// `LruPerCpuHashMap<OifKey, OifStats>`: per-MFE, per-outgoing-interface counters, as
            /// far as the programs keep them (see [`crate::OifStats`]).
            OIF_STATS = "MGM_OIF_STATS",
            /// `HashMap<OifKey, OifBase>` (not preallocated): written by the daemon only, pinned so
            /// that a restarted daemon reports the same copies (see [`crate::OifBase`]).
            OIF_BASE = "MGM_OIF_BASE",
            /// `HashMap<u32, HopList>` (not preallocated): the copies of OILs with next hops.
            HOPS = "MGM_HOPS",
            /// `HashMap<u32, OilPorts>` (not preallocated): the interfaces of each OIL, read only
            /// for packets longer than some interface's MTU.
            OIL_PORTS = "MGM_OIL_PORTS",
            /// `Array<u32>`: lease liveness (1 alive, 0 released), indexed by lease id.
            LEASES = "MGM_LEASES",
            /// `Array<u64>` of [`crate::config`] values the daemon sets: the heartbeat period and its
            /// liveness stamp (entries followed from the kernel's table only).
            CONFIG = "MGM_CONFIG",
            /// `PerCpuArray<u64>` by stats slot: when this CPU last left a packet of a followed
            /// entry to the kernel (the heartbeat).
            HEARTBEAT = "MGM_HEARTBEAT",
            /// `Array<u64>` by stats slot (shared by the CPUs): when a packet of a followed entry
            /// last arrived on another interface than the entry's (see
            /// [`crate::counter::PASS_IIF_MOVING`]).
            MOVED = "MGM_MOVED",
            /// `Array<u8>` indexed by UDP port: 1 when a socket of this host could receive a
            /// multicast datagram to that port (bound to the wildcard or a group address).
            LOCAL_PORTS = "MGM_LOCAL_PORTS",
            /// `HashMap<LegKey, LegEntry>`: for each (OIL, outgoing interface), the leases that put
            /// the interface in the list and the interface's MAC. The egress program drops a copy none
            /// of the leases keeps alive, and writes the MAC as the source of the others.
            LEGS = "MGM_LEGS",
        }
        per_run {
            /// `PerCpuArray<UpcallRecord>` (one entry): where an upcall is assembled.
            UPCALL_SCRATCH = "MGM_UPCALL_SCRATCH",
            /// `PerCpuArray<Scratch>` (one entry): the per-CPU copy of the headers the
            /// programs' `bpf_loop` walks read (see `mgm-ebpf/src/parse.rs`).
            SCRATCH = "MGM_SCRATCH",
        }
    }
}

/// Program names (ELF symbols), used for `program_mut` lookups.
pub mod programs {
    /// XDP ingress program attached to every managed interface.
    pub const INGRESS: &str = "mgm_xdp_ingress";
    /// Devmap egress program run on each copy, installed in every OIL entry.
    pub const EGRESS: &str = "mgm_xdp_egress";
    /// TC ingress program: makes the copies of MFEs with next hops (one per neighbour).
    pub const TC_INGRESS: &str = "mgm_tc_ingress";
}

/// Constants the loader sets in the object's read-only data before the programs are verified
/// (the verifier then prunes the branches they turn off, so a helper this kernel lacks is
/// never seen).
pub mod globals {
    /// `u8`: 1 when XDP programs may call `bpf_xdp_adjust_meta` on this kernel, so the ingress
    /// program hands the egress program its MFE's OIL and counters in front of the frame.
    /// Kernels built without it refuse the whole program; with 0 the egress program reads the
    /// MFE again for each copy.
    pub const XDP_META: &str = "MGM_XDP_META";
}

/// The benchmarks' many-flow traffic (`cargo xtask bench`): the generator program and the
/// benchmark that installs the flows' MFEs name flow `f` the same way.
pub mod bench {
    /// Groups the flows are spread over (239.2.0.0 up).
    pub const GROUPS: u32 = 16;
    /// Entries of the generator's table of flow numbers, one taken per frame in turn (a
    /// power of two).
    pub const FLOW_TABLE: u32 = 1 << 20;
    /// Entries of the lookup ceiling's table at most (the largest MFE table measured).
    pub const TABLE_MAX: u32 = 1 << 20;

    /// Flow `f`'s (source, group): source 10.128.0.0 + f / GROUPS, group 239.2.0.0 + f % GROUPS.
    pub const fn flow(f: u32) -> ([u8; 4], [u8; 4]) {
        ((0x0a80_0000 + f / GROUPS).to_be_bytes(), (0xef02_0000 + f % GROUPS).to_be_bytes())
    }
}

/// Version of the meaning of the maps (bump when a field changes meaning without changing
/// size): a restarted mgmd reuses pinned maps only if this and every size match.
pub const ABI_VERSION: u32 = 9;

/// How long after a packet of a followed entry arrives on another interface than the
/// entry's the fast path leaves that entry to the kernel ([`counter::PASS_IIF_MOVING`]):
/// long past the time mgmd takes to follow a change of the kernel's entry (milliseconds).
pub const IIF_MOVING_NS: u64 = 1_000_000_000;

/// Default capacities. The daemon may resize the hash/array maps at load time.
pub const DEFAULT_MAX_MFES: u32 = 65_536;
/// Number of distinct outgoing lists that can exist at once.
pub const MAX_OILS: u32 = 65_536;
/// Capacity of one outgoing list (inner devmap). Fixed: inner maps must match the template.
pub const MAX_OIL_PORTS: u32 = 128;
/// Capacity of the per-interface map.
pub const MAX_PORTS: u32 = 1024;
/// OIL id meaning "no outgoing interface" (a negative-cache MFE: matched traffic is dropped).
pub const OIL_EMPTY: u32 = 0;
/// Number of lease ids. A lease is one client's ownership of one (interface, next hop).
pub const MAX_LEASES: u32 = 65_536;
/// Lease of static MFEs: always alive (no client owns them).
pub const LEASE_STATIC: u32 = 0;
/// Leases one leg can name: the routing owner and IGMP of each next hop on the interface.
pub const LEG_LEASES: usize = 4;
/// No lease in this slot of a [`LegValue`].
pub const LEASE_NONE: u32 = u32::MAX;
/// Capacity of the leg map: every port of every OIL.
pub const MAX_LEGS: u32 = 262_144;
/// Capacity of the per-outgoing-interface counters (LRU: the least recently counted go).
pub const MAX_OIF_STATS: u32 = 262_144;
/// Capacity of [`maps::OIF_BASE`] (not preallocated: an entry exists only for an interface
/// of an MFE whose list changed while packets were flowing).
pub const MAX_OIF_BASES: u32 = 1 << 20;

abi! {
    /// Value of [`maps::OIL_PORTS`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OilPorts {
        pub len: u32,
        pub ifindex: [u32; MAX_OIL_PORTS as usize],
    }
}
const _: () = assert!(core::mem::size_of::<OilPorts>() == 4 + 4 * MAX_OIL_PORTS as usize);

abi! {
    /// Key of [`maps::OIF_STATS`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct OifKey {
        /// The MFE's stats slot ([`MfeValue::stats`]).
        pub slot: u32,
        pub ifindex: u32,
    }
}
const _: () = assert!(core::mem::size_of::<OifKey>() == 8);

abi! {
    /// Per-CPU counters of one managed interface (value of [`maps::PORT_STATS`]): copies that
    /// left through it, whatever their MFE, and copies meant for it that did not.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PortStats {
        pub copies: u64,
        /// Whole frames.
        pub bytes: u64,
        /// Released, longer than the MTU, or no neighbour MAC yet.
        pub drops: u64,
    }
}
const _: () = assert!(core::mem::size_of::<PortStats>() == 24);

impl PortStats {
    /// Adds another CPU's counters to this one.
    pub fn accumulate(&mut self, o: &Self) {
        self.copies += o.copies;
        self.bytes += o.bytes;
        self.drops += o.drops;
    }
}

abi! {
    /// Per-CPU counters of one outgoing interface of one MFE (MIB_IPMCAST_OIF_STATS).
    ///
    /// The XDP paths count no copy one by one (a map lookup per copy costs a quarter of the
    /// copy): the ingress program counts the packet once per MFE, and the copies sent are that
    /// count for every interface of the list, less the copies dropped after it. So in the map,
    /// for an MFE whose copies XDP makes, `out_packets` and `out_bytes` go *down* (wrapping) for
    /// each copy dropped; for an MFE with next hops the TC program counts each copy it sends. The
    /// daemon adds the two (with [`OifBase`]); what it reports is the plain count.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct OifStats {
        /// Copies sent.
        pub out_packets: u64,
        /// Bytes of those copies (whole frames).
        pub out_bytes: u64,
        /// Copies larger than the interface's MTU (not fragmented: dropped).
        pub frag_needed: u64,
        /// Copies dropped for another reason (the interface was released).
        pub out_discards: u64,
    }
}
const _: () = assert!(core::mem::size_of::<OifStats>() == 32);

impl OifStats {
    /// Adds another CPU's counters to this one (wrapping: a CPU's `out_*` may be "negative").
    pub fn accumulate(&mut self, o: &Self) {
        self.out_packets = self.out_packets.wrapping_add(o.out_packets);
        self.out_bytes = self.out_bytes.wrapping_add(o.out_bytes);
        self.frag_needed += o.frag_needed;
        self.out_discards += o.out_discards;
    }
}

abi! {
    /// The daemon's share of an outgoing interface's copy count (wrapping). Copies sent on an
    /// interface = the MFE's forwarded packets × (1 while the interface is in the list and XDP
    /// makes the copies, else 0) + this + [`OifStats::out_packets`]. When the list or the path
    /// changes, the daemon moves the difference here, so that the count goes on from where it was.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct OifBase {
        pub packets: u64,
        pub bytes: u64,
    }
}
const _: () = assert!(core::mem::size_of::<OifBase>() == 16);

/// Key of a family's MFE map: one (S,G), its addresses of `N` bytes as the packet carries them
/// (network order). One definition for both families: [`MfeKey`] (IPv4) and [`MfeKey6`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey<const N: usize> {
    pub source: [u8; N],
    pub group: [u8; N],
}

impl<const N: usize> FlowKey<N> {
    pub const fn new(source: [u8; N], group: [u8; N]) -> Self {
        Self { source, group }
    }
}

impl<const N: usize> Default for FlowKey<N> {
    fn default() -> Self {
        Self { source: [0; N], group: [0; N] }
    }
}

/// Key of the IPv4 MFE map.
pub type MfeKey = FlowKey<4>;
/// Key of the IPv6 MFE map.
pub type MfeKey6 = FlowKey<16>;
// Byte arrays only: no padding, no alignment (the programs read keys straight from packets).
const _: () = assert!(core::mem::size_of::<MfeKey>() == 8 && core::mem::align_of::<MfeKey>() == 1);
const _: () =
    assert!(core::mem::size_of::<MfeKey6>() == 32 && core::mem::align_of::<MfeKey6>() == 1);

abi! {
    /// Value of the MFE map (both families).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MfeValue {
        /// Expected incoming ifindex (host order). A packet on any other interface is not forwarded.
        pub iif: u32,
        /// OIL id (key into [`maps::OILS`]); [`OIL_EMPTY`] for an empty list.
        pub oil: u32,
        /// Slot in [`maps::MFE_STATS`].
        pub stats: u32,
        /// Smallest MTU among the outgoing interfaces (0: none known). A longer packet is still
        /// sent, but the kernel drops the copies that do not fit: the program counts them first.
        pub min_mtu: u32,
        /// [`MFE_F_HOPS`], [`MFE_F_STATIC`], [`MFE_F_KERNEL`].
        pub flags: u32,
        /// The only outgoing interface, when the list has exactly one and no next hop: the
        /// ingress program sends the copy itself (no devmap, no per-copy program). 0: broadcast.
        pub single: u32,
    }
}
const _: () = assert!(core::mem::size_of::<MfeValue>() == 24);

/// [`MfeValue::flags`]: the OIL has next hops; XDP hands matching packets to the TC program,
/// which sends one copy per (interface, next hop) addressed to that neighbour.
pub const MFE_F_HOPS: u32 = 1;
/// [`MfeValue::flags`]: installed by configuration or `add_mfe`, not by the MGM core. The
/// programs ignore it; a restarted mgmd adopts such an entry as a static one.
pub const MFE_F_STATIC: u32 = 2;
/// [`MfeValue::flags`]: mirrored from the kernel's multicast routing table (`--follow-kernel`).
/// The kernel holds the same entry, so what the fast path does not forward goes to it:
/// wrong-interface and TTL-expired packets, one packet per heartbeat period (which keeps the
/// kernel's counters, and the routing daemons reading them, alive), and every packet once the
/// daemon's liveness stamp is stale (fail open).
pub const MFE_F_KERNEL: u32 = 4;
/// [`MfeValue::flags`], with [`MFE_F_KERNEL`]: this host is itself a member of the group on
/// the incoming interface, so the kernel also delivers the packets locally. A packet a local
/// socket could receive ([`maps::LOCAL_PORTS`]; anything but an unfragmented UDP datagram)
/// goes to the kernel, which forwards and delivers it; the others are forwarded here.
pub const MFE_F_LOCAL: u32 = 8;
/// Copies one TC pass can make.
pub const MAX_HOPS: usize = 32;

/// Indices of [`maps::CONFIG`].
pub mod config {
    /// Nanoseconds between two packets of a followed entry left to the kernel, per CPU.
    pub const HEARTBEAT_NS: u32 = 0;
    /// `bpf_ktime_get_coarse_ns` when the daemon last said it was alive (0: never).
    pub const ALIVE_NS: u32 = 1;
    /// How stale the stamp may be before followed entries are left to the kernel.
    pub const STALE_NS: u32 = 2;
    pub const COUNT: u32 = 3;
}

abi! {
    /// One copy made by the TC program.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct Hop {
        pub ifindex: u32,
        /// Destination MAC of the copy; all zero: the neighbour is not resolved (no copy).
        pub mac: [u8; 6],
        /// 1: write `mac` as destination; 0: keep the group's MAC (a leg without next hop).
        pub set_dst: u8,
        pub _pad: u8,
        /// The next hop, for the control plane (an IPv6 address in network order, an IPv4 one
        /// IPv4-mapped; unspecified for a leg without one).
        pub nexthop: [u8; 16],
        pub leases: LegValue,
    }
}
const _: () = assert!(core::mem::size_of::<Hop>() == 28 + 4 * LEG_LEASES);

abi! {
    /// Value of [`maps::HOPS`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct HopList {
        pub len: u32,
        pub hops: [Hop; MAX_HOPS],
    }
}

impl MfeValue {
    pub const fn new(iif: u32, oil: u32, stats: u32) -> Self {
        Self { iif, oil, stats, min_mtu: 0, flags: 0, single: 0 }
    }
}

abi! {
    /// Per-CPU per-MFE counters. The daemon sums them over CPUs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MfeStats {
        /// Packets that matched the MFE on its incoming interface (forwarded or TTL-expired).
        pub packets: u64,
        /// Bytes of those packets (whole frame as received, L2 included).
        pub bytes: u64,
        /// Packets that matched the (S,G) on another interface (not forwarded).
        pub wrong_iif: u64,
        /// Packets that arrived with TTL ≤ 1 (not forwarded).
        pub ttl_expired: u64,
        /// Bytes of those packets.
        pub ttl_expired_bytes: u64,
    }
}
const _: () = assert!(core::mem::size_of::<MfeStats>() == 40);

impl MfeStats {
    /// Adds another CPU's counters to this one.
    pub fn accumulate(&mut self, other: &Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.wrong_iif += other.wrong_iif;
        self.ttl_expired += other.ttl_expired;
        self.ttl_expired_bytes += other.ttl_expired_bytes;
    }

    /// Packets passed on to the outgoing list (matched, TTL > 1), and their bytes.
    pub fn forwarded(&self) -> (u64, u64) {
        // Saturating: a torn read across CPUs must not wrap.
        (
            self.packets.saturating_sub(self.ttl_expired),
            self.bytes.saturating_sub(self.ttl_expired_bytes),
        )
    }
}

/// IPv6 extension headers the programs walk at most before the upper-layer header.
pub const MAX_EXT_HEADERS: usize = 4;

/// Upcall kinds.
pub const UPCALL_NO_MFE: u32 = 1;
pub const UPCALL_WRONG_IIF: u32 = 2;
/// An IPv6 packet longer than the smallest MTU of its MFE's outgoing interfaces (copies that
/// long are dropped, never fragmented): mgmd tells its source (ICMPv6 Packet Too Big).
pub const UPCALL_TOO_BIG: u32 = 3;
/// At most one upcall event per (S,G, ifindex, kind) in this many nanoseconds.
pub const UPCALL_INTERVAL_NS: u64 = 100_000_000;
/// Bytes of a packet an upcall carries at most (from the Ethernet header on): a jumbo frame.
/// A longer packet is reported, never held (`counter::UPCALL_NOT_HELD`).
pub const UPCALL_FRAME_MAX: usize = 9216;
/// Packets of an (S,G) without MFE copied whole to mgmd per interval, to be forwarded once
/// the MFE exists (the kernel's ipmr keeps a few per unresolved entry, too).
pub const UPCALL_QUEUE: u32 = 4;
/// Ring buffer size for upcalls.
pub const UPCALL_RING_BYTES: u32 = 1024 * 1024;
/// [`Upcall::flags`]: the control plane should act on it (RPF, wrong-interface callback).
pub const UPCALL_F_EVENT: u32 = 1;
/// [`Upcall::flags`]: the frame is the whole packet, to forward once its MFE exists.
pub const UPCALL_F_QUEUED: u32 = 2;
/// [`Upcall::flags`]: an IPv6 packet. `source` and `group` are zero: the addresses are the
/// frame's, in its IPv6 header (always whole in the record).
pub const UPCALL_F_IPV6: u32 = 4;

abi! {
    /// A packet the fast path did not forward and the control plane should hear about: this
    /// header, then `frame_len` bytes of the frame (Ethernet header on) in the same record.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Upcall {
        /// Network order.
        pub source: [u8; 4],
        /// Network order.
        pub group: [u8; 4],
        /// Ingress ifindex.
        pub ifindex: u32,
        /// [`UPCALL_NO_MFE`], [`UPCALL_WRONG_IIF`] or [`UPCALL_TOO_BIG`].
        pub kind: u32,
        /// [`UPCALL_F_EVENT`], [`UPCALL_F_QUEUED`].
        pub flags: u32,
        /// Bytes of frame following this header (at most [`UPCALL_FRAME_MAX`]).
        pub frame_len: u32,
    }
}
const _: () = assert!(core::mem::size_of::<Upcall>() == 24);

abi! {
    /// An upcall record as the program assembles it (per-CPU scratch: too big for the stack).
    #[derive(Clone, Copy)]
    pub struct UpcallRecord {
        pub upcall: Upcall,
        pub frame: [u8; UPCALL_FRAME_MAX],
    }
}

/// Key of a family's upcall rate limiter: a flow and where and why it came up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpcallKey<const N: usize> {
    pub flow: FlowKey<N>,
    pub ifindex: u32,
    pub kind: u32,
}
/// Key of the IPv6 upcall rate limiter.
pub type UpcallKey6 = UpcallKey<16>;
// No padding in either family's (the addresses fill whole words).
const _: () = assert!(core::mem::size_of::<UpcallKey<4>>() == 8 + 4 + 4);
const _: () = assert!(core::mem::size_of::<UpcallKey6>() == 32 + 4 + 4);

abi! {
    /// Value of the upcall rate limiter: when the interval started and how many packets were
    /// copied whole in it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct UpcallSeen {
        pub since_ns: u64,
        pub queued: u32,
        pub _pad: u32,
    }
}
const _: () = assert!(core::mem::size_of::<UpcallSeen>() == 16);

abi! {
    /// Value of [`maps::PORTS`]: what the egress program needs to know about an outgoing interface.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PortValue {
        /// MAC address of the interface, written as the source of every copy sent there
        /// (a router forwards with its own address, as the kernel does).
        pub mac: [u8; 6],
        /// IP MTU: a copy with a longer IP packet is dropped and counted (0: no check).
        pub mtu: u16,
        /// The interface's slot in `MGM_PORT_STATS` (1..=MAX_PORTS), given by the daemon's map
        /// writer; 0: not counted.
        pub stats: u32,
    }
}
const _: () = assert!(core::mem::size_of::<PortValue>() == 12);

impl PortValue {
    pub const fn new(mac: [u8; 6], mtu: u16) -> Self {
        Self { mac, mtu, stats: 0 }
    }
}

abi! {
    /// What the XDP ingress program leaves in front of a frame it broadcasts (XDP metadata), so
    /// the egress program need not look the MFE up again for every copy. Metadata survives the
    /// devmap in native mode only; in generic mode the egress program re-reads the MFE.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct CopyMeta {
        /// The OIL the frame was broadcast to.
        pub oil: u32,
        /// The MFE's stats slot.
        pub stats: u32,
    }
}
const _: () = assert!(core::mem::size_of::<CopyMeta>() == 8);

abi! {
    /// Key of [`maps::LEGS`]: one outgoing interface of one OIL.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct LegKey {
        pub oil: u32,
        pub ifindex: u32,
    }
}
const _: () = assert!(core::mem::size_of::<LegKey>() == 8);

abi! {
    /// Value of [`maps::LEGS`]: what the egress program needs for one copy, in one lookup.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct LegEntry {
        pub leases: LegValue,
        /// The outgoing interface's own MAC, the source address of the copy.
        pub src_mac: [u8; 6],
        /// The interface's [`PortValue::stats`] slot, so that counting a copy costs no lookup.
        pub port_stats: u16,
    }
}
const _: () = assert!(core::mem::size_of::<LegEntry>() == 4 * LEG_LEASES + 8);

abi! {
    /// The leases behind one leg: a copy to this interface is sent while any of them is alive.
    /// Unused slots hold [`LEASE_NONE`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct LegValue {
        pub leases: [u32; LEG_LEASES],
    }
}
const _: () = assert!(core::mem::size_of::<LegValue>() == 4 * LEG_LEASES);

impl Default for LegValue {
    fn default() -> Self {
        Self { leases: [LEASE_NONE; LEG_LEASES] }
    }
}

/// Declares the global counters once: each one's index (its place in the list), its name
/// for display, and its meaning; `COUNT` and `NAMES` follow.
macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident = $text:literal, )*) => {
        /// The counters in order: their indices.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u32)]
        enum Index {
            $( $name, )*
            Count,
        }
        $( $(#[$doc])* pub const $name: u32 = Index::$name as u32; )*
        /// Number of counters.
        pub const COUNT: u32 = Index::Count as u32;
        /// Names for display (metrics, `show`), indexed by counter.
        pub const NAMES: [&str; COUNT as usize] = [$( $text ),*];
    };
}

/// Indices into [`maps::COUNTERS`]. Every packet the XDP ingress program sees ends in exactly
/// one of the `PASS_*`, `DROP_*` and `FORWARDED` outcomes; `EGRESS_*` count the copies the
/// devmap egress program handles, `TC_*` those of the next-hop (TC) program, `UPCALL_*` the
/// records sent to mgmd.
pub mod counter {
    counters! {
        /// Neither IPv4 nor IPv6 over untagged Ethernet (ARP, VLAN-tagged...): passed to the stack.
        PASS_NOT_IPV4 = "pass_not_ipv4",
        /// IP but not to a multicast group: passed.
        PASS_NOT_MULTICAST = "pass_not_multicast",
        /// 224.0.0.0/24 (link-local control traffic: IGMP, PIM, OSPF...), or an IPv6 group of
        /// the interface-local, link-local or reserved scopes (ff00/ff01/ff02/ff0f): never routed,
        /// passed.
        PASS_LINK_LOCAL = "pass_link_local",
        /// Truncated frame, bad IHL/length/version or header checksum: passed so the kernel
        /// drops it and counts it in its own IP statistics.
        PASS_MALFORMED = "pass_malformed",
        /// Multicast with no MFE: passed.
        PASS_NO_MFE = "pass_no_mfe",
        /// Replicated to the MFE's outgoing list.
        FORWARDED = "forwarded",
        /// Matched an MFE but arrived on another interface: dropped.
        DROP_WRONG_IIF = "drop_wrong_iif",
        /// Matched an MFE with TTL ≤ 1: dropped.
        DROP_TTL = "drop_ttl",
        /// Matched an MFE whose outgoing list is empty (negative cache): dropped.
        DROP_EMPTY_OIL = "drop_empty_oil",
        /// MFE names an OIL id missing from the OIL map (a bug or a race in the writer): dropped.
        DROP_NO_OIL = "drop_no_oil",
        /// One copy sent on the XDP path (by the egress program; for an MFE with a single
        /// outgoing interface, by the ingress program).
        EGRESS_TX = "egress_tx",
        /// A copy to an interface missing from the port map: dropped.
        EGRESS_NO_PORT = "egress_no_port",
        /// An upcall was queued for the control plane.
        UPCALL_SENT = "upcall_sent",
        /// An upcall was lost: the ring buffer was full.
        UPCALL_LOST = "upcall_lost",
        /// A copy dropped because every lease behind it was released (atomic release at work).
        EGRESS_RELEASED = "egress_released",
        /// A copy dropped because its MFE or OIL changed while it was in flight.
        EGRESS_STALE = "egress_stale",
        /// A copy the kernel drops because it is larger than the outgoing interface's MTU
        /// (counted at ingress, before the redirect).
        EGRESS_TOO_BIG = "egress_too_big",
        /// Handed to the TC program (an MFE with next hops).
        PASS_TO_TC = "pass_to_tc",
        /// A copy sent by the TC program.
        TC_TX = "tc_tx",
        /// A copy the TC program did not send: its next hop's MAC is not resolved yet.
        TC_NO_NEIGHBOUR = "tc_no_neighbour",
        /// A copy the TC program did not send: every lease behind it was released.
        TC_RELEASED = "tc_released",
        /// Control traffic (IGMP, PIM, or any packet with the Router Alert option): passed to
        /// the kernel untouched, whatever its group.
        PASS_CONTROL = "pass_control",
        /// A frame not sent to a multicast or broadcast MAC: not addressed to a router as
        /// multicast, passed to the kernel (which routes it only if it was sent to this host).
        PASS_L2_UNICAST = "pass_l2_unicast",
        /// A packet of a flow without MFE too long to be held for forwarding once the MFE exists
        /// (more than `UPCALL_FRAME_MAX` bytes): the kernel had it, nothing replays it.
        UPCALL_NOT_HELD = "upcall_not_held",
        /// The copy of an MFE with a single outgoing interface, longer than that interface's MTU:
        /// dropped (never fragmented), also counted in `egress_too_big` and `frag_needed`.
        DROP_TOO_BIG = "drop_too_big",
        /// A packet of an entry followed from the kernel, left to the kernel: wrong interface,
        /// TTL ≤ 1, or the daemon's liveness stamp stale (fail open).
        PASS_KERNEL = "pass_kernel",
        /// A packet of a followed entry left to the kernel as its heartbeat.
        PASS_HEARTBEAT = "pass_heartbeat",
        /// A packet of a followed entry left to the kernel because a local socket may receive
        /// it (see [`crate::MFE_F_LOCAL`]).
        PASS_LOCAL = "pass_local",
        /// IPv6 extension headers the program does not walk (Routing, more than
        /// [`crate::MAX_EXT_HEADERS`], a Hop-by-Hop header longer than it reads): passed to the
        /// kernel untouched.
        PASS_EXT_HEADERS = "pass_ext_headers",
        /// A frame the TC program left to the kernel untouched: not a packet XDP handed over
        /// (`pass_to_tc`), or one whose MFE changed since (XDP counted why it passed).
        TC_PASS = "tc_pass",
        /// An original the TC program consumed once its copies were made (each copy is counted in
        /// `tc_tx`, `tc_no_neighbour` or `tc_released`).
        TC_CONSUMED = "tc_consumed",
        /// A frame the TC program dropped because a helper failed after it had changed the frame
        /// (tail trimmed, TTL or hop limit written): never handed on half-rewritten.
        TC_DROP_FAILED = "tc_drop_failed",
        /// A packet of a followed entry left to the kernel because a packet of the same entry
        /// arrived on another interface within [`crate::IIF_MOVING_NS`]: the kernel's incoming
        /// interface may be changing (PIM moving to the source tree), and until the flow comes in
        /// through one interface only, the kernel alone decides which copy it forwards (the fast
        /// path's entry may lag the kernel's: forwarding the old interface's copy there, as the
        /// kernel forwards the new one's, would send a datagram twice).
        PASS_IIF_MOVING = "pass_iif_moving",
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C), made of integers and byte arrays with explicit padding
    // fields and no implicit padding (checked by the size asserts above and the tests below).
    unsafe impl<const N: usize> aya::Pod for super::FlowKey<N> {}
    unsafe impl aya::Pod for super::UpcallKey<4> {}
    unsafe impl aya::Pod for super::UpcallKey6 {}
    unsafe impl aya::Pod for super::MfeValue {}
    unsafe impl aya::Pod for super::MfeStats {}
    unsafe impl aya::Pod for super::PortValue {}
    unsafe impl aya::Pod for super::PortStats {}
    unsafe impl aya::Pod for super::Upcall {}
    unsafe impl aya::Pod for super::UpcallSeen {}
    unsafe impl aya::Pod for super::OifKey {}
    unsafe impl aya::Pod for super::OilPorts {}
    unsafe impl aya::Pod for super::HopList {}
    unsafe impl aya::Pod for super::OifStats {}
    unsafe impl aya::Pod for super::OifBase {}
    unsafe impl aya::Pod for super::LegKey {}
    unsafe impl aya::Pod for super::LegValue {}
    unsafe impl aya::Pod for super::LegEntry {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn no_implicit_padding() {
        // The sum of field sizes equals the struct size: nothing uninitialised reaches the kernel.
        assert_eq!(size_of::<MfeKey>(), 4 + 4);
        assert_eq!(size_of::<MfeValue>(), 6 * 4);
        assert_eq!(size_of::<MfeStats>(), 8 * 5);
        assert_eq!(size_of::<PortValue>(), 6 + 2 + 4);
        assert_eq!(size_of::<PortStats>(), 3 * 8);
        assert_eq!(size_of::<LegEntry>(), 4 * LEG_LEASES + 6 + 2);
        assert_eq!(size_of::<CopyMeta>(), 4 + 4);
    }

    #[test]
    fn counter_names_cover_every_index() {
        assert_eq!(counter::NAMES.len(), counter::COUNT as usize);
        assert_eq!(counter::NAMES[counter::FORWARDED as usize], "forwarded");
        assert_eq!(counter::NAMES[counter::EGRESS_NO_PORT as usize], "egress_no_port");
    }

    #[test]
    fn stats_accumulate_sums_fields() {
        let s = |packets, bytes, wrong_iif, ttl_expired, ttl_expired_bytes| MfeStats {
            packets,
            bytes,
            wrong_iif,
            ttl_expired,
            ttl_expired_bytes,
        };
        let mut a = s(5, 100, 2, 3, 30);
        a.accumulate(&s(4, 50, 0, 1, 10));
        assert_eq!(a, s(9, 150, 2, 4, 40));
        assert_eq!(a.forwarded(), (5, 110));
    }

    #[test]
    fn oif_counts_may_be_negative_per_cpu() {
        let mut a = OifStats { out_packets: 0u64.wrapping_sub(2), ..Default::default() };
        a.accumulate(&OifStats { out_packets: 5, ..Default::default() });
        assert_eq!(a.out_packets, 3);
    }
}
