/* The MGM conformance scenarios (tests/conformance/mgm.scenarios) through libmgm: one
 * scenario per run, every client a registration of this one process. Usage:
 *   conformance SOCKET FILE SCENARIO RIN R1 R2
 * Prints one line per step that went otherwise than the file says ("NAME line N: ...");
 * exits 0 when none did. tests/tests/conformance.rs runs it beside the Rust client. */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <arpa/inet.h>

#include <mgm.h>

#define SLOTS 8
#define MAX_EVENTS 32

static struct client {
    char name[32];
    HANDLE h;
    int used;
    const char *events[MAX_EVENTS];
    int n_events;
} clients[SLOTS];
static DWORD ifs[3];
static int failures;
static const char *scenario;
static int lineno;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s line %d: ", scenario, lineno);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

static void record(int slot, const char *kind) {
    struct client *c = &clients[slot];
    if (c->n_events < MAX_EVENTS) c->events[c->n_events++] = kind;
}

/* Each slot's callbacks record what they were called for (RRAS's callbacks carry no
 * context: a function per client). */
#define SLOT_CALLBACKS(N)                                                                     \
    static DWORD rpf##N(DWORD a, DWORD b, DWORD c, DWORD d, PDWORD e, PDWORD f, PDWORD g,  \
                        DWORD h, PBYTE i, PBYTE j) {                                          \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h; (void)i;     \
        (void)j; record(N, "rpf"); return NO_ERROR;                                           \
    }                                                                                         \
    static DWORD creation##N(DWORD a, DWORD b, DWORD c, DWORD d, DWORD e, DWORD f, DWORD g, \
                             PMGM_IF_ENTRY h) {                                               \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h;              \
        record(N, "creation_alert"); return NO_ERROR;                                         \
    }                                                                                         \
    static DWORD prune##N(DWORD a, DWORD b, DWORD c, DWORD d, DWORD e, DWORD f, BOOL g,     \
                          PDWORD h) {                                                         \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h;              \
        record(N, "prune_alert"); return NO_ERROR;                                            \
    }                                                                                         \
    static DWORD join##N(DWORD a, DWORD b, DWORD c, DWORD d, BOOL e) {                      \
        (void)a; (void)b; (void)c; (void)d; (void)e; record(N, "join_alert"); return NO_ERROR; \
    }                                                                                         \
    static DWORD wrong##N(DWORD a, DWORD b, DWORD c, DWORD d, DWORD e, PBYTE f) {           \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f;                                \
        record(N, "wrong_interface"); return NO_ERROR;                                        \
    }                                                                                         \
    static DWORD ljoin##N(DWORD a, DWORD b, DWORD c, DWORD d, DWORD e, DWORD f) {           \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; record(N, "local_join");       \
        return NO_ERROR;                                                                      \
    }                                                                                         \
    static DWORD lleave##N(DWORD a, DWORD b, DWORD c, DWORD d, DWORD e, DWORD f) {          \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; record(N, "local_leave");      \
        return NO_ERROR;                                                                      \
    }                                                                                         \
    static DWORD disable##N(DWORD a, DWORD b) {                                             \
        (void)a; (void)b; record(N, "disable_igmp"); return NO_ERROR;                         \
    }                                                                                         \
    static DWORD enable##N(DWORD a, DWORD b) {                                              \
        (void)a; (void)b; record(N, "enable_igmp"); return NO_ERROR;                          \
    }                                                                                         \
    static DWORD deleted##N(DWORD a, DWORD b, DWORD c) {                                    \
        (void)a; (void)b; (void)c; record(N, "mfe_deleted"); return NO_ERROR;                 \
    }                                                                                         \
    static DWORD gone##N(DWORD a, DWORD b) {                                                \
        (void)a; (void)b; record(N, "interface_gone"); return NO_ERROR;                       \
    }                                                                                         \
    static DWORD prune6_##N(const struct in6_addr *a, const struct in6_addr *b, DWORD c,    \
                            const struct in6_addr *d, BOOL e, PDWORD f) {                     \
        (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; record(N, "prune_alert");      \
        return NO_ERROR;                                                                      \
    }                                                                                         \
    static DWORD join6_##N(const struct in6_addr *a, const struct in6_addr *b, BOOL c) {    \
        (void)a; (void)b; (void)c; record(N, "join_alert"); return NO_ERROR;                  \
    }                                                                                         \
    static DWORD ljoin6_##N(const struct in6_addr *a, const struct in6_addr *b, DWORD c,    \
                            const struct in6_addr *d) {                                       \
        (void)a; (void)b; (void)c; (void)d; record(N, "local_join"); return NO_ERROR;        \
    }                                                                                         \
    static DWORD lleave6_##N(const struct in6_addr *a, const struct in6_addr *b, DWORD c,   \
                             const struct in6_addr *d) {                                      \
        (void)a; (void)b; (void)c; (void)d; record(N, "local_leave"); return NO_ERROR;       \
    }                                                                                         \
    static DWORD disable6_##N(DWORD a, const struct in6_addr *b) {                          \
        (void)a; (void)b; record(N, "disable_igmp"); return NO_ERROR;                         \
    }                                                                                         \
    static DWORD enable6_##N(DWORD a, const struct in6_addr *b) {                           \
        (void)a; (void)b; record(N, "enable_igmp"); return NO_ERROR;                          \
    }                                                                                         \
    static MGM_IPV6_CALLBACKS v6_##N = {                                                      \
        .pfnPruneAlertCallback6 = prune6_##N,                                                 \
        .pfnJoinAlertCallback6 = join6_##N,                                                   \
        .pfnLocalJoinCallback6 = ljoin6_##N,                                                  \
        .pfnLocalLeaveCallback6 = lleave6_##N,                                                \
        .pfnDisableMldCallback6 = disable6_##N,                                               \
        .pfnEnableMldCallback6 = enable6_##N,                                                 \
    };                                                                                        \
    static const ROUTING_PROTOCOL_CONFIG config##N = {                                        \
        .pfnRpfCallback = rpf##N,                                                             \
        .pfnCreationAlertCallback = creation##N,                                              \
        .pfnPruneAlertCallback = prune##N,                                                    \
        .pfnJoinAlertCallback = join##N,                                                      \
        .pfnWrongIfCallback = wrong##N,                                                       \
        .pfnLocalJoinCallback = ljoin##N,                                                     \
        .pfnLocalLeaveCallback = lleave##N,                                                   \
        .pfnDisableIgmpCallback = disable##N,                                                 \
        .pfnEnableIgmpCallback = enable##N,                                                   \
        .pfnMfeDeletedCallback = deleted##N,                                                  \
        .pfnInterfaceGoneCallback = gone##N,                                                  \
        .pIpv6Callbacks = &v6_##N,                                                            \
    };

SLOT_CALLBACKS(0)
SLOT_CALLBACKS(1)
SLOT_CALLBACKS(2)
SLOT_CALLBACKS(3)
SLOT_CALLBACKS(4)
SLOT_CALLBACKS(5)
SLOT_CALLBACKS(6)
SLOT_CALLBACKS(7)
static const ROUTING_PROTOCOL_CONFIG *configs[SLOTS] = {
    &config0, &config1, &config2, &config3, &config4, &config5, &config6, &config7,
};

static struct client *client(const char *name, int create) {
    for (int i = 0; i < SLOTS; i++)
        if (clients[i].used && !strcmp(clients[i].name, name)) return &clients[i];
    if (!create) {
        fail("no client %s registered", name);
        return NULL;
    }
    for (int i = 0; i < SLOTS; i++)
        if (!clients[i].used) {
            clients[i].used = 1;
            snprintf(clients[i].name, sizeof clients[i].name, "%s", name);
            return &clients[i];
        }
    return NULL;
}

/* An interface "NAME[@NEXTHOP]": its index, and its next hop in either family. */
struct iface {
    DWORD ifindex;
    int v6;
    DWORD hop4;
    struct in6_addr hop6;
};

static struct iface iface(const char *s) {
    struct iface i = {0};
    char name[64];
    snprintf(name, sizeof name, "%s", s);
    char *at = strchr(name, '@');
    if (at) {
        *at++ = '\0';
        if (strchr(at, ':')) {
            i.v6 = 1;
            inet_pton(AF_INET6, at, &i.hop6);
        } else {
            inet_pton(AF_INET, at, &i.hop4);
        }
    }
    i.ifindex = !strcmp(name, "rin") ? ifs[0]
                : !strcmp(name, "r1") ? ifs[1]
                : !strcmp(name, "r2") ? ifs[2]
                                      : 999999;
    return i;
}

/* An address "*", "ADDR" or "ADDR/BITS" with its mask; `v6` says its family for "*". */
struct masked {
    int v6;
    DWORD a4, m4;
    struct in6_addr a6;
};

static struct masked masked(const char *s, int v6) {
    struct masked m = {.v6 = v6};
    if (!strcmp(s, "*")) return m;
    char addr[64];
    snprintf(addr, sizeof addr, "%s", s);
    char *slash = strchr(addr, '/');
    int bits = -1;
    if (slash) {
        *slash = '\0';
        bits = atoi(slash + 1);
    }
    m.v6 = strchr(addr, ':') != NULL;
    if (m.v6) {
        inet_pton(AF_INET6, addr, &m.a6);
    } else {
        inet_pton(AF_INET, addr, &m.a4);
        m.m4 = bits < 0 ? 0xffffffffu : htonl(bits == 0 ? 0 : 0xffffffffu << (32 - bits));
    }
    return m;
}

/* Runs callbacks that are due for up to `ms` milliseconds, or until `want` have come for c. */
static void dispatch(int ms, struct client *c, int want) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (c && c->n_events >= want) return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= ms) return;
        struct pollfd p = {.fd = MgmGetEventFd(), .events = POLLIN};
        if (poll(&p, 1, (int)(ms - spent)) > 0) MgmDispatch();
    }
}

static void expect(DWORD got, DWORD want, const char *what) {
    if (got != want) fail("%s returned %u, not %u", what, (unsigned)got, (unsigned)want);
}

static void step(char *line) {
    char *eq = strstr(line, " =");
    if (!eq) return;
    *eq = '\0';
    char *result = eq + 2;
    char *w[8];
    int n = 0;
    for (char *t = strtok(line, " \t\n"); t && n < 8; t = strtok(NULL, " \t\n")) w[n++] = t;
    char *r[MAX_EVENTS];
    int nr = 0;
    for (char *t = strtok(result, " \t\n"); t && nr < MAX_EVENTS; t = strtok(NULL, " \t\n")) r[nr++] = t;
    DWORD want = nr ? (DWORD)strtoul(r[0], NULL, 10) : 0;
    struct client *c;
    if (!strcmp(w[0], "register") && n == 4) {
        c = client(w[1], 1);
        int slot = (int)(c - clients);
        expect(MgmRegisterMProtocol(configs[slot], (DWORD)atoi(w[2]), (DWORD)atoi(w[3]), &c->h),
               want, "register");
    } else if (!strcmp(w[0], "deregister") && n == 2 && (c = client(w[1], 0))) {
        expect(MgmDeRegisterMProtocol(c->h), want, "deregister");
    } else if ((!strcmp(w[0], "take") || !strcmp(w[0], "release")) && n == 3 && (c = client(w[1], 0))) {
        struct iface i = iface(w[2]);
        int take = !strcmp(w[0], "take");
        DWORD got = i.v6 ? (take ? MgmTakeInterfaceOwnership6 : MgmReleaseInterfaceOwnership6)(
                               c->h, i.ifindex, &i.hop6)
                         : (take ? MgmTakeInterfaceOwnership : MgmReleaseInterfaceOwnership)(
                               c->h, i.ifindex, i.hop4);
        expect(got, want, w[0]);
    } else if (!strcmp(w[0], "owner") && n == 2) {
        struct iface i = iface(w[1]);
        DWORD p = 0, comp = 0;
        DWORD got = i.v6 ? MgmGetProtocolOnInterface6(i.ifindex, &i.hop6, &p, &comp)
                         : MgmGetProtocolOnInterface(i.ifindex, i.hop4, &p, &comp);
        expect(got, want, "owner");
        if (got == NO_ERROR && nr == 3 && (p != strtoul(r[1], NULL, 10) || comp != strtoul(r[2], NULL, 10)))
            fail("owner is %u %u, not %s %s", (unsigned)p, (unsigned)comp, r[1], r[2]);
    } else if ((!strcmp(w[0], "join") || !strcmp(w[0], "leave")) && n == 6 && (c = client(w[1], 0))) {
        struct masked g = masked(w[3], 0);
        struct masked s = masked(w[2], g.v6);
        struct iface i = iface(w[4]);
        DWORD flags = (DWORD)atoi(w[5]);
        int add = !strcmp(w[0], "join");
        DWORD got;
        if (g.v6) {
            got = (add ? MgmAddGroupMembershipEntry6 : MgmDeleteGroupMembershipEntry6)(
                c->h, &s.a6, &g.a6, i.ifindex, &i.hop6, flags);
        } else {
            got = (add ? MgmAddGroupMembershipEntry : MgmDeleteGroupMembershipEntry)(
                c->h, s.a4, s.m4, g.a4, g.m4, i.ifindex, i.hop4, flags);
        }
        expect(got, want, w[0]);
    } else if (!strcmp(w[0], "enum") && n == 3 && (c = client(w[1], 0))) {
        HANDLE e;
        DWORD got = MgmGroupEnumerationStart(c->h, !strcmp(w[2], "all") ? ALL_SOURCES : ANY_SOURCE, &e);
        int count = 0;
        /* Both families' entries: the IPv4 walk, then (a second enumeration) the IPv6 one. */
        for (int six = 0; got == NO_ERROR && six < 2; six++) {
            if (six && MgmGroupEnumerationStart(c->h, !strcmp(w[2], "all") ? ALL_SOURCES : ANY_SOURCE, &e) != NO_ERROR) break;
            BYTE buf[2 * sizeof(SOURCE_GROUP_ENTRY6)];
            DWORD r2;
            do {
                DWORD size = sizeof buf, k = 0;
                r2 = six ? MgmGroupEnumerationGetNext6(e, &size, buf, &k)
                         : MgmGroupEnumerationGetNext(e, &size, buf, &k);
                count += (int)k;
            } while (r2 == ERROR_MORE_DATA);
            if (r2 != ERROR_NO_MORE_ITEMS) fail("enumeration: %u", (unsigned)r2);
            MgmGroupEnumerationEnd(e);
        }
        if (count != (int)want) fail("enumeration: %d entries, not %u", count, (unsigned)want);
    } else if (!strcmp(w[0], "events") && n == 2 && (c = client(w[1], 0))) {
        dispatch(3000, c, nr);
        dispatch(200, NULL, 0);
        int same = c->n_events == nr;
        for (int i = 0; same && i < nr; i++) same = !strcmp(c->events[i], r[i]);
        if (!same) {
            printf("%s line %d: callbacks", scenario, lineno);
            for (int i = 0; i < c->n_events; i++) printf(" %s", c->events[i]);
            printf(", not");
            for (int i = 0; i < nr; i++) printf(" %s", r[i]);
            printf("\n");
            failures++;
        }
        c->n_events = 0;
    } else {
        fail("cannot run this line");
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s SOCKET FILE SCENARIO RIN R1 R2\n", argv[0]);
        return 2;
    }
    scenario = argv[3];
    for (int i = 0; i < 3; i++) ifs[i] = (DWORD)atoi(argv[4 + i]);
    if (MgmInitialize(argv[1], MGM_DISPATCH_CALLER, NULL) != NO_ERROR) return 2;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    char line[512];
    int in = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char name[64];
        if (sscanf(line, "scenario %63s", name) == 1) {
            in = !strcmp(name, scenario);
            found |= in;
            continue;
        }
        if (in && strspn(line, " \t\r\n") < strlen(line)) {
            /* Events of the calls before are counted only at an `events` line. */
            dispatch(0, NULL, 0);
            step(line);
        }
    }
    fclose(f);
    if (!found) {
        printf("%s: no such scenario\n", scenario);
        return 1;
    }
    return failures ? 1 : 0;
}
