/*
 * Host code that touches a file inside a container's root must resolve the path the container's
 * way: systemd's chase() and runc's securejoin do it with openat2(RESOLVE_IN_ROOT), so a symlink
 * the payload planted (`etc/passwd -> /etc/shadow`, `usr/sbin -> /usr/sbin`) resolves inside the
 * root, and `..` stops at it. glibc has no wrapper and Python 3.11 no os.openat2: the raw syscall.
 */
#define _GNU_SOURCE
#include "inroot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct pn_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int pn_openat2(int rootfd, const char *path, int flags, int mode, unsigned long long resolve)
{
    struct pn_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC);
    /* openat2 refuses a mode without O_CREAT or O_TMPFILE (EINVAL), unlike openat. */
    how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? (uint64_t)mode : 0;
    how.resolve = resolve;
    for (int attempt = 0; attempt < 8; attempt++) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return -EAGAIN;
}
