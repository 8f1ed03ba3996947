/*
 * prodng native core: container spawn, the container's init, the monitor and exec.
 *
 * Built twice from this one file: into the cffi extension prodng._native (for
 * pn_exec, called from Python in one call so no Python runs after fork) and,
 * with shim_main.c, into the prodng-shim executable, the per-container monitor.
 * Library functions never exit; they return -1 and fill an error buffer. Only
 * forked children call _exit, after writing their error to a sync pipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prodng_native.h"

#define PN_MAX_ARGS 256
#define PN_MAX_LIST 32
#define TEMP_FAILURE(expr) ({ long _r; do _r = (long)(expr); while (_r == -1L && errno == EINTR); _r; })

extern char **environ;

struct pn_config {
    char *buf; /* the file's bytes; every string below points into it */
    const char *name, *rootfs, *workdir, *log, *status, *restart, *net, *events;
    long log_max;
    int restart_max, uid, gid, forking;
    const char *argv[PN_MAX_ARGS + 1];
    int argc;
    char *env[PN_MAX_ARGS + 1];
    int envc;
    const char *cgroups[PN_MAX_LIST];
    int ncgroups;
    const char *binds[PN_MAX_LIST]; /* "ro|rw" US source US target */
    int nbinds;
    const char *rundirs[PN_MAX_LIST]; /* systemd's RuntimeDirectory=: made in the fresh /run for uid:gid */
    int nrundirs;
    int caps[64];
    int ncaps;
    const char *keeper[PN_MAX_LIST + 1]; /* argv of the network keeper (dhcp, static): it owns the link */
    int nkeeper;
    const char *keeper_server; /* unix socket of a warm keeper that forks one per container, if it runs */
};

static int cap_last = 40;

static int fail_msg(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* In a forked child: report to the parent through the sync pipe, then die. */
static void __attribute__((noreturn)) child_fail(int syncfd, const char *msg)
{
    if (syncfd >= 0)
        (void)!write(syncfd, msg, strlen(msg));
    _exit(127);
}

/* ---- configuration: NUL-separated key/value pairs written by prodng.runtime ---- */

static int load_config(const char *path, struct pn_config *c, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    c->workdir = "/";
    c->restart = "no";
    c->net = "none";
    c->log_max = 1 << 20;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_msg(err, n, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (1 << 20)) {
        close(fd);
        return fail_msg(err, n, "config %s unreadable or too large", path);
    }
    c->buf = calloc(1, st.st_size + 2);
    ssize_t got = c->buf ? TEMP_FAILURE(read(fd, c->buf, st.st_size)) : -1;
    close(fd);
    if (got != st.st_size)
        return fail_msg(err, n, "read %s: short read", path);
    char *p = c->buf, *end = c->buf + got;
    while (p < end) {
        char *key = p;
        p += strlen(p) + 1;
        if (p >= end)
            return fail_msg(err, n, "config %s: key %s has no value", path, key);
        char *val = p;
        p += strlen(p) + 1;
#define LIST(k, arr, cnt, max) else if (!strcmp(key, k)) { if (cnt >= max) return fail_msg(err, n, "too many %s", k); arr[cnt++] = val; }
        if (!strcmp(key, "name")) c->name = val;
        else if (!strcmp(key, "rootfs")) c->rootfs = val;
        else if (!strcmp(key, "workdir")) c->workdir = val;
        else if (!strcmp(key, "log")) c->log = val;
        else if (!strcmp(key, "log_max")) c->log_max = atol(val);
        else if (!strcmp(key, "status")) c->status = val;
        else if (!strcmp(key, "restart")) c->restart = val;
        else if (!strcmp(key, "restart_max")) c->restart_max = atoi(val);
        else if (!strcmp(key, "net")) c->net = val;
        else if (!strcmp(key, "events")) c->events = val;
        else if (!strcmp(key, "keeper_server")) c->keeper_server = val;
        else if (!strcmp(key, "uid")) c->uid = atoi(val);
        else if (!strcmp(key, "gid")) c->gid = atoi(val);
        else if (!strcmp(key, "forking")) c->forking = atoi(val);
        else if (!strcmp(key, "cap")) { if (c->ncaps < 64) c->caps[c->ncaps++] = atoi(val); }
        LIST("arg", c->argv, c->argc, PN_MAX_ARGS)
        LIST("env", c->env, c->envc, PN_MAX_ARGS)
        LIST("cgroup", c->cgroups, c->ncgroups, PN_MAX_LIST)
        LIST("bind", c->binds, c->nbinds, PN_MAX_LIST)
        LIST("rundir", c->rundirs, c->nrundirs, PN_MAX_LIST)
        LIST("keeper", c->keeper, c->nkeeper, PN_MAX_LIST)
        else return fail_msg(err, n, "config %s: unknown key %s", path, key);
#undef LIST
    }
    if (!c->name || !c->rootfs || c->argc == 0)
        return fail_msg(err, n, "config %s: name, rootfs and arg are required", path);
    return 0;
}

/* ---- small helpers ---- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = TEMP_FAILURE(write(fd, text, strlen(text)));
    int saved = errno;
    close(fd);
    errno = saved;
    return w < 0 ? -1 : 0;
}

static void close_fds_except(int keep)
{
    if (keep < 3) {
        if (syscall(SYS_close_range, 3, ~0U, 0) == 0)
            return;
    } else if (syscall(SYS_close_range, 3, keep - 1, 0) == 0 && syscall(SYS_close_range, keep + 1, ~0U, 0) == 0) {
        return;
    }
    for (int fd = 3; fd < 65536; fd++)
        if (fd != keep)
            close(fd);
}

static int join_cgroups(const struct pn_config *c, char *err, size_t n)
{
    char path[4096];
    for (int i = 0; i < c->ncgroups; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", c->cgroups[i]);
        if (write_file(path, "0") < 0)
            return fail_msg(err, n, "join cgroup %s: %s", c->cgroups[i], strerror(errno));
    }
    return 0;
}

static int loopback_up(char *err, size_t n)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    int rc = s < 0 ? -1 : ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (s >= 0)
        close(s);
    return rc < 0 ? fail_msg(err, n, "bring up loopback: %s", strerror(errno)) : 0;
}

static int in_caps(const struct pn_config *c, int cap)
{
    for (int i = 0; i < c->ncaps; i++)
        if (c->caps[i] == cap)
            return 1;
    return 0;
}

/* Bounding set, uid/gid, capabilities, no_new_privs, seccomp: in that order,
 * because each later step needs a privilege the earlier one still holds. */
static int load_seccomp(char *err, size_t n)
{
    static const char *denied[] = {
        "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "init_module", "iopl", "ioperm", "kcmp", "kexec_file_load",
        "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
        "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root",
        "process_vm_readv", "process_vm_writev", "ptrace", "quotactl", "reboot", "request_key", "setns",
        "settimeofday", "swapoff", "swapon", "sysfs", "umount", "umount2", "uselib", "userfaultfd", "ustat",
        "vhangup", "adjtimex", "syslog", "_sysctl", NULL,
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return fail_msg(err, n, "seccomp_init failed");
    int rc = 0;
    for (int i = 0; denied[i] && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr != __NR_SCMP_ERROR)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* New user namespaces would hand back every capability dropped above. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    /* clone3 passes flags in memory seccomp cannot read: make libc fall back to clone. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc < 0 ? fail_msg(err, n, "seccomp: %s", strerror(-rc)) : 0;
}

static int drop_privileges(const struct pn_config *c, int keep_caps, char *err, size_t n)
{
    for (int cap = 0; cap <= cap_last; cap++)
        if (!(keep_caps && in_caps(c, cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return fail_msg(err, n, "drop capability %d: %s", cap, strerror(errno));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (c->gid && (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0))
        return fail_msg(err, n, "setgid %d: %s", c->gid, strerror(errno));
    if (c->uid && setresuid(c->uid, c->uid, c->uid) < 0)
        return fail_msg(err, n, "setuid %d: %s", c->uid, strerror(errno));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    for (int i = 0; keep_caps && c->uid == 0 && i < c->ncaps; i++) {
        data[c->caps[i] / 32].effective |= 1U << (c->caps[i] % 32);
        data[c->caps[i] / 32].permitted |= 1U << (c->caps[i] % 32);
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return fail_msg(err, n, "capset: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail_msg(err, n, "no_new_privs: %s", strerror(errno));
    return load_seccomp(err, n);
}

/* ---- the root: private mounts, pivot_root, /proc, /sys, /dev, tmpfs, binds ---- */

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
                    char *err, size_t n)
{
    if (mount(src, dst, type, flags, data) < 0)
        return fail_msg(err, n, "mount %s on %s: %s", type ? type : src, dst, strerror(errno));
    return 0;
}

static int bind_read_only(const char *path, unsigned long extra, char *err, size_t n)
{
    if (do_mount(path, path, NULL, MS_BIND | MS_REC, NULL, err, n) < 0)
        return -1;
    return do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, NULL, err, n);
}

/* A root whose /proc, /sys or /dev is a symlink could aim our mounts at the host. */
static int ensure_dir(const char *path, char *err, size_t n)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return fail_msg(err, n, "refusing root: %s is a symlink", path);
        return S_ISDIR(st.st_mode) ? 0 : fail_msg(err, n, "refusing root: %s is not a directory", path);
    }
    if (errno != ENOENT || mkdir(path, 0755) < 0)
        return fail_msg(err, n, "create %s: %s", path, strerror(errno));
    return 0;
}

static int pivot_into(const char *rootfs, char *err, size_t n)
{
    if (do_mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL, err, n) < 0)
        return -1;
    /* Device nodes a payload ships stay inert: the root is nodev (our own /dev is a fresh tmpfs). */
    struct statvfs sv;
    unsigned long keep = statvfs(rootfs, &sv) == 0 ? ((sv.f_flag & ST_NOATIME ? MS_NOATIME : 0) |
                                                      (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0)) : 0;
    if (do_mount(NULL, rootfs, NULL, MS_BIND | MS_REMOUNT | MS_NODEV | keep, NULL, err, n) < 0)
        return -1;
    if (chdir(rootfs) < 0)
        return fail_msg(err, n, "chdir %s: %s", rootfs, strerror(errno));
    if (ensure_dir("proc", err, n) < 0 || ensure_dir("sys", err, n) < 0 || ensure_dir("dev", err, n) < 0)
        return -1;
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0)
        return fail_msg(err, n, "open /: %s", strerror(errno));
    /* pivot_root(".", ".") stacks the old root on the new one; detach it from there. */
    int rc = syscall(SYS_pivot_root, ".", ".");
    if (rc == 0 && fchdir(oldroot) == 0 && mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) == 0)
        rc = umount2(".", MNT_DETACH);
    else if (rc == 0)
        rc = -1;
    int saved = errno;
    close(oldroot);
    if (rc < 0 || chdir("/") < 0)
        return fail_msg(err, n, "pivot_root into %s: %s", rootfs, strerror(saved));
    return 0;
}

static int setup_dev(char *err, size_t n)
{
    static const struct { const char *path; int major, minor; } nodes[] = {
        {"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
        {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
    };
    static const char *links[][2] = {
        {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"},
        {"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"},
    };
    if (do_mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k", err, n) < 0)
        return -1;
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        if (mknod(nodes[i].path, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0) {
            umask(old);
            return fail_msg(err, n, "mknod %s: %s", nodes[i].path, strerror(errno));
        }
    umask(old);
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlink(links[i][0], links[i][1]) < 0)
            return fail_msg(err, n, "symlink %s: %s", links[i][1], strerror(errno));
    if (mkdir("/dev/pts", 0755) < 0 || mkdir("/dev/shm", 01777) < 0 || mkdir("/dev/mqueue", 0755) < 0)
        return fail_msg(err, n, "mkdir in /dev: %s", strerror(errno));
    if (do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5",
                 err, n) < 0)
        return -1;
    return do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k", err, n);
}

static int setup_proc_sys(int private_net, char *err, size_t n)
{
    static const char *read_only[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", NULL};
    static const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                   "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware", NULL};
    const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (do_mount("proc", "/proc", "proc", nosuid, NULL, err, n) < 0)
        return -1;
    if (do_mount("sysfs", "/sys", "sysfs", nosuid | MS_RDONLY, NULL, err, n) < 0) {
        /* sysfs of the host's net namespace may be refused; a read-only empty /sys then. */
        if (private_net || do_mount("tmpfs", "/sys", "tmpfs", nosuid | MS_RDONLY, "size=0", err, n) < 0)
            return -1;
    }
    struct stat st;
    for (int i = 0; read_only[i]; i++)
        if (lstat(read_only[i], &st) == 0 && bind_read_only(read_only[i], nosuid, err, n) < 0)
            return -1;
    for (int i = 0; masked[i]; i++) {
        if (lstat(masked[i], &st) < 0)
            continue;
        int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY | nosuid, "size=0")
                                     : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
        if (rc < 0)
            return fail_msg(err, n, "mask %s: %s", masked[i], strerror(errno));
    }
    return 0;
}

/* Create target (under the root, not yet pivoted) refusing a symlink in any component,
 * so a hostile root cannot aim a bind at the host. */
static int make_bind_target(const char *rootfs, const char *target, int is_dir, char *path, size_t size,
                            char *err, size_t n)
{
    snprintf(path, size, "%s%s", rootfs, target);
    size_t offset = strlen(rootfs);
    for (char *p = path + offset + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        struct stat st;
        int last = saved == 0;
        if (lstat(path, &st) == 0) {
            if (S_ISLNK(st.st_mode)) {
                *p = saved;
                return fail_msg(err, n, "bind target %s: %s is a symlink", target, path + offset);
            }
        } else if (errno != ENOENT) {
            return fail_msg(err, n, "bind target %s: %s", target, strerror(errno));
        } else if (!last || is_dir ? mkdir(path, 0755) < 0
                                   : close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
            return fail_msg(err, n, "create bind target %s: %s", target, strerror(errno));
        }
        *p = saved;
        if (last)
            return 0;
    }
}

static int setup_binds(const struct pn_config *c, char *err, size_t n)
{
    char source[4096], path[8192];
    for (int i = 0; i < c->nbinds; i++) {
        const char *src = strchr(c->binds[i], 0x1f) + 1;
        const char *target = strchr(src, 0x1f) + 1;
        snprintf(source, sizeof source, "%.*s", (int)(target - 1 - src), src);
        struct stat st;
        if (stat(source, &st) < 0)
            return fail_msg(err, n, "bind source %s: %s", source, strerror(errno));
        if (make_bind_target(c->rootfs, target, S_ISDIR(st.st_mode), path, sizeof path, err, n) < 0 ||
            do_mount(source, path, NULL, MS_BIND | MS_REC, NULL, err, n) < 0)
            return -1;
        if (!strncmp(c->binds[i], "ro", 2) &&
            do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, err, n) < 0)
            return -1;
    }
    return 0;
}

static int setup_container(const struct pn_config *c, char *err, size_t n)
{
    char buf[16] = "";
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0)
        cap_last = atoi(buf);
    if (fd >= 0)
        close(fd);
    int private_net = strcmp(c->net, "host") != 0;
    if (join_cgroups(c, err, n) < 0)
        return -1;
    if (unshare(CLONE_NEWCGROUP) < 0 && errno != EINVAL)
        return fail_msg(err, n, "unshare cgroup namespace: %s", strerror(errno));
    if (private_net && loopback_up(err, n) < 0)
        return -1;
    if (sethostname(c->name, strlen(c->name)) < 0)
        return fail_msg(err, n, "sethostname: %s", strerror(errno));
    if (do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, err, n) < 0)
        return -1;
    if (setup_binds(c, err, n) < 0)
        return -1;
    if (pivot_into(c->rootfs, err, n) < 0 || setup_dev(err, n) < 0 || setup_proc_sys(private_net, err, n) < 0)
        return -1;
    if (ensure_dir("/run", err, n) < 0 || ensure_dir("/tmp", err, n) < 0 ||
        do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=10%", err, n) < 0 ||
        do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err, n) < 0)
        return -1;
    for (int i = 0; i < c->nrundirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "/run/%s", c->rundirs[i]);
        if ((mkdir(path, 0755) < 0 && errno != EEXIST) || lchown(path, c->uid, c->gid) < 0)
            return fail_msg(err, n, "runtime directory %s: %s", path, strerror(errno));
    }
    return 0;
}

/* ---- the service and PID 1 ---- */

static void __attribute__((noreturn)) exec_service(const struct pn_config *c, const char *const *argv, int syncfd)
{
    char err[512];
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    if (chdir(c->workdir) < 0) {
        snprintf(err, sizeof err, "chdir %s: %s", c->workdir, strerror(errno));
        child_fail(syncfd, err);
    }
    if (drop_privileges(c, 1, err, sizeof err) < 0)
        child_fail(syncfd, err);
    close_fds_except(syncfd);
    environ = (char **)c->env;
    execvp(argv[0], (char *const *)argv);
    snprintf(err, sizeof err, "exec %s: %s", argv[0], strerror(errno));
    child_fail(syncfd, err);
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* PID 1 inside: start the service, forward signals to it, reap every orphan. */
static void __attribute__((noreturn)) container_init(const struct pn_config *c, int syncfd)
{
    char err[512];
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    /* The monitor anchors the container (its log, its network keeper): without it, the container ends. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (setup_container(c, err, sizeof err) < 0)
        child_fail(syncfd, err);
    pid_t service = fork();
    if (service < 0) {
        snprintf(err, sizeof err, "fork: %s", strerror(errno));
        child_fail(syncfd, err);
    }
    if (service == 0) {
        setsid();
        exec_service(c, c->argv, syncfd);
    }
    prctl(PR_SET_NAME, "prodng-init", 0, 0, 0);
    close(syncfd);
    if (drop_privileges(c, 0, err, sizeof err) < 0)
        _exit(126);
    close_fds_except(-1);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(service > 0 ? service : -1, sig); /* a daemonized service: everyone but us */
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != service)
                continue;
            if (c->forking && exit_code(status) == 0) {
                service = -1; /* Type=forking: the daemon lives on in its children */
                continue;
            }
            kill(-1, SIGKILL); /* the service is gone: so is everything it left */
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            _exit(exit_code(status));
        }
        if (pid < 0 && errno == ECHILD && service == -1)
            _exit(0); /* the last process of a forking service is gone */
    }
}

/* ---- the monitor: outside the namespaces, one per container ---- */

struct monitor {
    const struct pn_config *c;
    int logfd, restarts, exit_code;
    long logsize;
    pid_t init_pid, keeper_pid;
    unsigned long long init_start;
    double started_at, finished_at;
    const char *state;
    char error[512];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

unsigned long long pn_starttime(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0)
        return 0;
    buf[got] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces; fields restart after ')' */
    unsigned long long start = 0;
    for (int field = 2; p && *p; p++)
        if (*p == ' ' && ++field == 22) {
            start = strtoull(p + 1, NULL, 10);
            break;
        }
    return start;
}

static void write_status(struct monitor *m)
{
    if (!m->c->status)
        return;
    char tmp[4200], text[2048];
    snprintf(tmp, sizeof tmp, "%s.tmp", m->c->status);
    int len = snprintf(text, sizeof text,
                       "state=%s\nmonitor_pid=%d\nmonitor_start=%llu\ninit_pid=%d\ninit_start=%llu\nrestarts=%d\n"
                       "exit_code=%d\nstarted_at=%.6f\nfinished_at=%.6f\nerror=%s\n",
                       m->state, getpid(), pn_starttime(getpid()), m->init_pid, m->init_start, m->restarts,
                       m->exit_code, m->started_at, m->finished_at, m->error);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    (void)!write(fd, text, len);
    fsync(fd);
    close(fd);
    rename(tmp, m->c->status);
}

/* One JSON line appended to the events journal (O_APPEND keeps lines whole). */
static void emit_event(const struct monitor *m, const char *kind)
{
    if (!m->c->events)
        return;
    char line[512];
    int len = snprintf(line, sizeof line, "{\"event\": \"%s\", \"name\": \"%s\", \"time\": %.6f, \"exit_code\": %d}\n",
                       kind, m->c->name, now(), m->exit_code);
    int fd = open(m->c->events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)!write(fd, line, len);
        close(fd);
    }
}

/* Bounded log: past log_max the file becomes log.1 (replacing the older one). */
static void write_log(struct monitor *m, const char *data, size_t len)
{
    if (m->logfd < 0)
        return;
    if (m->logsize + (long)len > m->c->log_max) {
        char old[4200];
        snprintf(old, sizeof old, "%s.1", m->c->log);
        rename(m->c->log, old);
        close(m->logfd);
        m->logfd = open(m->c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        m->logsize = 0;
    }
    if (m->logfd >= 0 && TEMP_FAILURE(write(m->logfd, data, len)) > 0)
        m->logsize += len;
}

static void log_line(struct monitor *m, const char *fmt, ...)
{
    char line[700];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    write_log(m, line, len);
}

/* Start once: returns the init's pid with *outfd its output pipe, or -1 with m->error set. */
static pid_t start_container(struct monitor *m, int *outfd)
{
    int out[2], sync[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(sync, O_CLOEXEC) < 0) {
        snprintf(m->error, sizeof m->error, "pipe: %s", strerror(errno));
        return -1;
    }
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    if (!strcmp(m->c->net, "none"))
        flags |= CLONE_NEWNET; /* dhcp, static: the monitor already made the namespace the keeper wired */
    pid_t pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
            child_fail(sync[1], "stdio setup failed");
        container_init(m->c, sync[1]);
    }
    close(out[1]);
    close(sync[1]);
    if (pid < 0) {
        snprintf(m->error, sizeof m->error, "clone: %s", strerror(errno));
        close(out[0]);
        close(sync[0]);
        return -1;
    }
    /* EOF on the sync pipe means the service's exec succeeded; bytes are an error. */
    ssize_t got = TEMP_FAILURE(read(sync[0], m->error, sizeof m->error - 1));
    close(sync[0]);
    if (got > 0) {
        m->error[got] = 0;
        close(out[0]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    m->error[0] = 0;
    *outfd = out[0];
    return pid;
}

/* Copy output to the log until the init exits and its pipe is drained. */
static int supervise(struct monitor *m, int sfd, int outfd, int *stopping)
{
    int status = 0, reaped = 0, eof = 0;
    char buf[65536];
    while (!(reaped && eof)) {
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {outfd, POLLIN, 0}};
        if (poll(fds, eof ? 1 : 2, -1) < 0)
            continue;
        if (!eof && fds[1].revents) {
            ssize_t got = TEMP_FAILURE(read(outfd, buf, sizeof buf));
            if (got > 0)
                write_log(m, buf, got);
            else
                eof = 1;
        }
        if (fds[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGCHLD) {
                if (m->keeper_pid > 0 && waitpid(m->keeper_pid, NULL, WNOHANG) == m->keeper_pid) {
                    log_line(m, "prodng: network keeper exited; the address is no longer renewed");
                    m->keeper_pid = 0;
                }
                if (waitpid(m->init_pid, &status, WNOHANG) == m->init_pid)
                    reaped = 1;
            } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                *stopping = 1;
                kill(m->init_pid, SIGTERM);
            } else {
                kill(m->init_pid, si.ssi_signo);
            }
        }
    }
    return exit_code(status);
}

/* Sleep for the backoff, or less if asked to stop; returns 1 if stopping. */
static int backoff(int sfd, int delay_ms)
{
    double until = now() + delay_ms / 1000.0;
    for (double left; (left = until - now()) > 0;) {
        struct pollfd p = {sfd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si && (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT))
                return 1;
        }
    }
    return 0;
}

static int should_restart(const struct monitor *m)
{
    if (m->c->restart_max > 0 && m->restarts >= m->c->restart_max)
        return 0;
    if (!strcmp(m->c->restart, "always"))
        return 1;
    return !strcmp(m->c->restart, "on-failure") && m->exit_code != 0;
}

/* Put fd on exactly `target` for an exec'd child (dup2 onto itself would keep O_CLOEXEC). */
static int place_fd(int fd, int target)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target);
}

/*
 * Ask the warm keeper server to fork a keeper for us: it gets our network namespace,
 * the keeper's end of the lifeline and the keeper's argv, and answers once it has forked. Starting a Python keeper cold costs ~0.2 s of CPU; a fork
 * of the warm one costs a few ms. Any failure here just means: start it cold.
 */
static int hand_to_server(const struct pn_config *c, int netns, int lifeline)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!c->keeper_server || strlen(c->keeper_server) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, c->keeper_server);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    char payload[8192], ack[64];
    size_t len = 0;
    for (int i = 0; i < c->nkeeper; i++) { /* the whole argv, NUL-separated: the server reads it as main() would */
        size_t n = strlen(c->keeper[i]) + 1;
        if (len + n > sizeof payload) {
            close(s);
            return -1;
        }
        memcpy(payload + len, c->keeper[i], n);
        len += n;
    }
    struct iovec iov = {payload, len};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } control = {{0}};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {netns, lifeline};
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    int ok = connect(s, (struct sockaddr *)&addr, sizeof addr) == 0 &&
             sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len && TEMP_FAILURE(read(s, ack, sizeof ack)) > 0;
    close(s);
    return ok ? 0 : -1;
}

/*
 * dhcp and static networking. The monitor moves into a new network namespace, the
 * container's for its whole life (restarts keep it, and its address), and gets a keeper
 * started, from the warm server or cold with the host's namespace on fd 3; either way the
 * keeper holds the other end of a lifeline. It wires the link, gets the address, answers
 * "ready" or "error MSG", and undoes everything (veth, lease, forwards, name) when the
 * lifeline closes: when this monitor ends, however it ends.
 */
static int start_keeper(struct monitor *m, int *lifeline)
{
    const struct pn_config *c = m->c;
    int host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), sv[2] = {-1, -1}, netns = -1;
    if (host < 0 || unshare(CLONE_NEWNET) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        (netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(m->error, sizeof m->error, "network namespace: %s", strerror(errno));
        if (host >= 0)
            close(host);
        return -1;
    }
    if (loopback_up(m->error, sizeof m->error) < 0) {
        close(host);
        close(netns);
        return -1;
    }
    pid_t pid = 0;
    if (hand_to_server(c, netns, sv[1]) < 0) {
        /* Both above 4 first, so placing one cannot overwrite the other. */
        int host_high = fcntl(host, F_DUPFD_CLOEXEC, 10), life_high = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        pid = fork();
        if (pid == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            if (host_high < 0 || life_high < 0 || place_fd(host_high, 3) < 0 || place_fd(life_high, 4) < 0)
                _exit(127);
            syscall(SYS_close_range, 5, ~0U, 0); /* above all the CLI's ready pipe: it must see EOF */
            execve(c->keeper[0], (char *const *)c->keeper, environ);
            dprintf(4, "error exec %s: %s\n", c->keeper[0], strerror(errno));
            _exit(127);
        }
        close(host_high);
        close(life_high);
    }
    close(host);
    close(netns);
    close(sv[1]);
    if (pid < 0) {
        snprintf(m->error, sizeof m->error, "fork network keeper: %s", strerror(errno));
        close(sv[0]);
        return -1;
    }
    m->keeper_pid = pid; /* 0 when the server forked it: then it is not ours to reap */
    char answer[512];
    size_t got = 0;
    while (got < sizeof answer - 1 && !memchr(answer, '\n', got)) {
        ssize_t r = TEMP_FAILURE(read(sv[0], answer + got, sizeof answer - 1 - got));
        if (r <= 0)
            break;
        got += r;
    }
    answer[got] = 0;
    answer[strcspn(answer, "\n")] = 0;
    if (strcmp(answer, "ready") != 0) {
        snprintf(m->error, sizeof m->error, "%s",
                 !strncmp(answer, "error ", 6) ? answer + 6 : "network keeper exited before the network was ready");
        close(sv[0]); /* the keeper undoes what it made, then exits */
        if (pid > 0)
            waitpid(pid, NULL, 0);
        m->keeper_pid = 0;
        return -1;
    }
    *lifeline = sv[0];
    return 0;
}

int pn_monitor_main(const char *config_path, int ready_fd)
{
    struct pn_config c;
    struct monitor m = {.c = &c, .logfd = -1, .state = "starting"};
    if (load_config(config_path, &c, m.error, sizeof m.error) < 0) {
        dprintf(ready_fd, "error %s\n", m.error);
        return 1;
    }
    prctl(PR_SET_NAME, "prodng-shim", 0, 0, 0);
    close_fds_except(ready_fd); /* the config fd is read; nothing else of our parent's stays open */
    if (chdir("/") < 0)
        return 1;
    m.logfd = c.log ? open(c.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
    struct stat st;
    m.logsize = m.logfd >= 0 && fstat(m.logfd, &st) == 0 ? st.st_size : 0;
    sigset_t mask;
    sigemptyset(&mask);
    int handled[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        sigaddset(&mask, handled[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    int stopping = 0, failures = 0, lifeline = -1;
    if (c.nkeeper > 0 && start_keeper(&m, &lifeline) < 0) {
        m.state = "failed";
        write_status(&m);
        dprintf(ready_fd, "error %s\n", m.error);
        return 1;
    }
    for (int first = 1;; first = 0) {
        int outfd = -1;
        m.started_at = now();
        m.init_pid = start_container(&m, &outfd);
        if (m.init_pid < 0) {
            if (first) {
                m.state = "failed";
                write_status(&m);
                dprintf(ready_fd, "error %s\n", m.error);
                return 1;
            }
            log_line(&m, "prodng: restart failed: %s", m.error);
            m.exit_code = 127;
        } else {
            m.init_start = pn_starttime(m.init_pid);
            m.state = "running";
            write_status(&m);
            if (first) {
                dprintf(ready_fd, "ok %d %llu\n", m.init_pid, m.init_start);
                close(ready_fd);
            }
            m.exit_code = supervise(&m, sfd, outfd, &stopping);
            close(outfd);
        }
        m.finished_at = now();
        m.init_pid = 0;
        emit_event(&m, "died");
        if (stopping || !should_restart(&m))
            break;
        failures = m.finished_at - m.started_at > 10 ? 0 : failures + 1;
        int delay = failures > 9 ? 30000 : 100 << (failures > 0 ? failures - 1 : 0);
        delay = delay > 30000 ? 30000 : delay;
        log_line(&m, "prodng: service exited with %d; restart %d in %d ms", m.exit_code, m.restarts + 1, delay);
        m.state = "restarting";
        write_status(&m);
        if (backoff(sfd, delay)) {
            stopping = 1;
            break;
        }
        m.restarts++;
        emit_event(&m, "restarted");
    }
    m.state = stopping ? "stopped" : "exited";
    write_status(&m);
    if (lifeline >= 0)
        close(lifeline); /* the keeper tears the network down now */
    return 0;
}

int pn_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}

/* ---- exec: join a running container's namespaces, cgroups and restrictions ---- */

int pn_exec(const char *config_path, int init_pid, const char *const *argv, const int *stdio, char *err,
            int errlen)
{
    static const char *namespaces[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
    enum { NNS = sizeof namespaces / sizeof namespaces[0] };
    struct pn_config c;
    if (load_config(config_path, &c, err, errlen) < 0)
        return -1;
    int nsfd[NNS], sync[2];
    char path[64];
    for (int i = 0; i < NNS; i++) {
        snprintf(path, sizeof path, "/proc/%d/ns/%s", init_pid, namespaces[i]);
        if ((nsfd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            fail_msg(err, errlen, "open %s: %s", path, strerror(errno));
            while (i--)
                close(nsfd[i]);
            free(c.buf);
            return -1;
        }
    }
    if (pipe2(sync, O_CLOEXEC) < 0) {
        free(c.buf);
        return fail_msg(err, errlen, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        char msg[512];
        close(sync[0]);
        if (join_cgroups(&c, msg, sizeof msg) < 0)
            child_fail(sync[1], msg);
        for (int i = 0; i < NNS; i++)
            if (setns(nsfd[i], 0) < 0) {
                snprintf(msg, sizeof msg, "setns %s: %s", namespaces[i], strerror(errno));
                child_fail(sync[1], msg);
            }
        for (int fd = 0; fd < 3; fd++) /* -1: keep ours (a terminal); else the caller's pipe or file */
            if (stdio[fd] >= 0 && dup2(stdio[fd], fd) < 0)
                child_fail(sync[1], "stdio setup failed");
        pid_t child = fork(); /* only children of a setns(pid) caller enter the namespace */
        if (child == 0)
            exec_service(&c, argv, sync[1]);
        close(sync[1]);
        int status = 0;
        while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        _exit(child < 0 ? 127 : exit_code(status));
    }
    for (int i = 0; i < NNS; i++)
        close(nsfd[i]);
    close(sync[1]);
    free(c.buf);
    if (pid < 0) {
        close(sync[0]);
        return fail_msg(err, errlen, "fork: %s", strerror(errno));
    }
    ssize_t got = TEMP_FAILURE(read(sync[0], err, errlen - 1));
    close(sync[0]);
    if (got > 0) {
        err[got] = 0;
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}
