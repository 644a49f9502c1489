#include <stdio.h>
#include <net/if.h>
#include <arpa/inet.h>
#include "mgm.h"
int main(int argc, char **argv) {
    HANDLE pim, other;
    DWORD r = MgmInitialize(argv[1], MGM_DISPATCH_CALLER);
    if (r != NO_ERROR) return 10;
    unsigned ifi = if_nametoindex("va");
    printf("register %u\n", MgmRegisterMProtocol(NULL, 103, 1, &pim));
    printf("register again %u (183)\n", MgmRegisterMProtocol(NULL, 103, 1, &other));
    printf("event fd %d\n", MgmGetEventFd());
    printf("take %u\n", MgmTakeInterfaceOwnership(pim, ifi, 0));
    printf("deregister while owning %u (1003)\n", MgmDeRegisterMProtocol(pim));
    DWORD pid = 0, cid = 0;
    r = MgmGetProtocolOnInterface(ifi, 0, &pid, &cid);
    printf("protocol on %u: %u %u/%u (0 103/1)\n", ifi, r, pid, cid);
    DWORD g = inet_addr("239.1.2.3"), ones = 0xffffffff;
    printf("join (*,G) %u\n", MgmAddGroupMembershipEntry(pim, 0, 0, g, ones, ifi, 0, MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG));
    printf("join a unicast group %u (87)\n", MgmAddGroupMembershipEntry(pim, 0, 0, inet_addr("10.0.0.1"), ones, ifi, 0, MGM_JOIN_STATE_FLAG));
    printf("leave %u\n", MgmDeleteGroupMembershipEntry(pim, 0, 0, g, ones, ifi, 0, MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG));
    printf("leave again %u (1168)\n", MgmDeleteGroupMembershipEntry(pim, 0, 0, g, ones, ifi, 0, MGM_JOIN_STATE_FLAG));
    printf("release %u\n", MgmReleaseInterfaceOwnership(pim, ifi, 0));
    printf("release again %u (87)\n", MgmReleaseInterfaceOwnership(pim, ifi, 0));
    printf("deregister %u\n", MgmDeRegisterMProtocol(pim));
    printf("bad handle %u (87)\n", MgmTakeInterfaceOwnership(pim, ifi, 0));
    return 0;
}
