/* mgm.h: the MGM API (RRAS names, structures and result codes) for mgmd, in Linux
 * types. Generated from libmgm's Rust definitions by cbindgen: do not edit. See libmgm(3). */

#ifndef MGM_H
#define MGM_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

/**
 * The size of RRAS's open arrays at the end of a structure (`[ANY_SIZE]`).
 */
#define ANY_SIZE 1

/**
 * RRAS's `DWORD`.
 */
typedef uint32_t DWORD;

/**
 * mgm: the connection to mgmd is gone. Every handle of it is dead (mgmd released and
 * deregistered them); register again once mgmd is back.
 */
typedef void (*PMGM_CONNECTION_LOST_CALLBACK)(void);

/**
 * RRAS's `PDWORD`.
 */
typedef DWORD *PDWORD;

/**
 * RRAS's `BYTE`.
 */
typedef uint8_t BYTE;

/**
 * RRAS's `PBYTE`.
 */
typedef BYTE *PBYTE;

/**
 * RPF: the incoming interface for a new MFE. `*pdwInIfIndex`, `*pdwInIfNextHopAddr` and
 * `*pdwUpStreamNbr` hold the proposal (where the packet arrived) and take the answer;
 * `pbPacketHdr` is the packet's first `dwHdrSize` bytes. `pbRoute` is NULL (mgm has no
 * route structure to give). Any return value is taken as NO_ERROR.
 */
typedef DWORD (*PMGM_RPF_CALLBACK)(DWORD dwSourceAddr,
                                   DWORD dwSourceMask,
                                   DWORD dwGroupAddr,
                                   DWORD dwGroupMask,
                                   PDWORD pdwInIfIndex,
                                   PDWORD pdwInIfNextHopAddr,
                                   PDWORD pdwUpStreamNbr,
                                   DWORD dwHdrSize,
                                   PBYTE pbPacketHdr,
                                   PBYTE pbRoute);

/**
 * RRAS's `BOOL`: 0 is false.
 */
typedef int BOOL;

/**
 * An interface of a new MFE in a creation alert (`MGM_IF_ENTRY`): clear `bIsEnabled` to
 * keep it out of the MFE for its lifetime.
 */
typedef struct {
  DWORD dwIfIndex;
  DWORD dwIfNextHopAddr;
  /**
   * IGMP is on the interface.
   */
  BOOL bIGMP;
  BOOL bIsEnabled;
} MGM_IF_ENTRY;

/**
 * A pointer to [`MGM_IF_ENTRY`].
 */
typedef MGM_IF_ENTRY *PMGM_IF_ENTRY;

/**
 * Creation alert: a new MFE leaves by `dwIfCount` of this protocol's interfaces; clear
 * `bIsEnabled` of those it must not leave by.
 */
typedef DWORD (*PMGM_CREATION_ALERT_CALLBACK)(DWORD dwSourceAddr,
                                              DWORD dwSourceMask,
                                              DWORD dwGroupAddr,
                                              DWORD dwGroupMask,
                                              DWORD dwInIfIndex,
                                              DWORD dwInIfNextHopAddr,
                                              DWORD dwIfCount,
                                              PMGM_IF_ENTRY pmieOutIfList);

/**
 * Prune alert. With `bMemberDelete` false (an MFE's outgoing list became empty),
 * `*pdwTimeout` holds the MFE's timeout in seconds and takes the answer.
 */
typedef DWORD (*PMGM_PRUNE_ALERT_CALLBACK)(DWORD dwSourceAddr,
                                           DWORD dwSourceMask,
                                           DWORD dwGroupAddr,
                                           DWORD dwGroupMask,
                                           DWORD dwIfIndex,
                                           DWORD dwIfNextHopAddr,
                                           BOOL bMemberDelete,
                                           PDWORD pdwTimeout);

/**
 * Join alert: the first join state for an entry (`bMemberUpdate` true), or an MFE whose
 * incoming interface this protocol owns gained an outgoing interface (false).
 */
typedef DWORD (*PMGM_JOIN_ALERT_CALLBACK)(DWORD dwSourceAddr,
                                          DWORD dwSourceMask,
                                          DWORD dwGroupAddr,
                                          DWORD dwGroupMask,
                                          BOOL bMemberUpdate);

/**
 * A packet of (S,G) arrived on this protocol's interface, which is not the MFE's
 * incoming one.
 */
typedef DWORD (*PMGM_WRONG_IF_CALLBACK)(DWORD dwSourceAddr,
                                        DWORD dwGroupAddr,
                                        DWORD dwIfIndex,
                                        DWORD dwIfNextHopAddr,
                                        DWORD dwHdrSize,
                                        PBYTE pbPacketHdr);

/**
 * Local join or leave: IGMP added or deleted a membership on an interface this routing
 * protocol shares with it.
 */
typedef DWORD (*PMGM_LOCAL_JOIN_CALLBACK)(DWORD dwSourceAddr,
                                          DWORD dwSourceMask,
                                          DWORD dwGroupAddr,
                                          DWORD dwGroupMask,
                                          DWORD dwIfIndex,
                                          DWORD dwIfNextHopAddr);

/**
 * See [`PMGM_LOCAL_JOIN_CALLBACK`].
 */
typedef PMGM_LOCAL_JOIN_CALLBACK PMGM_LOCAL_LEAVE_CALLBACK;

/**
 * Disable (or enable) IGMP: IGMP stops (resumes, re-adding its memberships) on the
 * interface while a routing protocol takes or releases it.
 */
typedef DWORD (*PMGM_DISABLE_IGMP_CALLBACK)(DWORD dwIfIndex,
                                            DWORD dwIfNextHopAddr);

/**
 * See [`PMGM_DISABLE_IGMP_CALLBACK`].
 */
typedef PMGM_DISABLE_IGMP_CALLBACK PMGM_ENABLE_IGMP_CALLBACK;

/**
 * mgm: an MFE went (`dwReason`: one of the `MGM_MFE_DELETED_*` values).
 */
typedef DWORD (*PMGM_MFE_DELETED_CALLBACK)(DWORD dwSourceAddr,
                                           DWORD dwGroupAddr,
                                           DWORD dwReason);

/**
 * mgm: an interface this protocol owned left the kernel; its state there is gone.
 */
typedef DWORD (*PMGM_INTERFACE_GONE_CALLBACK)(DWORD dwIfIndex,
                                              DWORD dwIfNextHopAddr);

/**
 * RPF for an IPv6 flow: `*pdwInIfIndex`, `*pInIfNextHop`, `*pUpStreamNbr` hold the
 * proposal and take the answer.
 */
typedef DWORD (*PMGM_RPF_CALLBACK6)(const struct in6_addr *pSource,
                                    const struct in6_addr *pGroup,
                                    DWORD *pdwInIfIndex,
                                    struct in6_addr *pInIfNextHop,
                                    struct in6_addr *pUpStreamNbr,
                                    DWORD dwHdrSize,
                                    uint8_t *pbPacketHdr);

/**
 * An interface of a new IPv6 MFE in a creation alert: clear `bIsEnabled` to keep it out.
 */
typedef struct {
  DWORD dwIfIndex;
  struct in6_addr IfNextHopAddr;
  BOOL bIGMP;
  BOOL bIsEnabled;
} MGM_IF_ENTRY6;

/**
 * Creation alert for an IPv6 MFE.
 */
typedef DWORD (*PMGM_CREATION_ALERT_CALLBACK6)(const struct in6_addr *pSource,
                                               const struct in6_addr *pGroup,
                                               DWORD dwInIfIndex,
                                               const struct in6_addr *pInIfNextHop,
                                               DWORD dwIfCount,
                                               MGM_IF_ENTRY6 *pmieOutIfList);

/**
 * Prune alert for an IPv6 entry (`::` source or group: any).
 */
typedef DWORD (*PMGM_PRUNE_ALERT_CALLBACK6)(const struct in6_addr *pSource,
                                            const struct in6_addr *pGroup,
                                            DWORD dwIfIndex,
                                            const struct in6_addr *pIfNextHop,
                                            BOOL bMemberDelete,
                                            DWORD *pdwTimeout);

/**
 * Join alert for an IPv6 entry.
 */
typedef DWORD (*PMGM_JOIN_ALERT_CALLBACK6)(const struct in6_addr *pSource,
                                           const struct in6_addr *pGroup,
                                           BOOL bMemberUpdate);

/**
 * An IPv6 packet on the wrong interface.
 */
typedef DWORD (*PMGM_WRONG_IF_CALLBACK6)(const struct in6_addr *pSource,
                                         const struct in6_addr *pGroup,
                                         DWORD dwIfIndex,
                                         const struct in6_addr *pIfNextHop,
                                         DWORD dwHdrSize,
                                         uint8_t *pbPacketHdr);

/**
 * MLD (the IGMP client of IPv6) joined or left on a shared interface.
 */
typedef DWORD (*PMGM_LOCAL_JOIN_CALLBACK6)(const struct in6_addr *pSource,
                                           const struct in6_addr *pGroup,
                                           DWORD dwIfIndex,
                                           const struct in6_addr *pIfNextHop);

/**
 * Disable or enable MLD on an interface's IPv6 side; an owned IPv6 side left the kernel.
 */
typedef DWORD (*PMGM_INTERFACE_CALLBACK6)(DWORD dwIfIndex,
                                          const struct in6_addr *pIfNextHop);

/**
 * An IPv6 MFE went (`dwReason`: `MGM_MFE_DELETED_*`).
 */
typedef DWORD (*PMGM_MFE_DELETED_CALLBACK6)(const struct in6_addr *pSource,
                                            const struct in6_addr *pGroup,
                                            DWORD dwReason);

/**
 * The callbacks about IPv6 entries (mgm). Any may be NULL.
 */
typedef struct {
  PMGM_RPF_CALLBACK6 pfnRpfCallback6;
  PMGM_CREATION_ALERT_CALLBACK6 pfnCreationAlertCallback6;
  PMGM_PRUNE_ALERT_CALLBACK6 pfnPruneAlertCallback6;
  PMGM_JOIN_ALERT_CALLBACK6 pfnJoinAlertCallback6;
  PMGM_WRONG_IF_CALLBACK6 pfnWrongIfCallback6;
  PMGM_LOCAL_JOIN_CALLBACK6 pfnLocalJoinCallback6;
  PMGM_LOCAL_JOIN_CALLBACK6 pfnLocalLeaveCallback6;
  PMGM_INTERFACE_CALLBACK6 pfnDisableMldCallback6;
  PMGM_INTERFACE_CALLBACK6 pfnEnableMldCallback6;
  PMGM_MFE_DELETED_CALLBACK6 pfnMfeDeletedCallback6;
  PMGM_INTERFACE_CALLBACK6 pfnInterfaceGoneCallback6;
} MGM_IPV6_CALLBACKS;

/**
 * A protocol's callbacks (`ROUTING_PROTOCOL_CONFIG`), given to [`crate::MgmRegisterMProtocol`]
 * (copied: the caller's structure need not outlive the call). Any may be NULL: a request
 * it would answer takes its default (the proposal stands, every interface is enabled, the
 * timeout stays). The first ten fields are RRAS's; mgm appends its two notices.
 */
typedef struct {
  /**
   * Reserved: 0.
   */
  DWORD dwCallbackFlags;
  PMGM_RPF_CALLBACK pfnRpfCallback;
  PMGM_CREATION_ALERT_CALLBACK pfnCreationAlertCallback;
  PMGM_PRUNE_ALERT_CALLBACK pfnPruneAlertCallback;
  PMGM_JOIN_ALERT_CALLBACK pfnJoinAlertCallback;
  PMGM_WRONG_IF_CALLBACK pfnWrongIfCallback;
  PMGM_LOCAL_JOIN_CALLBACK pfnLocalJoinCallback;
  PMGM_LOCAL_LEAVE_CALLBACK pfnLocalLeaveCallback;
  PMGM_DISABLE_IGMP_CALLBACK pfnDisableIgmpCallback;
  PMGM_ENABLE_IGMP_CALLBACK pfnEnableIgmpCallback;
  /**
   * mgm.
   */
  PMGM_MFE_DELETED_CALLBACK pfnMfeDeletedCallback;
  /**
   * mgm.
   */
  PMGM_INTERFACE_GONE_CALLBACK pfnInterfaceGoneCallback;
  /**
   * mgm: the callbacks about IPv6 entries (copied at registration), or NULL.
   */
  const MGM_IPV6_CALLBACKS *pIpv6Callbacks;
} ROUTING_PROTOCOL_CONFIG;

/**
 * RRAS's `HANDLE`: a registered protocol, or a group enumeration.
 */
typedef void *HANDLE;

/**
 * RRAS's `MGM_ENUM_TYPES`.
 */
typedef DWORD MGM_ENUM_TYPES;

/**
 * RRAS's `ULONG` (32 bits, as on Windows: counters wrap as SNMP's Counter32 do).
 */
typedef uint32_t ULONG;

/**
 * An outgoing interface of an MFE (`MIB_IPMCAST_OIF`).
 */
typedef struct {
  DWORD dwOutIfIndex;
  DWORD dwNextHopAddr;
  void *pvReserved;
  DWORD dwReserved;
} MIB_IPMCAST_OIF;

/**
 * An MFE (`MIB_IPMCAST_MFE`), followed by `ulNumOutIf` outgoing interfaces: its size is
 * `SIZEOF_MIB_MFE(ulNumOutIf)`. Times are in seconds; `dwRouteProtocol`,
 * `dwRouteNetwork`, `dwRouteMask` and `fFlags` are 0 (mgm keeps no route with an MFE).
 */
typedef struct {
  DWORD dwGroup;
  DWORD dwSource;
  DWORD dwSrcMask;
  DWORD dwUpStrmNgbr;
  DWORD dwInIfIndex;
  /**
   * The protocol id of the routing protocol owning the incoming interface (0: none).
   */
  DWORD dwInIfProtocol;
  DWORD dwRouteProtocol;
  DWORD dwRouteNetwork;
  DWORD dwRouteMask;
  ULONG ulUpTime;
  ULONG ulExpiryTime;
  ULONG ulTimeOut;
  ULONG ulNumOutIf;
  DWORD fFlags;
  DWORD dwReserved;
  MIB_IPMCAST_OIF rgmioOutInfo[ANY_SIZE];
} MIB_IPMCAST_MFE;

/**
 * An outgoing interface of an IPv6 MFE, with its counters.
 */
typedef struct {
  DWORD dwOutIfIndex;
  struct in6_addr NextHopAddr;
  uint64_t ullOutPackets;
  uint64_t ullOutOctets;
  /**
   * Copies longer than the interface's MTU (dropped; mgmd sends Packet Too Big).
   */
  uint64_t ullFragNeeded;
  /**
   * Copies dropped because the interface had been released.
   */
  uint64_t ullOutDiscards;
} MGM_OIF6;

/**
 * An IPv6 MFE (mgm's: RRAS's MIB_IPMCAST_MFE has IPv4 addresses), followed by
 * `ulNumOutIf` [`MGM_OIF6`]s: `SIZEOF_MGM_MFE6(ulNumOutIf)` bytes. Counters are 64-bit.
 */
typedef struct {
  struct in6_addr Group;
  struct in6_addr Source;
  struct in6_addr UpStrmNgbr;
  struct in6_addr InIfNextHopAddr;
  DWORD dwInIfIndex;
  /**
   * The protocol id owning the incoming interface (0: none).
   */
  DWORD dwInIfProtocol;
  ULONG ulUpTime;
  ULONG ulExpiryTime;
  ULONG ulTimeOut;
  ULONG ulNumOutIf;
  uint64_t ullInPkts;
  uint64_t ullInOctets;
  /**
   * Packets that arrived on another interface than the incoming one.
   */
  uint64_t ullPktsDifferentIf;
  /**
   * Packets dropped with a hop limit of 1 or less.
   */
  uint64_t ullInDiscards;
  MGM_OIF6 rgOutInfo[ANY_SIZE];
} MGM_MFE6;

/**
 * A joined IPv6 entry, as [`crate::MgmGroupEnumerationGetNext6`] returns it (`::`: any).
 */
typedef struct {
  struct in6_addr Source;
  struct in6_addr Group;
} SOURCE_GROUP_ENTRY6;

/**
 * A joined entry, as a group enumeration returns it (`SOURCE_GROUP_ENTRY`).
 */
typedef struct {
  DWORD dwSourceAddr;
  DWORD dwSourceMask;
  DWORD dwGroupAddr;
  DWORD dwGroupMask;
} SOURCE_GROUP_ENTRY;

/**
 * A pointer to [`SOURCE_GROUP_ENTRY`].
 */
typedef SOURCE_GROUP_ENTRY *PSOURCE_GROUP_ENTRY;

/**
 * A pointer to [`MIB_IPMCAST_MFE`].
 */
typedef MIB_IPMCAST_MFE *PMIB_IPMCAST_MFE;

/**
 * An outgoing interface's counters (`MIB_IPMCAST_OIF_STATS`).
 */
typedef struct {
  DWORD dwOutIfIndex;
  DWORD dwNextHopAddr;
  void *pvDialContext;
  /**
   * Always 0: mgm has no per-interface TTL thresholds.
   */
  ULONG ulTtlTooLow;
  /**
   * Copies longer than the interface's MTU (dropped, never fragmented).
   */
  ULONG ulFragNeeded;
  ULONG ulOutPackets;
  /**
   * Copies dropped because the interface had been released.
   */
  ULONG ulOutDiscards;
} MIB_IPMCAST_OIF_STATS;

/**
 * An MFE's counters (`MIB_IPMCAST_MFE_STATS`, [`MGM_MFE_STATS_0`]), followed by
 * `ulNumOutIf` interfaces' counters: `SIZEOF_MIB_MFE_STATS(ulNumOutIf)` bytes.
 */
typedef struct {
  DWORD dwGroup;
  DWORD dwSource;
  DWORD dwSrcMask;
  DWORD dwUpStrmNgbr;
  DWORD dwInIfIndex;
  DWORD dwInIfProtocol;
  DWORD dwRouteProtocol;
  DWORD dwRouteNetwork;
  DWORD dwRouteMask;
  ULONG ulUpTime;
  ULONG ulExpiryTime;
  ULONG ulNumOutIf;
  ULONG ulInPkts;
  ULONG ulInOctets;
  /**
   * Packets that arrived on another interface than the incoming one.
   */
  ULONG ulPktsDifferentIf;
  /**
   * Always 0 (mgm queues nothing).
   */
  ULONG ulQueueOverflow;
  MIB_IPMCAST_OIF_STATS rgmiosOutStats[ANY_SIZE];
} MIB_IPMCAST_MFE_STATS;

/**
 * A pointer to [`MIB_IPMCAST_MFE_STATS`].
 */
typedef MIB_IPMCAST_MFE_STATS *PMIB_IPMCAST_MFE_STATS;

/**
 * An MFE's extended counters (`MIB_IPMCAST_MFE_STATS_EX`, [`MGM_MFE_STATS_1`]):
 * `SIZEOF_MIB_MFE_STATS_EX(ulNumOutIf)` bytes.
 */
typedef struct {
  DWORD dwGroup;
  DWORD dwSource;
  DWORD dwSrcMask;
  DWORD dwUpStrmNgbr;
  DWORD dwInIfIndex;
  DWORD dwInIfProtocol;
  DWORD dwRouteProtocol;
  DWORD dwRouteNetwork;
  DWORD dwRouteMask;
  ULONG ulUpTime;
  ULONG ulExpiryTime;
  ULONG ulNumOutIf;
  ULONG ulInPkts;
  ULONG ulInOctets;
  ULONG ulPktsDifferentIf;
  ULONG ulQueueOverflow;
  /**
   * Always 0.
   */
  ULONG ulUninitMfe;
  /**
   * Always 0.
   */
  ULONG ulNegativeMfe;
  /**
   * Packets dropped with a TTL (hop limit) of 1 or less.
   */
  ULONG ulInDiscards;
  /**
   * Always 0.
   */
  ULONG ulInHdrErrors;
  /**
   * The sum of the interfaces' `ulOutPackets`.
   */
  ULONG ulTotalOutPackets;
  MIB_IPMCAST_OIF_STATS rgmiosOutStats[ANY_SIZE];
} MIB_IPMCAST_MFE_STATS_EX;

/**
 * A pointer to [`MIB_IPMCAST_MFE_STATS_EX`].
 */
typedef MIB_IPMCAST_MFE_STATS_EX *PMIB_IPMCAST_MFE_STATS_EX;

/**
 * A pointer to [`ROUTING_PROTOCOL_CONFIG`].
 */
typedef ROUTING_PROTOCOL_CONFIG *PROUTING_PROTOCOL_CONFIG;

/**
 * Done.
 */
#define NO_ERROR 0

/**
 * This process may not use mgmd's socket (not in its group).
 */
#define ERROR_ACCESS_DENIED 5

/**
 * A table of mgmd's is full, or this client is at one of its limits.
 */
#define ERROR_NOT_ENOUGH_MEMORY 8

/**
 * A bad handle, an interface the client does not own, a bad mask, a NULL pointer.
 */
#define ERROR_INVALID_PARAMETER 87

/**
 * Not even one entry fits the buffer: `*pdwBufferSize` says how much one needs.
 */
#define ERROR_INSUFFICIENT_BUFFER 122

/**
 * A registration or an ownership conflicts with an existing one.
 */
#define ERROR_ALREADY_EXISTS 183

/**
 * A page was returned and more entries remain.
 */
#define ERROR_MORE_DATA 234

/**
 * The walk is over (the page may still hold entries).
 */
#define ERROR_NO_MORE_ITEMS 259

/**
 * The call cannot be carried out in the current state.
 */
#define ERROR_CAN_NOT_COMPLETE 1003

/**
 * The named entry does not exist.
 */
#define ERROR_NOT_FOUND 1168

/**
 * No mgmd at the socket (it does not run).
 */
#define ERROR_CONNECTION_REFUSED 1225

/**
 * The handle's connection to mgmd is gone (mgmd stopped or restarted, and released and
 * deregistered everything of it): register again.
 */
#define ERROR_CONNECTION_INVALID 1229

/**
 * mgmd did not answer in time (30 s).
 */
#define ERROR_TIMEOUT 1460

/**
 * Join state: the entry has members (it drives join and prune alerts).
 */
#define MGM_JOIN_STATE_FLAG 1

/**
 * Forward state: the interface is in the outgoing list of every matching MFE.
 */
#define MGM_FORWARD_STATE_FLAG 2

/**
 * Callbacks run on the daemon's own loop: it polls [`crate::MgmGetEventFd`] and calls
 * [`MgmDispatch`] when it is readable.
 */
#define MGM_DISPATCH_CALLER 0

/**
 * Callbacks run on a thread of the library's, one at a time.
 */
#define MGM_DISPATCH_THREAD 1

/**
 * RRAS's protocol id of IGMP (`PROTO_IP_IGMP`): the client that may share an interface
 * with one routing protocol, and gets the disable and enable IGMP callbacks.
 */
#define PROTO_IP_IGMP 10

/**
 * `MGM_ENUM_TYPES`: one entry per joined group, source any.
 */
#define ANY_SOURCE 0

/**
 * `MGM_ENUM_TYPES`: every joined entry as it was added ((S,G), (*,G) or (*,*)).
 */
#define ALL_SOURCES 1

/**
 * The statistics functions' `dwFlags`: fill MIB_IPMCAST_MFE_STATS.
 */
#define MGM_MFE_STATS_0 1

/**
 * The statistics functions' `dwFlags`: fill MIB_IPMCAST_MFE_STATS_EX.
 */
#define MGM_MFE_STATS_1 2

/**
 * `dwReason` of an MFE deletion: it was idle for its timeout.
 */
#define MGM_MFE_DELETED_EXPIRED 1

/**
 * Its incoming interface was released.
 */
#define MGM_MFE_DELETED_RELEASED 2

/**
 * Its incoming interface left the kernel.
 */
#define MGM_MFE_DELETED_INTERFACE_GONE 3

/**
 * The table was full and it was the least recently used.
 */
#define MGM_MFE_DELETED_EVICTED 4

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Where mgmd's socket is (NULL: `$MGM_SOCKET`, else /run/mgm/mgmd.sock), how callbacks run
 * ([`MGM_DISPATCH_CALLER`] or [`MGM_DISPATCH_THREAD`]) and what runs once when the
 * connection to mgmd is lost (NULL: nothing; calls then return ERROR_CONNECTION_INVALID).
 * Optional, and only before the first connection (ERROR_CAN_NOT_COMPLETE after).
 */
DWORD MgmInitialize(const char *pszSocket,
                    DWORD dwDispatch,
                    PMGM_CONNECTION_LOST_CALLBACK pfnConnectionLost);

/**
 * The descriptor that is readable while callbacks are due: poll it and call
 * [`MgmDispatch`]. The same descriptor for the process's life (across reconnections);
 * -1 if it could not be made.
 */
int MgmGetEventFd(void);

/**
 * Registers a routing protocol (`dwProtocolId`, `dwComponentId`, [`PROTO_IP_IGMP`] for
 * IGMP) with its callbacks (`prpiInfo`, copied; NULL for none); `*phProtocol` is its
 * handle. ERROR_ALREADY_EXISTS if that pair is registered.
 */
DWORD MgmRegisterMProtocol(const ROUTING_PROTOCOL_CONFIG *prpiInfo,
                           DWORD dwProtocolId,
                           DWORD dwComponentId,
                           HANDLE *phProtocol);

/**
 * Deregisters a protocol; it must have released its interfaces (ERROR_CAN_NOT_COMPLETE
 * while it owns one). A handle of a lost connection is forgotten (mgmd deregistered it
 * when the connection went): NO_ERROR.
 */
DWORD MgmDeRegisterMProtocol(HANDLE hProtocol);

/**
 * Takes (interface, IPv4 next hop in network byte order; 0 for a broadcast or
 * point-to-point link). mgmd starts managing the interface (XDP) if it did not yet.
 */
DWORD MgmTakeInterfaceOwnership(HANDLE hProtocol,
                                DWORD dwIfIndex,
                                DWORD dwIfNextHopAddr);

/**
 * Releases (interface, IPv4 next hop): every entry kept there for this protocol goes, and
 * once it returns no packet entering afterwards is forwarded there for it.
 */
DWORD MgmReleaseInterfaceOwnership(HANDLE hProtocol,
                                   DWORD dwIfIndex,
                                   DWORD dwIfNextHopAddr);

/**
 * The routing protocol that owns (interface, IPv4 next hop) (IGMP when it is alone
 * there): its protocol and component ids. ERROR_NOT_FOUND when nobody owns it.
 */
DWORD MgmGetProtocolOnInterface(DWORD dwIfIndex,
                                DWORD dwIfNextHopAddr,
                                PDWORD pdwIfProtocolId,
                                PDWORD pdwIfComponentId);

/**
 * Adds (or adds flags to) a group membership entry on an interface this protocol owns:
 * (S,G) with both masks all ones, (*,G) with a source and source mask of 0, (*,*) with all
 * four 0. Addresses and masks in network byte order.
 */
DWORD MgmAddGroupMembershipEntry(HANDLE hProtocol,
                                 DWORD dwSourceAddr,
                                 DWORD dwSourceMask,
                                 DWORD dwGroupAddr,
                                 DWORD dwGroupMask,
                                 DWORD dwIfIndex,
                                 DWORD dwIfNextHopIPAddr,
                                 DWORD dwFlags);

/**
 * Clears the given flags of a group membership entry; it goes when none is left.
 * ERROR_NOT_FOUND if it (or the flag) is not there.
 */
DWORD MgmDeleteGroupMembershipEntry(HANDLE hProtocol,
                                    DWORD dwSourceAddr,
                                    DWORD dwSourceMask,
                                    DWORD dwGroupAddr,
                                    DWORD dwGroupMask,
                                    DWORD dwIfIndex,
                                    DWORD dwIfNextHopIPAddr,
                                    DWORD dwFlags);

/**
 * Runs the callbacks that are due, on the calling thread. NO_ERROR; after the connection
 * to mgmd was lost, ERROR_CONNECTION_INVALID once (after the lost-connection callback);
 * ERROR_CAN_NOT_COMPLETE when called from inside a callback.
 */
DWORD MgmDispatch(void);

/**
 * Opens an enumeration of the joined groups: [`ANY_SOURCE`] (one entry per group, source
 * any) or [`ALL_SOURCES`] (every joined entry as added). `*phEnumHandle` names it.
 */
DWORD MgmGroupEnumerationStart(HANDLE hProtocol,
                               MGM_ENUM_TYPES metEnumType,
                               HANDLE *phEnumHandle);

/**
 * The next entries, as many SOURCE_GROUP_ENTRYs as fit: ERROR_MORE_DATA,
 * ERROR_NO_MORE_ITEMS (the end: IPv4 entries only; mgmd lists IPv6 ones after them) or
 * ERROR_INSUFFICIENT_BUFFER (`*pdwBufferSize` says what one needs).
 */
DWORD MgmGroupEnumerationGetNext(HANDLE hEnum,
                                 PDWORD pdwBufferSize,
                                 PBYTE pbBuffer,
                                 PDWORD pdwNumEntries);

/**
 * The next IPv6 entries, as many [`crate::SOURCE_GROUP_ENTRY6`]s as fit (the IPv4 entries
 * before them are passed over: walk an enumeration with this or with
 * [`MgmGroupEnumerationGetNext`], not both). Codes as [`MgmGroupEnumerationGetNext`].
 */
DWORD MgmGroupEnumerationGetNext6(HANDLE hEnum,
                                  PDWORD pdwBufferSize,
                                  PBYTE pbBuffer,
                                  PDWORD pdwNumEntries);

/**
 * Closes an enumeration; its handle is dead after.
 */
DWORD MgmGroupEnumerationEnd(HANDLE hEnum);

/**
 * The MFE `pimm->dwSource`, `pimm->dwGroup` names, into `pbBuffer`. ERROR_NOT_FOUND;
 * ERROR_INSUFFICIENT_BUFFER with the size needed in `*pdwBufferSize`.
 */
DWORD MgmGetMfe(const MIB_IPMCAST_MFE *pimm,
                PDWORD pdwBufferSize,
                PBYTE pbBuffer);

/**
 * The MFE's counters: MIB_IPMCAST_MFE_STATS ([`MGM_MFE_STATS_0`]) or
 * MIB_IPMCAST_MFE_STATS_EX ([`MGM_MFE_STATS_1`]).
 */
DWORD MgmGetMfeStats(const MIB_IPMCAST_MFE *pimm,
                     PDWORD pdwBufferSize,
                     PBYTE pbBuffer,
                     DWORD dwFlags);

/**
 * The first MFEs, as many as fit: ERROR_MORE_DATA (more remain: go on with
 * [`MgmGetNextMfe`] after the last one), ERROR_NO_MORE_ITEMS (the end, with
 * `*pdwNumEntries` of them) or ERROR_INSUFFICIENT_BUFFER (not one fits: `*pdwBufferSize`
 * says how much one needs).
 */
DWORD MgmGetFirstMfe(PDWORD pdwBufferSize,
                     PBYTE pbBuffer,
                     PDWORD pdwNumEntries);

/**
 * [`MgmGetFirstMfe`] with counters (`dwFlags` as for [`MgmGetMfeStats`]).
 */
DWORD MgmGetFirstMfeStats(PDWORD pdwBufferSize,
                          PBYTE pbBuffer,
                          PDWORD pdwNumEntries,
                          DWORD dwFlags);

/**
 * The MFEs strictly after `pimmStart`'s (S,G) (whether or not it still exists).
 */
DWORD MgmGetNextMfe(const MIB_IPMCAST_MFE *pimmStart,
                    PDWORD pdwBufferSize,
                    PBYTE pbBuffer,
                    PDWORD pdwNumEntries);

/**
 * [`MgmGetNextMfe`] with counters. `pimmStart` may point at any of the three forms (their
 * first two fields are the group and the source).
 */
DWORD MgmGetNextMfeStats(const MIB_IPMCAST_MFE *pimmStart,
                         PDWORD pdwBufferSize,
                         PBYTE pbBuffer,
                         PDWORD pdwNumEntries,
                         DWORD dwFlags);

/**
 * Changes an MFE's incoming interface (`dwInIfIndex`, next hop 0) and upstream neighbour
 * (`dwUpStrmNgbr`) after an RPF change. Any registered handle may; ERROR_NOT_FOUND for an
 * unknown (S,G).
 */
DWORD MgmSetMfe(HANDLE hProtocol,
                const MIB_IPMCAST_MFE *pmimm);

/**
 * The IPv6 MFE (source, group), with its counters, as an [`MGM_MFE6`] followed by its
 * outgoing interfaces (`SIZEOF_MGM_MFE6(n)` bytes). Codes as [`MgmGetMfe`].
 */
DWORD MgmGetMfe6(const struct in6_addr *pSource,
                 const struct in6_addr *pGroup,
                 PDWORD pdwBufferSize,
                 PBYTE pbBuffer);

/**
 * The first IPv6 MFEs, by group then source, as many as fit. Codes as [`MgmGetFirstMfe`].
 */
DWORD MgmGetFirstMfe6(PDWORD pdwBufferSize,
                      PBYTE pbBuffer,
                      PDWORD pdwNumEntries);

/**
 * The IPv6 MFEs strictly after (source, group). Codes as [`MgmGetNextMfe`].
 */
DWORD MgmGetNextMfe6(const struct in6_addr *pSource,
                     const struct in6_addr *pGroup,
                     PDWORD pdwBufferSize,
                     PBYTE pbBuffer,
                     PDWORD pdwNumEntries);

/**
 * Gives the IPv6 MFE (source, group) a new incoming interface (`dwInIfIndex`, next hop
 * `pInIfNextHop`, NULL: `::`) and upstream neighbour (`pUpStreamNbr`, NULL: `::`).
 */
DWORD MgmSetMfe6(HANDLE hProtocol,
                 const struct in6_addr *pSource,
                 const struct in6_addr *pGroup,
                 DWORD dwInIfIndex,
                 const struct in6_addr *pInIfNextHop,
                 const struct in6_addr *pUpStreamNbr);

/**
 * Takes the IPv6 side of a link: (interface, IPv6 next hop; NULL or `::` for a broadcast
 * or point-to-point link).
 */
DWORD MgmTakeInterfaceOwnership6(HANDLE hProtocol,
                                 DWORD dwIfIndex,
                                 const struct in6_addr *pIfNextHopAddr);

/**
 * Releases the IPv6 side of a link, atomically as [`crate::MgmReleaseInterfaceOwnership`].
 */
DWORD MgmReleaseInterfaceOwnership6(HANDLE hProtocol,
                                    DWORD dwIfIndex,
                                    const struct in6_addr *pIfNextHopAddr);

/**
 * The protocol owning (interface, IPv6 next hop).
 */
DWORD MgmGetProtocolOnInterface6(DWORD dwIfIndex,
                                 const struct in6_addr *pIfNextHopAddr,
                                 PDWORD pdwIfProtocolId,
                                 PDWORD pdwIfComponentId);

/**
 * Adds an IPv6 group membership entry: (S,G); (*,G) with a NULL or `::` source; (*,*)
 * with a group of `::`.
 */
DWORD MgmAddGroupMembershipEntry6(HANDLE hProtocol,
                                  const struct in6_addr *pSourceAddr,
                                  const struct in6_addr *pGroupAddr,
                                  DWORD dwIfIndex,
                                  const struct in6_addr *pIfNextHopAddr,
                                  DWORD dwFlags);

/**
 * Clears flags of an IPv6 group membership entry.
 */
DWORD MgmDeleteGroupMembershipEntry6(HANDLE hProtocol,
                                     const struct in6_addr *pSourceAddr,
                                     const struct in6_addr *pGroupAddr,
                                     DWORD dwIfIndex,
                                     const struct in6_addr *pIfNextHopAddr,
                                     DWORD dwFlags);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* MGM_H */

/* The size of an MFE structure with X outgoing interfaces (RRAS's macros): a buffer holds
 * whole ones, one after the other. */
#define SIZEOF_MIB_MFE(X) (offsetof(MIB_IPMCAST_MFE, rgmioOutInfo) + (X) * sizeof(MIB_IPMCAST_OIF))
#define SIZEOF_MIB_MFE_STATS(X) \
    (offsetof(MIB_IPMCAST_MFE_STATS, rgmiosOutStats) + (X) * sizeof(MIB_IPMCAST_OIF_STATS))
#define SIZEOF_MIB_MFE_STATS_EX(X) \
    (offsetof(MIB_IPMCAST_MFE_STATS_EX, rgmiosOutStats) + (X) * sizeof(MIB_IPMCAST_OIF_STATS))
/* The size of an IPv6 MFE (mgm's MGM_MFE6) with X outgoing interfaces. */
#define SIZEOF_MGM_MFE6(X) (offsetof(MGM_MFE6, rgOutInfo) + (X) * sizeof(MGM_OIF6))
