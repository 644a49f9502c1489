#include <stdio.h>
#include <net/if.h>
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
    printf("release %u\n", MgmReleaseInterfaceOwnership(pim, ifi, 0));
    printf("release again %u (87)\n", MgmReleaseInterfaceOwnership(pim, ifi, 0));
    printf("deregister %u\n", MgmDeRegisterMProtocol(pim));
    printf("bad handle %u (87)\n", MgmTakeInterfaceOwnership(pim, ifi, 0));
    return 0;
}
