/* libmgm's C test: every function of mgm.h against a live mgmd, driven by
 * tests/tests/libmgm.rs. Usage: api SCENARIO SOCKET MODE [RIN R1 R2]; MODE is 0 (callbacks
 * through MgmDispatch on this program's poll loop) or 1 (on the library's thread). It talks
 * to the test on stdin/stdout: "ask WHAT" lines, answered "done". Exit 0 when every check
 * held; otherwise the first failed check is on stderr. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <mgm.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)
#define EXPECT(call, code)                                                       \
    do {                                                                         \
        DWORD r_ = (call);                                                       \
        if (r_ != (code)) {                                                      \
            fprintf(stderr, "%s:%d: %s returned %u, not %u\n", __FILE__, __LINE__, #call, \
                    (unsigned)r_, (unsigned)(code));                             \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static DWORD mode;
static DWORD rin, r1, r2;

/* What the callbacks saw. */
static atomic_int rpf, creation, prune_sg, prune_oil, join_alerts, local_joins,
    local_leaves, disables, enables, deletions, lost;
static atomic_uint pruned_timeout_asked;
static atomic_int rpf6, creation6;

static DWORD on_rpf6(const struct in6_addr *s, const struct in6_addr *g, PDWORD ifi,
                     struct in6_addr *nh, struct in6_addr *up, DWORD hs, PBYTE hdr) {
    (void)nh; (void)up;
    CHECK(*ifi == rin);
    /* The IPv6 header: version 6, then the source and the group. */
    CHECK(hs >= 40 && (hdr[0] >> 4) == 6);
    CHECK(memcmp(hdr + 8, s, 16) == 0 && memcmp(hdr + 24, g, 16) == 0);
    atomic_fetch_add(&rpf6, 1);
    return NO_ERROR;
}

static DWORD on_creation6(const struct in6_addr *s, const struct in6_addr *g, DWORD iif,
                          const struct in6_addr *iifnh, DWORD n, MGM_IF_ENTRY6 *oifs) {
    (void)s; (void)g; (void)iifnh;
    CHECK(iif == rin && n == 1 && oifs[0].dwIfIndex == r1 && oifs[0].bIsEnabled);
    atomic_fetch_add(&creation6, 1);
    return NO_ERROR;
}

static DWORD on_rpf(DWORD s, DWORD sm, DWORD g, DWORD gm, PDWORD ifi, PDWORD nh, PDWORD up,
                    DWORD hs, PBYTE hdr, PBYTE route) {
    (void)sm; (void)gm; (void)nh; (void)up; (void)route;
    /* The proposal is where the packet arrived; the header is the packet's. */
    CHECK(*ifi == rin);
    CHECK(hs >= 20 && (hdr[0] >> 4) == 4);
    CHECK(memcmp(hdr + 12, &s, 4) == 0 && memcmp(hdr + 16, &g, 4) == 0);
    atomic_fetch_add(&rpf, 1);
    return NO_ERROR;
}

/* Keeps r2 out of every MFE (the test's receiver on r2 gets nothing). */
static DWORD on_creation(DWORD s, DWORD sm, DWORD g, DWORD gm, DWORD iif, DWORD iifnh,
                         DWORD n, PMGM_IF_ENTRY oifs) {
    (void)s; (void)sm; (void)g; (void)gm; (void)iifnh;
    CHECK(iif == rin);
    for (DWORD i = 0; i < n; i++)
        if (oifs[i].dwIfIndex == r2) oifs[i].bIsEnabled = 0;
    atomic_fetch_add(&creation, 1);
    return NO_ERROR;
}

static DWORD on_prune(DWORD s, DWORD sm, DWORD g, DWORD gm, DWORD ifi, DWORD nh,
                      BOOL member_delete, PDWORD timeout) {
    (void)s; (void)sm; (void)g; (void)gm; (void)ifi; (void)nh;
    if (member_delete) {
        atomic_fetch_add(&prune_sg, 1);
    } else {
        /* An MFE's list became empty: keep it 77 s. */
        atomic_store(&pruned_timeout_asked, *timeout);
        *timeout = 77;
        atomic_fetch_add(&prune_oil, 1);
    }
    return NO_ERROR;
}

static atomic_int wrong_ifs;

/* A packet of an MFE on an interface of ours that is not its incoming one. */
static DWORD on_wrong_if(DWORD s, DWORD g, DWORD ifi, DWORD nh, DWORD hs, PBYTE hdr) {
    (void)nh;
    CHECK(s == inet_addr("10.1.0.1") && g == inet_addr("239.1.1.1") && ifi == r1);
    CHECK(hs >= 20 && memcmp(hdr + 12, &s, 4) == 0);
    atomic_fetch_add(&wrong_ifs, 1);
    return NO_ERROR;
}

static DWORD on_join(DWORD s, DWORD sm, DWORD g, DWORD gm, BOOL add) {
    (void)s; (void)sm; (void)g; (void)gm;
    if (add) atomic_fetch_add(&join_alerts, 1);
    return NO_ERROR;
}

static DWORD on_local_join(DWORD s, DWORD sm, DWORD g, DWORD gm, DWORD ifi, DWORD nh) {
    (void)s; (void)sm; (void)gm; (void)nh;
    CHECK(ifi == r2 && g == inet_addr("239.1.1.9"));
    atomic_fetch_add(&local_joins, 1);
    return NO_ERROR;
}

static DWORD on_local_leave(DWORD s, DWORD sm, DWORD g, DWORD gm, DWORD ifi, DWORD nh) {
    (void)s; (void)sm; (void)g; (void)gm; (void)ifi; (void)nh;
    atomic_fetch_add(&local_leaves, 1);
    return NO_ERROR;
}

static DWORD on_disable(DWORD ifi, DWORD nh) {
    (void)nh;
    CHECK(ifi == r2);
    atomic_fetch_add(&disables, 1);
    return NO_ERROR;
}

static DWORD on_enable(DWORD ifi, DWORD nh) {
    (void)nh;
    CHECK(ifi == r2);
    /* Enable comes after disable, never alone. */
    CHECK(atomic_load(&disables) > atomic_load(&enables));
    atomic_fetch_add(&enables, 1);
    return NO_ERROR;
}

static DWORD on_deleted(DWORD s, DWORD g, DWORD reason) {
    (void)s; (void)g;
    CHECK(reason == MGM_MFE_DELETED_RELEASED || reason == MGM_MFE_DELETED_EXPIRED);
    atomic_fetch_add(&deletions, 1);
    return NO_ERROR;
}

static void on_lost(void) { atomic_fetch_add(&lost, 1); }

/* Runs callbacks until *counter reaches n (10 s at most). */
static void wait_for(atomic_int *counter, int n, const char *what) {
    for (int i = 0; i < 1000 && atomic_load(counter) < n; i++) {
        if (mode == MGM_DISPATCH_CALLER) {
            struct pollfd p = {.fd = MgmGetEventFd(), .events = POLLIN};
            if (poll(&p, 1, 10) > 0) MgmDispatch();
        } else {
            usleep(10000);
        }
    }
    if (atomic_load(counter) < n) {
        fprintf(stderr, "no %s callback (%d of %d)\n", what, atomic_load(counter), n);
        exit(1);
    }
}

/* Asks the test to do something, and waits until it has. */
static void ask(const char *what) {
    char line[64];
    printf("ask %s\n", what);
    fflush(stdout);
    CHECK(fgets(line, sizeof line, stdin) != NULL && strncmp(line, "done", 4) == 0);
}

static ROUTING_PROTOCOL_CONFIG callbacks(void) {
    ROUTING_PROTOCOL_CONFIG c;
    memset(&c, 0, sizeof c);
    c.pfnRpfCallback = on_rpf;
    c.pfnCreationAlertCallback = on_creation;
    c.pfnPruneAlertCallback = on_prune;
    c.pfnJoinAlertCallback = on_join;
    c.pfnWrongIfCallback = on_wrong_if;
    c.pfnLocalJoinCallback = on_local_join;
    c.pfnLocalLeaveCallback = on_local_leave;
    c.pfnDisableIgmpCallback = on_disable;
    c.pfnEnableIgmpCallback = on_enable;
    c.pfnMfeDeletedCallback = on_deleted;
    return c;
}

#define ONES 0xffffffffu

static MIB_IPMCAST_MFE named(const char *s, const char *g) {
    MIB_IPMCAST_MFE m;
    memset(&m, 0, sizeof m);
    m.dwSource = inet_addr(s);
    m.dwGroup = inet_addr(g);
    return m;
}

static int calls(const char *socket) {
    ROUTING_PROTOCOL_CONFIG cfg = callbacks();
    HANDLE pim, again, igmp, dvmrp, extra, pim6;
    EXPECT(MgmInitialize(socket, 7, NULL), ERROR_INVALID_PARAMETER);
    EXPECT(MgmInitialize(socket, mode, on_lost), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(&cfg, 103, 1, NULL), ERROR_INVALID_PARAMETER);
    EXPECT(MgmRegisterMProtocol(&cfg, 103, 1, &pim), NO_ERROR);
    EXPECT(MgmInitialize(socket, mode, on_lost), ERROR_CAN_NOT_COMPLETE);
    EXPECT(MgmRegisterMProtocol(&cfg, 103, 1, &again), ERROR_ALREADY_EXISTS);
    EXPECT(MgmRegisterMProtocol(&cfg, PROTO_IP_IGMP, 1, &igmp), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(&cfg, 7, 1, &dvmrp), NO_ERROR);
    /* mgmd runs with --max-handles-per-conn 4. */
    MGM_IPV6_CALLBACKS v6 = {0};
    v6.pfnRpfCallback6 = on_rpf6;
    v6.pfnCreationAlertCallback6 = on_creation6;
    ROUTING_PROTOCOL_CONFIG cfg6 = {0};
    cfg6.pIpv6Callbacks = &v6;
    EXPECT(MgmRegisterMProtocol(&cfg6, 103, 6, &pim6), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(NULL, 9, 1, &extra), ERROR_NOT_ENOUGH_MEMORY);
    CHECK(MgmGetEventFd() >= 0);

    EXPECT(MgmTakeInterfaceOwnership(pim, rin, 0), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(pim, r2, 0), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(pim, r2, 0), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(dvmrp, r2, 0), ERROR_ALREADY_EXISTS);
    EXPECT(MgmTakeInterfaceOwnership((HANDLE)(uintptr_t)0x7777, r2, 0), ERROR_INVALID_PARAMETER);
    DWORD pid = 0, cid = 0;
    EXPECT(MgmGetProtocolOnInterface(r1, 0, &pid, &cid), NO_ERROR);
    CHECK(pid == 103 && cid == 1);
    EXPECT(MgmGetProtocolOnInterface(r1, 0, NULL, &cid), ERROR_INVALID_PARAMETER);
    EXPECT(MgmGetProtocolOnInterface(999999, 0, &pid, &cid), ERROR_NOT_FOUND);

    /* IGMP shares r2 with PIM: its join is a local join to PIM. */
    EXPECT(MgmTakeInterfaceOwnership(igmp, r2, 0), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry(igmp, 0, 0, inet_addr("239.1.1.9"), ONES, r2, 0,
                                      MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG), NO_ERROR);
    wait_for(&local_joins, 1, "local join");
    EXPECT(MgmDeleteGroupMembershipEntry(igmp, 0, 0, inet_addr("239.1.1.9"), ONES, r2, 0,
                                         MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG), NO_ERROR);
    wait_for(&local_leaves, 1, "local leave");

    /* PIM's (*,G) joins on r1 and r2: DVMRP hears of the first join state for each. */
    DWORD both = MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG;
    DWORD g1 = inet_addr("239.1.1.1"), g2 = inet_addr("239.1.1.2");
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, g1, ONES, r1, 0, both), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, g1, ONES, r2, 0, both), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, g2, ONES, r1, 0, both), NO_ERROR);
    wait_for(&join_alerts, 2, "join alert");
    /* A source-specific join, and the (*,*) shape. */
    DWORD s = inet_addr("10.1.0.1");
    EXPECT(MgmAddGroupMembershipEntry(pim, s, ONES, g1, ONES, r1, 0, both), NO_ERROR);
    EXPECT(MgmDeleteGroupMembershipEntry(pim, s, ONES, g1, ONES, r1, 0, both), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, 0, 0, r1, 0, MGM_JOIN_STATE_FLAG), NO_ERROR);
    EXPECT(MgmDeleteGroupMembershipEntry(pim, 0, 0, 0, 0, r1, 0, MGM_JOIN_STATE_FLAG), NO_ERROR);
    /* What RRAS refuses. */
    EXPECT(MgmAddGroupMembershipEntry(pim, s, 0xffff0000u, g1, ONES, r1, 0, both),
           ERROR_INVALID_PARAMETER);
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, inet_addr("10.0.0.1"), ONES, r1, 0, both),
           ERROR_INVALID_PARAMETER);
    EXPECT(MgmAddGroupMembershipEntry(dvmrp, 0, 0, g1, ONES, r1, 0, both), ERROR_INVALID_PARAMETER);
    EXPECT(MgmDeleteGroupMembershipEntry(pim, 0, 0, inet_addr("239.9.9.9"), ONES, r1, 0, both),
           ERROR_NOT_FOUND);

    /* Traffic to both groups: RPF and creation alerts, answered by the callbacks. */
    ask("traffic");
    wait_for(&rpf, 2, "RPF");
    wait_for(&creation, 2, "creation alert");
    ask("traffic");
    /* (S,G1) arriving on r1, not its incoming interface: r1's owner hears of it. */
    ask("wrongif");
    wait_for(&wrong_ifs, 1, "wrong interface");

    /* GetMfe: the size first, then the entry (r2 was kept out by the creation alert). */
    MIB_IPMCAST_MFE key = named("10.1.0.1", "239.1.1.1");
    BYTE buf[4096];
    DWORD size = 0;
    EXPECT(MgmGetMfe(&key, &size, buf), ERROR_INSUFFICIENT_BUFFER);
    CHECK(size == SIZEOF_MIB_MFE(1));
    size = sizeof buf;
    EXPECT(MgmGetMfe(&key, &size, buf), NO_ERROR);
    PMIB_IPMCAST_MFE m = (PMIB_IPMCAST_MFE)buf;
    CHECK(m->dwSource == s && m->dwGroup == g1 && m->dwSrcMask == ONES);
    CHECK(m->dwInIfIndex == rin && m->dwInIfProtocol == 103);
    CHECK(m->ulNumOutIf == 1 && m->rgmioOutInfo[0].dwOutIfIndex == r1);
    CHECK(m->ulTimeOut > 0 && m->ulExpiryTime <= m->ulTimeOut);
    MIB_IPMCAST_MFE unknown = named("10.1.0.1", "239.7.7.7");
    EXPECT(MgmGetMfe(&unknown, &size, buf), ERROR_NOT_FOUND);
    EXPECT(MgmGetMfe(NULL, &size, buf), ERROR_INVALID_PARAMETER);

    /* Its counters, in both forms. */
    size = sizeof buf;
    EXPECT(MgmGetMfeStats(&key, &size, buf, MGM_MFE_STATS_0), NO_ERROR);
    PMIB_IPMCAST_MFE_STATS st = (PMIB_IPMCAST_MFE_STATS)buf;
    CHECK(st->ulNumOutIf == 1 && st->ulInPkts >= 10 && st->ulInOctets > st->ulInPkts);
    CHECK(st->ulPktsDifferentIf >= 1);
    CHECK(st->rgmiosOutStats[0].dwOutIfIndex == r1 && st->rgmiosOutStats[0].ulOutPackets >= 10);
    EXPECT(MgmGetMfeStats(&key, &size, buf, MGM_MFE_STATS_1), NO_ERROR);
    PMIB_IPMCAST_MFE_STATS_EX ex = (PMIB_IPMCAST_MFE_STATS_EX)buf;
    CHECK(ex->ulTotalOutPackets == ex->rgmiosOutStats[0].ulOutPackets);
    EXPECT(MgmGetMfeStats(&key, &size, buf, 0), ERROR_INVALID_PARAMETER);

    /* The walk: one entry per page, by group. */
    DWORD n = 0;
    size = 4;
    EXPECT(MgmGetFirstMfe(&size, buf, &n), ERROR_INSUFFICIENT_BUFFER);
    CHECK(n == 0 && size == SIZEOF_MIB_MFE(1));
    size = SIZEOF_MIB_MFE(1);
    EXPECT(MgmGetFirstMfe(&size, buf, &n), ERROR_MORE_DATA);
    CHECK(n == 1 && m->dwGroup == g1);
    MIB_IPMCAST_MFE last = *m;
    DWORD r = MgmGetNextMfe(&last, &size, buf, &n);
    CHECK((r == ERROR_NO_MORE_ITEMS || r == ERROR_MORE_DATA) && n == 1 && m->dwGroup == g2);
    last = *m;
    if (r == ERROR_MORE_DATA) {
        EXPECT(MgmGetNextMfe(&last, &size, buf, &n), ERROR_NO_MORE_ITEMS);
        CHECK(n == 0);
    }
    size = sizeof buf;
    EXPECT(MgmGetFirstMfeStats(&size, buf, &n, MGM_MFE_STATS_0), ERROR_NO_MORE_ITEMS);
    CHECK(n == 2);
    PMIB_IPMCAST_MFE_STATS second = (PMIB_IPMCAST_MFE_STATS)(buf + SIZEOF_MIB_MFE_STATS(st->ulNumOutIf));
    CHECK(((PMIB_IPMCAST_MFE_STATS)buf)->dwGroup == g1 && second->dwGroup == g2);
    key = named("10.1.0.1", "239.1.1.1");
    EXPECT(MgmGetNextMfeStats(&key, &size, buf, &n, MGM_MFE_STATS_1), ERROR_NO_MORE_ITEMS);
    CHECK(n == 1 && ((PMIB_IPMCAST_MFE_STATS_EX)buf)->dwGroup == g2);

    /* SetMfe: a new incoming interface shows in GetMfe (and leaves the list). */
    key = named("10.1.0.1", "239.1.1.2");
    key.dwInIfIndex = r2;
    EXPECT(MgmSetMfe((HANDLE)(uintptr_t)0x7777, &key), ERROR_INVALID_PARAMETER);
    unknown.dwInIfIndex = rin;
    EXPECT(MgmSetMfe(pim, &unknown), ERROR_NOT_FOUND);
    EXPECT(MgmSetMfe(pim, &key), NO_ERROR);
    size = sizeof buf;
    EXPECT(MgmGetMfe(&key, &size, buf), NO_ERROR);
    CHECK(m->dwInIfIndex == r2);
    key.dwInIfIndex = rin;
    EXPECT(MgmSetMfe(pim, &key), NO_ERROR);

    /* Group enumeration: PIM's three joined entries ((*,G1) twice is one entry). */
    HANDLE e;
    EXPECT(MgmGroupEnumerationStart(pim, 5, &e), ERROR_INVALID_PARAMETER);
    EXPECT(MgmGroupEnumerationStart(pim, ALL_SOURCES, &e), NO_ERROR);
    size = 0;
    EXPECT(MgmGroupEnumerationGetNext(e, &size, buf, &n), ERROR_INSUFFICIENT_BUFFER);
    CHECK(size == sizeof(SOURCE_GROUP_ENTRY));
    int seen = 0;
    for (;;) {
        size = sizeof(SOURCE_GROUP_ENTRY);
        r = MgmGroupEnumerationGetNext(e, &size, buf, &n);
        CHECK(r == ERROR_MORE_DATA || r == ERROR_NO_MORE_ITEMS);
        for (DWORD i = 0; i < n; i++) {
            PSOURCE_GROUP_ENTRY sg = (PSOURCE_GROUP_ENTRY)buf + i;
            CHECK(sg->dwSourceAddr == 0 && sg->dwGroupMask == ONES);
            CHECK(sg->dwGroupAddr == g1 || sg->dwGroupAddr == g2);
            seen++;
        }
        if (r == ERROR_NO_MORE_ITEMS) break;
    }
    CHECK(seen == 2);
    EXPECT(MgmGroupEnumerationEnd(e), NO_ERROR);
    EXPECT(MgmGroupEnumerationGetNext(e, &size, buf, &n), ERROR_INVALID_PARAMETER);
    EXPECT(MgmGroupEnumerationEnd(e), ERROR_INVALID_PARAMETER);
    EXPECT(MgmGroupEnumerationStart(pim, ANY_SOURCE, &e), NO_ERROR);
    size = sizeof buf;
    EXPECT(MgmGroupEnumerationGetNext(e, &size, buf, &n), ERROR_NO_MORE_ITEMS);
    CHECK(n == 2);
    EXPECT(MgmGroupEnumerationEnd(e), NO_ERROR);

    /* G2's list empties: PIM (owning its incoming interface) sets how long it stays. */
    EXPECT(MgmDeleteGroupMembershipEntry(pim, 0, 0, g2, ONES, r1, 0, both), NO_ERROR);
    wait_for(&prune_oil, 1, "prune alert");
    CHECK(atomic_load(&pruned_timeout_asked) > 0);
    key = named("10.1.0.1", "239.1.1.2");
    for (int i = 0; i < 100; i++) {
        size = sizeof buf;
        EXPECT(MgmGetMfe(&key, &size, buf), NO_ERROR);
        if (m->ulTimeOut == 77) break;
        usleep(10000);
    }
    CHECK(m->ulTimeOut == 77 && m->ulNumOutIf == 0);

    /* IPv6: a link's IPv6 side is an interface of its own; the IPv6 callbacks. */
    struct in6_addr g6, s6, any6 = IN6ADDR_ANY_INIT;
    inet_pton(AF_INET6, "ff3e::8000:1", &g6);
    inet_pton(AF_INET6, "2001:db8:1::1", &s6);
    EXPECT(MgmTakeInterfaceOwnership6(pim6, rin, NULL), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership6(pim6, r1, NULL), NO_ERROR);
    EXPECT(MgmGetProtocolOnInterface6(r1, &any6, &pid, &cid), NO_ERROR);
    CHECK(pid == 103 && cid == 6);
    EXPECT(MgmGetProtocolOnInterface(r1, 0, &pid, &cid), NO_ERROR);
    CHECK(pid == 103 && cid == 1);
    EXPECT(MgmAddGroupMembershipEntry6(pim6, NULL, &g6, r1, NULL, both), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry6(pim6, NULL, NULL, r1, NULL, both), ERROR_INVALID_PARAMETER);
    EXPECT(MgmAddGroupMembershipEntry(pim6, 0, 0, g1, ONES, r1, 0, both), ERROR_INVALID_PARAMETER);
    ask("traffic6");
    wait_for(&rpf6, 1, "IPv6 RPF");
    wait_for(&creation6, 1, "IPv6 creation alert");
    ask("traffic6");
    size = 0;
    EXPECT(MgmGetMfe6(&s6, &g6, &size, buf), ERROR_INSUFFICIENT_BUFFER);
    CHECK(size == SIZEOF_MGM_MFE6(1));
    size = sizeof buf;
    EXPECT(MgmGetMfe6(&s6, &g6, &size, buf), NO_ERROR);
    MGM_MFE6 *m6 = (MGM_MFE6 *)buf;
    CHECK(!memcmp(&m6->Group, &g6, 16) && !memcmp(&m6->Source, &s6, 16));
    CHECK(m6->dwInIfIndex == rin && m6->dwInIfProtocol == 103 && m6->ulNumOutIf == 1);
    CHECK(m6->rgOutInfo[0].dwOutIfIndex == r1 && m6->rgOutInfo[0].ullOutPackets >= 10);
    CHECK(m6->ullInPkts >= 10 && m6->ullInOctets > m6->ullInPkts);
    EXPECT(MgmGetMfe6(&s6, NULL, &size, buf), ERROR_INVALID_PARAMETER);
    EXPECT(MgmGetFirstMfe6(&size, buf, &n), ERROR_NO_MORE_ITEMS);
    CHECK(n == 1 && !memcmp(&m6->Group, &g6, 16));
    EXPECT(MgmGetNextMfe6(&s6, &g6, &size, buf, &n), ERROR_NO_MORE_ITEMS);
    CHECK(n == 0);
    /* The IPv4 walk still lists the IPv4 MFEs only. */
    size = sizeof buf;
    EXPECT(MgmGetFirstMfe(&size, buf, &n), ERROR_NO_MORE_ITEMS);
    CHECK(n == 2);
    EXPECT(MgmSetMfe6(pim6, &s6, &g6, r1, NULL, NULL), NO_ERROR);
    size = sizeof buf;
    EXPECT(MgmGetMfe6(&s6, &g6, &size, buf), NO_ERROR);
    CHECK(m6->dwInIfIndex == r1);
    EXPECT(MgmSetMfe6(pim6, &s6, &g6, rin, NULL, NULL), NO_ERROR);
    EXPECT(MgmGroupEnumerationStart(pim6, ALL_SOURCES, &e), NO_ERROR);
    size = sizeof buf;
    EXPECT(MgmGroupEnumerationGetNext6(e, &size, buf, &n), ERROR_NO_MORE_ITEMS);
    CHECK(n == 1 && !memcmp(&((SOURCE_GROUP_ENTRY6 *)buf)->Group, &g6, 16));
    EXPECT(MgmGroupEnumerationEnd(e), NO_ERROR);
    EXPECT(MgmDeleteGroupMembershipEntry6(pim6, NULL, &g6, r1, NULL, both), NO_ERROR);
    EXPECT(MgmDeleteGroupMembershipEntry6(pim6, NULL, &g6, r1, NULL, both), ERROR_NOT_FOUND);
    EXPECT(MgmReleaseInterfaceOwnership6(pim6, r1, &any6), NO_ERROR);
    EXPECT(MgmReleaseInterfaceOwnership6(pim6, r1, &any6), ERROR_INVALID_PARAMETER);
    EXPECT(MgmReleaseInterfaceOwnership6(pim6, rin, NULL), NO_ERROR);

    /* Going away: not while owning; IGMP hears of PIM leaving the link they share. */
    EXPECT(MgmDeRegisterMProtocol(pim), ERROR_CAN_NOT_COMPLETE);
    EXPECT(MgmReleaseInterfaceOwnership(pim, r2, 0), NO_ERROR);
    wait_for(&enables, 1, "enable IGMP");
    CHECK(atomic_load(&disables) == 1);
    EXPECT(MgmReleaseInterfaceOwnership(pim, r2, 0), ERROR_INVALID_PARAMETER);
    EXPECT(MgmReleaseInterfaceOwnership(pim, rin, 0), NO_ERROR);
    wait_for(&deletions, 2, "MFE deleted");
    EXPECT(MgmReleaseInterfaceOwnership(pim, r1, 0), NO_ERROR);
    EXPECT(MgmReleaseInterfaceOwnership(igmp, r2, 0), NO_ERROR);
    EXPECT(MgmGetProtocolOnInterface(r1, 0, &pid, &cid), ERROR_NOT_FOUND);
    EXPECT(MgmDeRegisterMProtocol(pim), NO_ERROR);
    EXPECT(MgmDeRegisterMProtocol(pim), ERROR_INVALID_PARAMETER);
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), ERROR_INVALID_PARAMETER);
    EXPECT(MgmDeRegisterMProtocol(igmp), NO_ERROR);
    EXPECT(MgmDeRegisterMProtocol(dvmrp), NO_ERROR);
    EXPECT(MgmDeRegisterMProtocol(pim6), NO_ERROR);
    CHECK(atomic_load(&lost) == 0);
    return 0;
}

/* mgmd restarts under a registered protocol: a clear error, reported once, then a new
 * registration works. */
static int restart(const char *socket) {
    ROUTING_PROTOCOL_CONFIG cfg = callbacks();
    HANDLE pim, pim2;
    EXPECT(MgmInitialize(socket, mode, on_lost), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(&cfg, 103, 1, &pim), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), NO_ERROR);
    ask("restart");
    wait_for(&lost, 1, "connection lost");
    EXPECT(MgmTakeInterfaceOwnership(pim, r2, 0), ERROR_CONNECTION_INVALID);
    EXPECT(MgmRegisterMProtocol(&cfg, 103, 1, &pim2), NO_ERROR);
    CHECK(pim2 != pim);
    /* The old handle stays dead; the new one works, and deregistering the old forgets it. */
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), ERROR_CONNECTION_INVALID);
    EXPECT(MgmTakeInterfaceOwnership(pim2, r1, 0), NO_ERROR);
    EXPECT(MgmDeRegisterMProtocol(pim), NO_ERROR);
    EXPECT(MgmReleaseInterfaceOwnership(pim2, r1, 0), NO_ERROR);
    EXPECT(MgmDeRegisterMProtocol(pim2), NO_ERROR);
    CHECK(atomic_load(&lost) == 1);
    return 0;
}

/* mgmd stops answering (the test stops it with SIGSTOP): ERROR_TIMEOUT after
 * $MGM_REPLY_TIMEOUT_MS, not a hang. */
static int timeout(const char *socket) {
    HANDLE pim;
    EXPECT(MgmInitialize(socket, mode, NULL), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(NULL, 103, 1, &pim), NO_ERROR);
    ask("stop");
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), ERROR_TIMEOUT);
    ask("continue");
    return 0;
}

/* No mgmd, or one this user may not use. */
static int refused(const char *socket) {
    HANDLE h;
    DWORD pid, cid;
    EXPECT(MgmInitialize(socket, mode, NULL), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(NULL, 103, 1, &h), ERROR_CONNECTION_REFUSED);
    EXPECT(MgmGetProtocolOnInterface(1, 0, &pid, &cid), ERROR_CONNECTION_REFUSED);
    EXPECT(MgmDeRegisterMProtocol((HANDLE)(uintptr_t)1), ERROR_INVALID_PARAMETER);
    return 0;
}

static int denied(const char *socket) {
    HANDLE h;
    EXPECT(MgmInitialize(socket, mode, NULL), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(NULL, 103, 1, &h), ERROR_ACCESS_DENIED);
    return 0;
}

/* Takes r1 and joins, then is killed inside a call mgmd (stopped) does not answer. */
static int killed(const char *socket) {
    HANDLE pim;
    EXPECT(MgmInitialize(socket, mode, NULL), NO_ERROR);
    EXPECT(MgmRegisterMProtocol(NULL, 103, 1, &pim), NO_ERROR);
    EXPECT(MgmTakeInterfaceOwnership(pim, r1, 0), NO_ERROR);
    EXPECT(MgmAddGroupMembershipEntry(pim, 0, 0, inet_addr("239.1.1.1"), ONES, r1, 0,
                                      MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG), NO_ERROR);
    ask("kill");
    MgmTakeInterfaceOwnership(pim, r2, 0);
    return 1; /* not reached: killed in the call */
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SCENARIO SOCKET MODE [RIN R1 R2]\n", argv[0]);
        return 2;
    }
    mode = (DWORD)atoi(argv[3]);
    if (argc >= 7) {
        rin = (DWORD)atoi(argv[4]);
        r1 = (DWORD)atoi(argv[5]);
        r2 = (DWORD)atoi(argv[6]);
    }
    const char *s = argv[1];
    int r = !strcmp(s, "calls")     ? calls(argv[2])
            : !strcmp(s, "restart") ? restart(argv[2])
            : !strcmp(s, "timeout") ? timeout(argv[2])
            : !strcmp(s, "refused") ? refused(argv[2])
            : !strcmp(s, "denied")  ? denied(argv[2])
            : !strcmp(s, "killed")  ? killed(argv[2])
                                    : 2;
    if (r == 0) printf("ok %s\n", s);
    return r;
}
