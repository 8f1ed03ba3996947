/* Idmapped binds (see idmap.h): systemd-nspawn's --bind=...:idmap, narrowed to one owner. */
#define _GNU_SOURCE
#include "idmap.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define LAST_ID 4294967294U /* (uid_t)-1 is no id and cannot be mapped */

/* A map that trades a and b and keeps every other id: at most five lines, "inside outside count". */
static int swap_map(char *buf, size_t size, unsigned a, unsigned b)
{
    unsigned lo = a < b ? a : b, hi = a < b ? b : a;
    if (lo == hi)
        return snprintf(buf, size, "0 0 %u\n", LAST_ID + 1);
    int n = 0;
    if (lo > 0)
        n += snprintf(buf + n, size - n, "0 0 %u\n", lo);
    n += snprintf(buf + n, size - n, "%u %u 1\n", lo, hi);
    if (hi - lo > 1)
        n += snprintf(buf + n, size - n, "%u %u %u\n", lo + 1, lo + 1, hi - lo - 1);
    n += snprintf(buf + n, size - n, "%u %u 1\n", hi, lo);
    if (hi < LAST_ID)
        n += snprintf(buf + n, size - n, "%u %u %u\n", hi + 1, hi + 1, LAST_ID - hi);
    return n;
}

static int write_map(pid_t host_pid, const char *which, const char *map, struct pn_error *e)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", host_pid, which);
    cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map))
        return pn_sys(e, "write %s", path);
    return 0;
}

/*
 * A user namespace holding the maps, as an fd (mount_setattr takes the maps from it). A child makes it
 * and waits; we write its maps (that needs CAP_SETUID in the parent namespace: ours). This runs in the
 * init before pivot_root: its pid namespace is the container's but /proc is still the host's, so the
 * child names itself by its host pid (/proc/self there).
 */
static int map_userns(const char *uid_map, const char *gid_map, struct pn_error *e)
{
    cleanup_pipe int told[2] = {-1, -1};
    cleanup_pipe int done[2] = {-1, -1};
    if (pipe2(told, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
        return pn_sys(e, "pipe");
    pid_t child = fork();
    if (child < 0)
        return pn_sys(e, "fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char self[32] = "";
        pid_t host_pid = readlink("/proc/self", self, sizeof self - 1) > 0 ? atoi(self) : 0;
        if (unshare(CLONE_NEWUSER) < 0)
            host_pid = 0;
        if (write(told[1], &host_pid, sizeof host_pid) != sizeof host_pid) {}
        char byte;
        close(done[1]);
        if (read(done[0], &byte, 1) < 0) {} /* until the parent has what it needs */
        _exit(0);
    }
    pid_t host_pid = 0;
    int fd = -1;
    close(told[1]);
    told[1] = -1;
    if (read(told[0], &host_pid, sizeof host_pid) != sizeof host_pid || host_pid <= 0)
        pn_fail(e, PN_ERR_SYSTEM, 0, "idmapped bind: no user namespace for its map");
    else if (write_map(host_pid, "uid_map", uid_map, e) == 0 && write_map(host_pid, "gid_map", gid_map, e) == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", host_pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            pn_sys(e, "open %s", path);
    }
    close(done[1]);
    done[1] = -1;
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    return fd;
}

int idmap_tree(int tree, const char *source, uid_t uid, gid_t gid, struct pn_error *e)
{
    struct stat st;
    if (fstat(tree, &st) < 0)
        return pn_sys(e, "bind source %s", source);
    /* The service's files would be root's on the host, setuid bits and all: a root-owned SRC keeps root's. */
    if (st.st_uid == 0)
        return pn_fail(e, PN_ERR_INVALID, 0,
                       "bind source %s is owned by root: owner= gives the service its owner's files, and never "
                       "root's (chown it to any unprivileged user, who need not exist in the container)",
                       source);
    char uid_map[256], gid_map[256];
    swap_map(uid_map, sizeof uid_map, st.st_uid, uid);
    /* The group trades places only when it is not root's (for the same reason). */
    swap_map(gid_map, sizeof gid_map, st.st_gid ? st.st_gid : gid, gid);
    cleanup_fd int userns = map_userns(uid_map, gid_map, e);
    if (userns < 0)
        return -1;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (unsigned long long)userns};
    if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
        return pn_fail(e, PN_ERR_INVALID, errno, "bind source %s cannot be idmapped for owner= (its filesystem%s)",
                       source, errno == EINVAL ? " or one mounted under it does not support it" : "");
    return 0;
}
