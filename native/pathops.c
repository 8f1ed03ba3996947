/*
 * Path operations of the service plan (tmpfiles.d entries, RuntimeDirectory= and friends), applied by
 * the init inside the container after pivot_root, so every symlink resolves inside the root.
 * Encoded by prodng/payload/tmpfiles.py (PathOp.encode): kind US path US mode US uid US gid US argument.
 */
#define _GNU_SOURCE
#include "pathops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p of the parents (root-owned 0755, as systemd makes them). */
static void make_parents(char *path)
{
    for (char *p = path + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
}

/*
 * Open a file of the container's root for writing, as a regular file only and never blocking: the container
 * put whatever it liked at the path. A FIFO at /etc/hosts made the init wait in open() for a reader for ever,
 * before it answered the monitor: `start` hung holding the container's lock, and `rm -f` waited on it.
 * O_NONBLOCK fails a FIFO without a reader at once (ENXIO, as a socket); that, a symlink (ELOOP) or any other
 * node opened is replaced by a new file, once: the file is the init's to write.
 */
static int open_regular(const char *path, int flags, int mode)
{
    for (int attempt = 0;; attempt++) {
        int fd = open(path, flags | O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            return fd;
        int err = fd >= 0 ? EINVAL : errno;
        if (fd >= 0)
            close(fd);
        if (attempt > 0 || !(err == ENXIO || err == ELOOP || fd >= 0) || unlink(path) < 0) {
            errno = err;
            return -1;
        }
    }
}

static void adjust(const char *path, int mode, int uid, int gid)
{
    if (uid >= 0 || gid >= 0)
        if (lchown(path, uid, gid) < 0) {} /* best effort, as tmpfiles logs and goes on */
    struct stat st;
    if (mode >= 0 && lstat(path, &st) == 0 && !S_ISLNK(st.st_mode))
        if (chmod(path, mode) < 0) {}
}

/* One op; -1 with e filled when it cannot be applied (the caller decides whether that matters). */
int apply_path_op(const char *op, struct pn_error *e)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", op);
    char *field[6], *p = buf;
    for (int i = 0; i < 6; i++) {
        field[i] = p ? p : (char *)"";
        char *sep = p ? strchr(p, 0x1f) : NULL;
        if (sep)
            *sep = 0;
        p = sep ? sep + 1 : NULL;
    }
    char kind = field[0][0], *path = field[1];
    int mode = field[2][0] ? (int)strtol(field[2], NULL, 8) : -1;
    int uid = atoi(field[3]), gid = atoi(field[4]);
    if (path[0] != '/')
        return pn_fail(e, PN_ERR_INVALID, 0, "path op on a relative path %s", path);
    make_parents(path);
    int created = 0;
    switch (kind) {
    case 'd':
        created = mkdir(path, mode >= 0 ? mode : 0755) == 0;
        if (!created && errno != EEXIST)
            return pn_sys(e, "mkdir %s", path);
        break;
    case 'f':
    case 'F': {
        cleanup_fd int fd = open_regular(path, O_CREAT | (kind == 'F' ? O_TRUNC : O_EXCL), mode >= 0 ? mode : 0644);
        if (fd < 0 && errno != EEXIST)
            return pn_sys(e, "create %s", path);
        if (fd >= 0 && field[5][0] && write(fd, field[5], strlen(field[5])) < 0)
            return pn_sys(e, "write %s", path);
        created = fd >= 0;
        break;
    }
    case 'L':
        if (symlink(field[5], path) < 0 && errno != EEXIST)
            return pn_sys(e, "symlink %s", path);
        return 0;
    case 'p':
        if (mkfifo(path, mode >= 0 ? mode : 0644) < 0 && errno != EEXIST)
            return pn_sys(e, "mkfifo %s", path);
        created = 1;
        break;
    case 'z':
        break;
    default:
        return pn_fail(e, PN_ERR_INVALID, 0, "unknown path op %c", kind);
    }
    /* tmpfiles adjusts an existing directory too; a file only when made now or with z */
    if (created || kind == 'd' || kind == 'z')
        adjust(path, mode, uid, gid);
    return 0;
}

int write_hosts(const char *text, struct pn_error *e)
{
    cleanup_fd int fd = open_regular("/etc/hosts", O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return pn_sys(e, "write /etc/hosts");
    if (write(fd, text, strlen(text)) < 0)
        return pn_sys(e, "write /etc/hosts");
    return 0;
}
