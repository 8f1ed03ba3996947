/* Confinement of a container's processes (see sandbox.h); used by the init and by exec. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/btrfs.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

extern char **environ;

int join_cgroups(const struct pn_config *c, struct pn_error *e)
{
    char path[4096];
    for (int i = 0; i < c->ncgroups; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", c->cgroups[i]);
        if (write_file(path, "0") < 0)
            return pn_sys(e, "join cgroup %s", c->cgroups[i]);
    }
    return 0;
}

static int in_caps(const struct pn_config *c, int cap)
{
    for (int i = 0; i < c->ncaps; i++)
        if (c->caps[i] == cap)
            return 1;
    return 0;
}

/*
 * A subvolume or snapshot made inside the root is a new btrfs qgroup, outside the container's
 * disk quota: deny those ioctls. The kernel reads the request as 32 bits, so compare only
 * those (a caller could set the upper half to slip past a 64-bit compare).
 */
static int deny_btrfs_subvolumes(scmp_filter_ctx ctx)
{
    static const unsigned long requests[] = {
        BTRFS_IOC_SUBVOL_CREATE, BTRFS_IOC_SUBVOL_CREATE_V2, BTRFS_IOC_SNAP_CREATE, BTRFS_IOC_SNAP_CREATE_V2,
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof requests / sizeof requests[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, requests[i]));
    return rc;
}

static int load_seccomp(struct pn_error *e)
{
    static const char *denied[] = {
        "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "init_module", "iopl", "ioperm", "kcmp", "kexec_file_load",
        "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
        "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root",
        "process_vm_readv", "process_vm_writev", "ptrace", "quotactl", "reboot", "request_key", "setns",
        "settimeofday", "swapoff", "swapon", "sysfs", "umount", "umount2", "uselib", "userfaultfd", "ustat",
        "vhangup", "adjtimex", "syslog", "_sysctl",
        /* io_uring does file and socket work outside these rules (Docker denies it too). */
        "io_uring_setup", "io_uring_enter", "io_uring_register", NULL,
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "seccomp_init failed");
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
    /* Linux AIO contexts come out of one budget for the whole host (fs.aio-max-nr, 65536 events): one
     * io_setup in a container took it all and every io_setup on the host failed with EAGAIN. ENOSYS,
     * as on a kernel without AIO, sends libaio users (databases) to their thread-pool I/O. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_setup), 0);
    if (rc == 0)
        rc = deny_btrfs_subvolumes(ctx);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc < 0 ? pn_fail(e, PN_ERR_SYSTEM, -rc, "seccomp") : 0;
}

/*
 * In this order, because each later step needs a privilege the earlier one still holds.
 * The bounding set is walked over every capability the ABI can name (64): the kernel answers
 * EINVAL past its last one, so nothing depends on reading cap_last_cap through a /proc the
 * container might shape.
 */
int drop_privileges(const struct pn_config *c, int keep_caps, struct pn_error *e)
{
    for (int cap = 0; cap < 64; cap++)
        if (!(keep_caps && in_caps(c, cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return pn_sys(e, "drop capability %d", cap);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* Always, even for root:0 with no groups: else the caller's supplementary groups (an operator's
     * adm or docker, the agent's) and umask would be the container's. */
    if (setgroups(c->ngroups, (const gid_t *)c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0)
        return pn_sys(e, "setgid %d", c->gid);
    umask(022); /* systemd's default UMask= */
    if (c->ambient && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) /* AmbientCapabilities= survive setuid */
        return pn_sys(e, "keepcaps");
    if (c->uid && setresuid(c->uid, c->uid, c->uid) < 0)
        return pn_sys(e, "setuid %d", c->uid);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    for (int i = 0; keep_caps && i < c->ncaps; i++) {
        int cap = c->caps[i];
        if (c->uid != 0 && !(c->ambient & (1ULL << cap)))
            continue;
        data[cap / 32].effective |= 1U << (cap % 32);
        data[cap / 32].permitted |= 1U << (cap % 32);
        if (c->ambient & (1ULL << cap))
            data[cap / 32].inheritable |= 1U << (cap % 32);
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return pn_sys(e, "capset");
    for (int i = 0; keep_caps && i < c->ncaps; i++)
        if ((c->ambient & (1ULL << c->caps[i])) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c->caps[i], 0, 0) < 0)
            return pn_sys(e, "ambient capability %d", c->caps[i]);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pn_sys(e, "no_new_privs");
    return load_seccomp(e);
}

/*
 * The init and monitor are exempt from the OOM killer (-1000, inherited): the service gets a
 * normal score back. Where the kernel refused the exemption (some sandboxes refuse any lowering),
 * the service is made the first choice instead, which raising always may.
 */
static void service_oom_score(void)
{
    char current[16] = "";
    cleanup_fd int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read(fd, current, sizeof current - 1) < 0)
        current[0] = 0;
    write_file("/proc/self/oom_score_adj", atoi(current) == -1000 ? "0" : "500");
}

/* The command or workdir comes from the container's config: when it cannot be used, the request was wrong. */
void exec_service(const struct pn_config *c, const char *const *argv, int syncfd)
{
    struct pn_error e;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    if (chdir(c->workdir) < 0) {
        pn_fail(&e, PN_ERR_INVALID, errno, "chdir %s", c->workdir);
        pn_child_fail(syncfd, &e);
    }
    service_oom_score();
    if (drop_privileges(c, 1, &e) < 0)
        pn_child_fail(syncfd, &e);
    close_fds_except(syncfd);
    environ = (char **)c->env;
    execvp(argv[0], (char *const *)argv);
    pn_fail(&e, PN_ERR_INVALID, errno, "exec %s", argv[0]);
    pn_child_fail(syncfd, &e);
}
