/* The container's root (see rootfs.h); runs in the init before the service starts. */
#define _GNU_SOURCE
#include "rootfs.h"
#include "idmap.h"
#include "inroot.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
                    struct pn_error *e)
{
    if (mount(src, dst, type, flags, data) < 0)
        return pn_sys(e, "mount %s on %s", type ? type : src ? src : "(remount)", dst);
    return 0;
}

static int bind_read_only(const char *path, unsigned long extra, struct pn_error *e)
{
    if (do_mount(path, path, NULL, MS_BIND | MS_REC, NULL, e) < 0)
        return -1;
    return do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, NULL, e);
}

/* A root whose /proc, /sys or /dev is a symlink could aim our mounts at the host. */
static int ensure_dir(const char *path, struct pn_error *e)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return pn_fail(e, PN_ERR_REFUSED, 0, "refusing root: %s is a symlink", path);
        return S_ISDIR(st.st_mode) ? 0 : pn_fail(e, PN_ERR_REFUSED, 0, "refusing root: %s is not a directory", path);
    }
    if (errno != ENOENT || mkdir(path, 0755) < 0)
        return pn_sys(e, "create %s", path);
    return 0;
}

/* crun's do_pivot: pivot_root(".", ".") stacks the old root on the new one; detach it from there. */
static int pivot_into(const char *rootfs, struct pn_error *e)
{
    if (do_mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL, e) < 0)
        return -1;
    /* Device nodes in the root stay inert: the root is nodev (our /dev is a nodev tmpfs with the host's nodes bound). */
    struct statvfs sv;
    unsigned long keep = statvfs(rootfs, &sv) == 0 ? ((sv.f_flag & ST_NOATIME ? MS_NOATIME : 0) |
                                                      (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0)) : 0;
    if (do_mount(NULL, rootfs, NULL, MS_BIND | MS_REMOUNT | MS_NODEV | keep, NULL, e) < 0)
        return -1;
    if (chdir(rootfs) < 0)
        return pn_sys(e, "chdir %s", rootfs);
    if (ensure_dir("proc", e) < 0 || ensure_dir("sys", e) < 0 || ensure_dir("dev", e) < 0)
        return -1;
    cleanup_fd int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0)
        return pn_sys(e, "open /");
    /* errno is read by pn_sys right after the call that failed, before oldroot is closed. */
    if (syscall(SYS_pivot_root, ".", ".") < 0 || fchdir(oldroot) < 0 ||
        mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return pn_sys(e, "pivot_root into %s", rootfs);
    return 0;
}

/*
 * Every tmpfs gets a size= (the kernel's default is half the host's RAM): the pages are charged
 * to the writer's memory cgroup, and the size keeps one tmpfs from taking all of the container's.
 */
#define PN_DEFAULT_TMPFS (64L << 20)
#define PN_PTY_MAX "256" /* pseudo-terminals per container: a twelfth of what all containers share */

static const char *tmpfs_options(const struct pn_config *c, const char *mode, char *buf, size_t size)
{
    snprintf(buf, size, "mode=%s,size=%ld", mode, c->tmpfs_size > 0 ? c->tmpfs_size : PN_DEFAULT_TMPFS);
    return buf;
}

/* The only device nodes in a container's /dev: the host's own, bound in (bubblewrap's habit). */
static const char *const host_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
#define N_HOST_NODES (sizeof host_nodes / sizeof host_nodes[0])

/* Before pivot_root, while the host's /dev is in reach: a detached bind of each node, nosuid and noexec. */
static int clone_host_nodes(int *nodes, struct pn_error *e)
{
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC};
    for (size_t i = 0; i < N_HOST_NODES; i++) {
        char path[64];
        snprintf(path, sizeof path, "/dev/%s", host_nodes[i]);
        nodes[i] = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (nodes[i] < 0)
            return pn_sys(e, "clone the host's %s", path);
        if (mount_setattr(nodes[i], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
            return pn_sys(e, "set the flags of %s", path);
    }
    return 0;
}

/* A tmpfs /dev that is nodev itself (no node a process makes there opens), the host's nodes bound on it. */
static int setup_dev(const struct pn_config *c, const int *nodes, struct pn_error *e)
{
    char options[64];
    static const char *links[][2] = {
        {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"},
        {"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"},
    };
    if (do_mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, tmpfs_options(c, "755", options, sizeof options),
                 e) < 0)
        return -1;
    for (size_t i = 0; i < N_HOST_NODES; i++) {
        char path[64];
        snprintf(path, sizeof path, "/dev/%s", host_nodes[i]);
        cleanup_fd int placeholder = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        if (placeholder < 0 || move_mount(nodes[i], "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return pn_sys(e, "bind the host's %s", path);
    }
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlink(links[i][0], links[i][1]) < 0)
            return pn_sys(e, "symlink %s", links[i][1]);
    if (mkdir("/dev/pts", 0755) < 0 || mkdir("/dev/shm", 01777) < 0 || mkdir("/dev/mqueue", 0755) < 0)
        return pn_sys(e, "mkdir in /dev");
    /* max=: every devpts but the host's draws on one budget (kernel.pty.max less kernel.pty.reserve,
     * 3072 by default): one container took it all, and no other could open a terminal (exec -t). */
    if (do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620,gid=5,max=" PN_PTY_MAX, e) < 0)
        return -1;
    return do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(c, "1777", options, sizeof options),
                    e);
}

static int setup_proc_sys(int private_net, struct pn_error *e)
{
    static const char *read_only[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", NULL};
    static const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                   "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware", NULL};
    const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (do_mount("proc", "/proc", "proc", nosuid, NULL, e) < 0)
        return -1;
    if (do_mount("sysfs", "/sys", "sysfs", nosuid | MS_RDONLY, NULL, e) < 0) {
        /* sysfs of the host's net namespace may be refused; a read-only empty /sys then. */
        if (private_net || do_mount("tmpfs", "/sys", "tmpfs", nosuid | MS_RDONLY, "size=0", e) < 0)
            return -1;
    }
    struct stat st;
    for (int i = 0; read_only[i]; i++)
        if (lstat(read_only[i], &st) == 0 && bind_read_only(read_only[i], nosuid, e) < 0)
            return -1;
    for (int i = 0; masked[i]; i++) {
        if (lstat(masked[i], &st) < 0)
            continue;
        int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY | nosuid, "size=0")
                                     : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
        if (rc < 0)
            return pn_sys(e, "mask %s", masked[i]);
    }
    return 0;
}

/* Does the bind's option list ("ro,dev") hold word? */
static int has_option(const char *options, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = options; p < options + len;) {
        const char *end = memchr(p, ',', (size_t)(options + len - p));
        size_t field = end ? (size_t)(end - p) : (size_t)(options + len - p);
        if (field == n && !strncmp(p, word, n))
            return 1;
        p += field + 1;
    }
    return 0;
}

/* The value of the bind's option word "key=VALUE" (e.g. "owner=101:103"), copied into out; 0 if absent. */
static int option_value(const char *options, size_t len, const char *key, char *out, size_t size)
{
    size_t n = strlen(key);
    for (const char *p = options; p < options + len;) {
        const char *end = memchr(p, ',', (size_t)(options + len - p));
        size_t field = end ? (size_t)(end - p) : (size_t)(options + len - p);
        if (field > n && !strncmp(p, key, n)) {
            snprintf(out, size, "%.*s", (int)(field - n), p + n);
            return 1;
        }
        p += field + 1;
    }
    return 0;
}

/* Create component name in the directory parent: a directory, or (the last, for a file bind) an empty file. */
static int create_component(int parent, const char *name, int as_dir)
{
    if (as_dir)
        return mkdirat(parent, name, 0755) < 0 && errno != EEXIST ? -1 : 0;
    cleanup_fd int fd = openat(parent, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    return fd < 0 ? -1 : 0;
}

/* openat2 under rootfd: symlinks and `..` resolve inside the root. Other mounts may be crossed here: an
 * earlier bind of this container can hold a later one's target, and nothing else is mounted in the root yet. */
static int open_in_root(int rootfd, const char *path, int flags)
{
    int fd = pn_openat2(rootfd, path, flags, 0, 0x10ULL /* IN_ROOT */ | 0x02ULL /* NO_MAGICLINKS */);
    if (fd < 0)
        errno = -fd;
    return fd < 0 ? -1 : fd;
}

int open_bind_target(int rootfd, const char *target, int is_dir, struct pn_error *e)
{
    char prefix[4096];
    if (snprintf(prefix, sizeof prefix, "%s", target) >= (int)sizeof prefix)
        return pn_fail(e, PN_ERR_INVALID, ENAMETOOLONG, "bind target %s", target);
    /* securejoin's MkdirAll: each prefix resolved inside the root, a missing component made in its parent. */
    for (char *p = prefix + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        int last = saved == 0;
        cleanup_fd int here = open_in_root(rootfd, prefix, O_PATH);
        if (here < 0 && errno != ENOENT)
            return pn_fail(e, PN_ERR_REFUSED, errno, "bind target %s: %s", target, prefix);
        if (here < 0) {
            char *slash = strrchr(prefix, '/');
            *slash = 0;
            cleanup_fd int parent = open_in_root(rootfd, slash == prefix ? "/" : prefix, O_PATH | O_DIRECTORY);
            *slash = '/';
            struct stat st;
            if (parent >= 0 && fstatat(parent, slash + 1, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return pn_fail(e, PN_ERR_REFUSED, 0, "bind target %s: %s is a dangling symlink", target, prefix);
            if (parent < 0 || create_component(parent, slash + 1, !last || is_dir) < 0)
                return pn_fail(e, PN_ERR_INVALID, errno, "create bind target %s", target);
        }
        *p = saved;
        if (last)
            break;
    }
    int fd = open_in_root(rootfd, target, O_PATH);
    return fd < 0 ? pn_fail(e, PN_ERR_REFUSED, errno, "bind target %s", target) : fd;
}

/*
 * Clone the source's whole tree, set the flags on every mount of it (a bound / keeps /proc, /sys/fs/cgroup and
 * /dev/shm under it read-only too) before it is attached anywhere, then attach it at the resolved target.
 */
static int attach_bind(int named, const char *source, int target, const char *options, size_t len, struct pn_error *e)
{
    char owner[64];
    unsigned uid, gid;
    int owned = option_value(options, len, "owner=", owner, sizeof owner);
    if (owned && sscanf(owner, "%u:%u", &uid, &gid) != 2)
        return pn_fail(e, PN_ERR_INVALID, 0, "bind %s: bad owner %s", source, owner);
    cleanup_fd int tree = open_tree(named, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    if (tree < 0)
        return pn_fail(e, PN_ERR_INVALID, errno, "bind source %s", source);
    if (owned && idmap_tree(tree, source, uid, gid, e) < 0)
        return -1;
    struct mount_attr attr = {0};
    if (has_option(options, len, "ro"))
        attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (!has_option(options, len, "suid"))
        attr.attr_set |= MOUNT_ATTR_NOSUID;
    if (!has_option(options, len, "dev"))
        attr.attr_set |= MOUNT_ATTR_NODEV;
    if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
        return pn_sys(e, "set the flags of bind %s", source);
    if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return pn_sys(e, "attach bind %s", source);
    return 0;
}

/*
 * A bind's source is named exactly, no symlink on the way: prodng stores the real path when the bind is asked
 * for, and mounts it at every start (restarts included). A symlink swapped in since would aim the bind at
 * another tree: a container that writes a parent of the source through a :rw bind made it `-> /` and read the
 * host's root at its next restart. An owned bind would aim its idmap at another tree the same way.
 */
static int open_bind_source(const char *source, struct pn_error *e)
{
    int fd = pn_openat2(AT_FDCWD, source, O_PATH, 0, 0x04ULL /* NO_SYMLINKS */);
    if (fd == -ELOOP)
        return pn_fail(e, PN_ERR_REFUSED, 0, "bind source %s goes through a symlink now (a bind takes its real path)",
                       source);
    return fd < 0 ? pn_fail(e, PN_ERR_INVALID, -fd, "bind source %s", source) : fd;
}

static int setup_binds(const struct pn_config *c, struct pn_error *e)
{
    char source[4096];
    cleanup_fd int rootfd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return pn_sys(e, "open %s", c->rootfs);
    for (int i = 0; i < c->nbinds; i++) {
        const char *src = strchr(c->binds[i], 0x1f) + 1;
        const char *target = strchr(src, 0x1f) + 1;
        snprintf(source, sizeof source, "%.*s", (int)(target - 1 - src), src);
        cleanup_fd int named = open_bind_source(source, e);
        struct stat st;
        if (named < 0)
            return -1;
        if (fstat(named, &st) < 0)
            return pn_fail(e, PN_ERR_INVALID, errno, "bind source %s", source);
        cleanup_fd int at = open_bind_target(rootfd, target, S_ISDIR(st.st_mode), e);
        if (at < 0 || attach_bind(named, source, at, c->binds[i], (size_t)(src - 1 - c->binds[i]), e) < 0)
            return -1;
    }
    return 0;
}

/* The fresh /run, /tmp and the service's runtime directories in it (systemd's RuntimeDirectory=). */
static int setup_run_tmp(const struct pn_config *c, struct pn_error *e)
{
    char run[64], tmp[64];
    if (ensure_dir("/run", e) < 0 || ensure_dir("/tmp", e) < 0 ||
        do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(c, "755", run, sizeof run), e) < 0 ||
        do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(c, "1777", tmp, sizeof tmp), e) < 0)
        return -1;
    for (int i = 0; i < c->nrundirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "/run/%s", c->rundirs[i]);
        if ((mkdir(path, 0755) < 0 && errno != EEXIST) || lchown(path, c->uid, c->gid) < 0)
            return pn_sys(e, "runtime directory %s", path);
    }
    return 0;
}

static void close_nodes(int (*nodes)[N_HOST_NODES])
{
    for (size_t i = 0; i < N_HOST_NODES; i++)
        pn_close_fdp(&(*nodes)[i]);
}

int setup_rootfs(const struct pn_config *c, int private_net, struct pn_error *e)
{
    __attribute__((cleanup(close_nodes))) int nodes[N_HOST_NODES] = {-1, -1, -1, -1, -1, -1};
    if (do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, e) < 0 || setup_binds(c, e) < 0 ||
        clone_host_nodes(nodes, e) < 0)
        return -1;
    if (pivot_into(c->rootfs, e) < 0 || setup_dev(c, nodes, e) < 0 || setup_proc_sys(private_net, e) < 0)
        return -1;
    return setup_run_tmp(c, e);
}
