/* mgm-static: a static multicast routing daemon on libmgm, the example of libmgm(3).
 *
 * It reads routes, one per line ("SOURCE GROUP IIF OIF..." with interface names; '#'
 * starts a comment), registers with mgmd as a routing protocol, takes the interfaces its
 * routes use, joins each route's (S,G) on its outgoing interfaces, and then answers mgmd's
 * callbacks: an RPF callback with the route's incoming interface, a creation alert by
 * keeping the MFE to the route's own outgoing interfaces. Callbacks run on its own poll()
 * loop (MGM_DISPATCH_CALLER), beside its standard input, which takes commands:
 *
 *   release IFNAME   release the interface (mgmd forwards nothing there for it once the
 *                    call returns), then print "released IFNAME"
 *   take IFNAME      take it again and join its routes there
 *   quit             release everything, deregister, exit (so do SIGINT and SIGTERM)
 *
 * Build: cc -o mgm-static mgm-static.c $(pkg-config --cflags --libs mgm)
 * Run:   mgm-static [-s SOCKET] ROUTES */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/signalfd.h>

#include <mgm.h>

/* The protocol id mgm-static registers with (RRAS's PROTO_IP_NETMGMT: static routes). */
#define PROTO_STATIC 3
#define MAX_ROUTES 256
#define MAX_OIFS 32
#define MAX_IFS 64

struct route {
    DWORD source, group, iif;
    DWORD oifs[MAX_OIFS];
    int n_oifs;
};

static struct route routes[MAX_ROUTES];
static int n_routes;
static DWORD owned[MAX_IFS];
static int n_owned;
static HANDLE proto;

static const char *ifname(DWORD ifindex, char *buf) {
    return if_indextoname(ifindex, buf) ? buf : "?";
}

static const char *ip(DWORD addr, char *buf) {
    struct in_addr a = {.s_addr = addr};
    return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static struct route *find(DWORD source, DWORD group) {
    for (int i = 0; i < n_routes; i++)
        if (routes[i].source == source && routes[i].group == group) return &routes[i];
    return NULL;
}

/* RPF: the route's incoming interface, whatever interface the packet came in on. */
static DWORD on_rpf(DWORD s, DWORD sm, DWORD g, DWORD gm, PDWORD iif, PDWORD iif_nexthop,
                    PDWORD upstream, DWORD hdr_size, PBYTE hdr, PBYTE route) {
    (void)sm; (void)gm; (void)upstream; (void)hdr_size; (void)hdr; (void)route;
    char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], n[IF_NAMESIZE];
    struct route *r = find(s, g);
    if (r) {
        *iif = r->iif;
        *iif_nexthop = 0;
    }
    printf("rpf %s %s -> %s\n", ip(s, a), ip(g, b), ifname(*iif, n));
    return NO_ERROR;
}

/* Creation alert: only the route's outgoing interfaces. */
static DWORD on_creation(DWORD s, DWORD sm, DWORD g, DWORD gm, DWORD iif, DWORD iif_nexthop,
                         DWORD count, PMGM_IF_ENTRY oifs) {
    (void)sm; (void)gm; (void)iif; (void)iif_nexthop;
    char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], n[IF_NAMESIZE];
    struct route *r = find(s, g);
    printf("creation %s %s:", ip(s, a), ip(g, b));
    for (DWORD i = 0; i < count; i++) {
        int mine = 0;
        for (int j = 0; r && j < r->n_oifs; j++) mine |= r->oifs[j] == oifs[i].dwIfIndex;
        oifs[i].bIsEnabled = mine;
        if (mine) printf(" %s", ifname(oifs[i].dwIfIndex, n));
    }
    printf("\n");
    return NO_ERROR;
}

static DWORD on_deleted(DWORD s, DWORD g, DWORD reason) {
    char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
    printf("deleted %s %s (reason %u)\n", ip(s, a), ip(g, b), (unsigned)reason);
    return NO_ERROR;
}

static void on_lost(void) {
    fprintf(stderr, "mgm-static: lost mgmd; exiting\n");
    exit(1);
}

static int load(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *words[2 + 1 + MAX_OIFS + 1];
        int n = 0;
        for (char *w = strtok(line, " \t\r\n"); w && n < (int)(sizeof words / sizeof *words);
             w = strtok(NULL, " \t\r\n"))
            words[n++] = w;
        if (n == 0) continue;
        struct in_addr s, g;
        if (n < 4 || n > 3 + MAX_OIFS || n_routes == MAX_ROUTES || !inet_aton(words[0], &s) ||
            !inet_aton(words[1], &g) || !IN_MULTICAST(ntohl(g.s_addr))) {
            fprintf(stderr, "%s:%d: expected SOURCE GROUP IIF OIF...\n", path, lineno);
            fclose(f);
            return -1;
        }
        struct route *r = &routes[n_routes++];
        r->source = s.s_addr;
        r->group = g.s_addr;
        for (int i = 2; i < n; i++) {
            DWORD ifindex = if_nametoindex(words[i]);
            if (!ifindex) {
                fprintf(stderr, "%s:%d: no interface %s\n", path, lineno, words[i]);
                fclose(f);
                return -1;
            }
            if (i == 2)
                r->iif = ifindex;
            else
                r->oifs[r->n_oifs++] = ifindex;
        }
    }
    fclose(f);
    return 0;
}

/* Takes an interface and joins the routes leaving by it there. */
static DWORD take(DWORD ifindex) {
    DWORD rc = MgmTakeInterfaceOwnership(proto, ifindex, 0);
    if (rc != NO_ERROR) return rc;
    int known = 0;
    for (int i = 0; i < n_owned; i++) known |= owned[i] == ifindex;
    if (!known && n_owned < MAX_IFS) owned[n_owned++] = ifindex;
    for (int i = 0; i < n_routes; i++)
        for (int j = 0; j < routes[i].n_oifs; j++)
            if (routes[i].oifs[j] == ifindex) {
                rc = MgmAddGroupMembershipEntry(proto, routes[i].source, 0xffffffff,
                                                routes[i].group, 0xffffffff, ifindex, 0,
                                                MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG);
                if (rc != NO_ERROR) return rc;
            }
    return NO_ERROR;
}

static void command(char *line) {
    char verb[16], name[IF_NAMESIZE + 1];
    if (sscanf(line, "%15s %16s", verb, name) != 2) {
        printf("error: release IFNAME | take IFNAME | quit\n");
        return;
    }
    DWORD ifindex = if_nametoindex(name);
    DWORD rc = !ifindex                   ? ERROR_INVALID_PARAMETER
               : !strcmp(verb, "release") ? MgmReleaseInterfaceOwnership(proto, ifindex, 0)
               : !strcmp(verb, "take")    ? take(ifindex)
                                          : ERROR_INVALID_PARAMETER;
    if (rc == NO_ERROR)
        printf("%s %s\n", !strcmp(verb, "release") ? "released" : "took", name);
    else
        printf("error: %s %s: %u\n", verb, name, (unsigned)rc);
}

static int shutdown_all(void) {
    for (int i = 0; i < n_owned; i++) MgmReleaseInterfaceOwnership(proto, owned[i], 0);
    DWORD rc = MgmDeRegisterMProtocol(proto);
    printf("deregistered (%u)\n", (unsigned)rc);
    return rc == NO_ERROR ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *socket = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "s:")) != -1) {
        if (opt != 's') return 2;
        socket = optarg;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: %s [-s SOCKET] ROUTES\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (load(argv[optind]) < 0) return 1;

    ROUTING_PROTOCOL_CONFIG cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pfnRpfCallback = on_rpf;
    cfg.pfnCreationAlertCallback = on_creation;
    cfg.pfnMfeDeletedCallback = on_deleted;
    DWORD rc = MgmInitialize(socket, MGM_DISPATCH_CALLER, on_lost);
    if (rc == NO_ERROR) rc = MgmRegisterMProtocol(&cfg, PROTO_STATIC, 1, &proto);
    if (rc != NO_ERROR) {
        fprintf(stderr, "mgm-static: registering with mgmd: %u\n", (unsigned)rc);
        return 1;
    }
    for (int i = 0; i < n_routes; i++) {
        DWORD ifs[1 + MAX_OIFS];
        ifs[0] = routes[i].iif;
        memcpy(ifs + 1, routes[i].oifs, routes[i].n_oifs * sizeof(DWORD));
        for (int j = 0; j <= routes[i].n_oifs; j++) {
            char n[IF_NAMESIZE];
            if ((rc = take(ifs[j])) != NO_ERROR) {
                fprintf(stderr, "mgm-static: taking %s: %u\n", ifname(ifs[j], n), (unsigned)rc);
                shutdown_all();
                return 1;
            }
        }
    }
    printf("ready: %d routes on %d interfaces\n", n_routes, n_owned);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    struct pollfd fds[3] = {
        {.fd = MgmGetEventFd(), .events = POLLIN},
        {.fd = signalfd(-1, &stop, SFD_CLOEXEC), .events = POLLIN},
        {.fd = STDIN_FILENO, .events = POLLIN},
    };
    char line[256];
    for (;;) {
        if (poll(fds, 3, -1) < 0 && errno != EINTR) break;
        if (fds[0].revents & POLLIN) MgmDispatch();
        if (fds[1].revents & POLLIN) break;
        if (fds[2].revents & (POLLIN | POLLHUP)) {
            if (!fgets(line, sizeof line, stdin) || !strncmp(line, "quit", 4)) break;
            command(line);
        }
    }
    return shutdown_all();
}
