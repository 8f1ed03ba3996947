/* The one call Python makes into C (prodng_native.h): setns for a thread of the network keeper. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>

#include "prodng_native.h"

int pn_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}
