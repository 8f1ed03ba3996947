/*
 * exec (see exec.h): runs in the prodng-exec helper, a process of its own (never a fork of the
 * CLI or the agent) that exec_main.c has already made non-dumpable, stripped of every fd and
 * variable it does not need, and moved onto a sealed copy of its binary.
 */
#define _GNU_SOURCE
#include "exec.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <termios.h>

#include "config.h"
#include "sandbox.h"

#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#define TTY_GID 5
#define ALL_NAMESPACES (CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS)

/* A pidfd for the init, refused if the pid now names another process (the init died and it was reused). */
static int open_init(const struct pn_exec_request *r, struct pn_error *e)
{
    int pidfd = syscall(SYS_pidfd_open, r->init_pid, 0);
    if (pidfd < 0)
        return pn_fail(e, errno == ESRCH ? PN_ERR_NOT_FOUND : PN_ERR_SYSTEM, errno, "the container's init");
    /* Checked after the pidfd is held: from here on the pid cannot be reused under us. */
    if (pn_starttime(r->init_pid) != r->init_start) {
        close(pidfd);
        return pn_fail(e, PN_ERR_NOT_FOUND, ESRCH, "the container's init");
    }
    return pidfd;
}

static int parse_limit(const char *text, rlim_t *value)
{
    char *end;
    if (!strncmp(text, "unlimited", 9)) {
        *value = RLIM_INFINITY;
        return 9;
    }
    *value = strtoull(text, &end, 10);
    return end > text ? (int)(end - text) : -1;
}

/*
 * The init's resource limits, not the caller's (the agent raises its fd limit, an operator's shell
 * may have any): an exec gets what the service got. Read from /proc/PID/limits (prlimit() on another
 * uid's process needs CAP_SYS_RESOURCE, which a host may not give root); its lines follow the
 * RLIMIT_ numbering. A limit above what we may set stays at ours.
 */
static int take_init_limits(pid_t init_pid, int pidfd, struct pn_error *e)
{
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/limits", init_pid);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    if (got <= 0)
        return pn_sys(e, "read the container's resource limits");
    text[got] = 0;
    /* Still alive after the read: the pid was the init's all along (a live process's pid is never reused). */
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
        return pn_fail(e, PN_ERR_NOT_FOUND, ESRCH, "the container's init");
    const char *line = strchr(text, '\n'); /* past the header */
    for (int resource = 0; line && resource < RLIM_NLIMITS; resource++, line = strchr(line + 1, '\n')) {
        struct rlimit want, ours;
        const char *p = line + 1 + 26; /* the name column is 26 wide, then soft (21) and hard (21) */
        if (strlen(line + 1) < 26 + 21 || parse_limit(p, &want.rlim_cur) < 0 ||
            parse_limit(p + 21, &want.rlim_max) < 0)
            break;
        if (getrlimit(resource, &ours) == 0 && want.rlim_max > ours.rlim_max && setrlimit(resource, &want) < 0) {
            want.rlim_max = ours.rlim_max; /* raising a hard limit needs CAP_SYS_RESOURCE */
            want.rlim_cur = want.rlim_cur < ours.rlim_max ? want.rlim_cur : ours.rlim_max;
        }
        if (setrlimit(resource, &want) < 0)
            return pn_sys(e, "take the container's resource limit %d", resource);
    }
    return 0;
}

static int send_fd(int sock, int fd, struct pn_error *e)
{
    char data = 'T';
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {&data, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return TEMP_FAILURE_RETRY(sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 ? pn_sys(e, "send the pty") : 0;
}

/*
 * A pty of the container's own devpts (opened inside its mount namespace), made our controlling
 * tty and stdio; its master goes to the caller over the console socket (runc's --console-socket).
 * The caller's terminal never enters the container.
 */
static int setup_pty(const struct pn_config *c, int console, struct pn_error *e)
{
    cleanup_fd int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
    if (master < 0)
        return pn_sys(e, "open /dev/pts/ptmx");
    struct statfs fs;
    if (fstatfs(master, &fs) < 0 || fs.f_type != DEVPTS_SUPER_MAGIC)
        return pn_fail(e, PN_ERR_REFUSED, 0, "/dev/pts/ptmx is not the container's devpts");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return pn_sys(e, "unlock the pty");
    cleanup_fd int tty = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0)
        return pn_sys(e, "open the pty");
    if (fchown(tty, c->uid, TTY_GID) < 0 || fchmod(tty, 0620) < 0)
        return pn_sys(e, "chown the pty");
    if (ioctl(tty, TIOCSCTTY, 0) < 0)
        return pn_sys(e, "make the pty the controlling tty");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(tty, fd) < 0)
            return pn_sys(e, "pty as stdio");
    return send_fd(console, master, e);
}

/* The command's process: inside every namespace now (forked after setns), it only has to become it. */
static void __attribute__((noreturn)) run_command(struct pn_config *c, const struct pn_exec_request *r, int syncfd)
{
    struct pn_error e;
    if (setsid() < 0) { /* its own session and process group: kill(0) and TIOCSTI reach nothing of ours */
        pn_sys(&e, "setsid");
        pn_child_fail(syncfd, &e);
    }
    if (r->console >= 0 && setup_pty(c, r->console, &e) < 0)
        pn_child_fail(syncfd, &e);
    exec_service(c, (const char *const *)r->argv, syncfd);
}

/* The caller's signals that go on to the command, and SIGCHLD (it ended), all blocked from before
 * the fork: one that comes while the command starts (the caller saw its first output and sent a
 * Ctrl-C) waits for wait_forwarding instead of ending us, the command left running without us.
 * The command gets an empty mask back (exec_service). */
static void block_forwarded(sigset_t *set)
{
    sigemptyset(set);
    int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(set, forwarded[i]);
    sigaddset(set, SIGCHLD);
    sigprocmask(SIG_BLOCK, set, NULL);
}

/* Until the command ends: the caller's signals (it may not reach into the container) go to it. */
static int wait_forwarding(pid_t child, const sigset_t *set)
{
    int status;
    for (;;) {
        pid_t got = waitpid(child, &status, WNOHANG);
        if (got == child)
            return exit_code(status);
        if (got < 0 && errno != EINTR)
            return 127;
        int sig = sigwaitinfo(set, NULL);
        if (sig > 0 && sig != SIGCHLD)
            kill(child, sig);
    }
}

static int apply_request(struct pn_config *c, const struct pn_exec_request *r, struct pn_error *e)
{
    if (r->uid >= 0) { /* another user: the service's supplementary groups are not its */
        c->uid = r->uid;
        c->ngroups = 0;
    }
    if (r->gid >= 0)
        c->gid = r->gid;
    for (int i = 0; i < r->nenv; i++) {
        if (c->envc >= PN_MAX_ARGS)
            return pn_fail(e, PN_ERR_INVALID, 0, "too many environment variables");
        c->env[c->envc++] = (char *)r->env[i];
    }
    c->env[c->envc] = NULL;
    return 0;
}

static int join_and_run(const struct pn_exec_request *r, void (*joined)(void), void (*started)(void),
                        struct pn_error *e)
{
    cleanup_config struct pn_config c = {0};
    if (load_config(r->config, &c, e) < 0 || apply_request(&c, r, e) < 0)
        return -1;
    cleanup_fd int pidfd = open_init(r, e);
    if (pidfd < 0)
        return -1;
    /* The cgroup first, through the host's cgroupfs: the container's mount namespace may not show it. */
    if (join_cgroups(&c, e) < 0 || take_init_limits(r->init_pid, pidfd, e) < 0)
        return -1;
    if (setns(pidfd, ALL_NAMESPACES) < 0)
        return pn_fail(e, errno == ESRCH ? PN_ERR_NOT_FOUND : PN_ERR_SYSTEM, errno, "join the container");
    pn_close_now(&pidfd);
    /*
     * The caller may let go of the container's lock now. What follows runs in a process the
     * container can see and signal (SIGSTOP it before it execs): it must never hold up a stop.
     */
    joined();
    cleanup_pipe int sync[2] = {-1, -1};
    if (pipe2(sync, O_CLOEXEC) < 0)
        return pn_sys(e, "pipe");
    sigset_t forwarded;
    block_forwarded(&forwarded);
    pid_t child = fork(); /* only children of a setns(CLONE_NEWPID) caller are in the pid namespace */
    if (child < 0)
        return pn_sys(e, "fork");
    if (child == 0) {
        pn_close_now(&sync[0]);
        run_command(&c, r, sync[1]);
    }
    pn_close_now(&sync[1]);
    for (int fd = 0; fd < 3; fd++) /* the command's stdio: only it holds them, so EOF comes when it ends */
        close(fd);
    if (pn_read_child_error(sync[0], e) < 0) {
        waitpid(child, NULL, 0);
        return -1;
    }
    pn_close_now(&sync[0]);
    started();
    return wait_forwarding(child, &forwarded); /* holding nothing: no stdio, no pipe, no pidfd */
}

/* What is missing (the init gone, its cgroup removed, the command) is not found, whatever the step. */
int pn_exec_run(const struct pn_exec_request *r, void (*joined)(void), void (*started)(void), struct pn_error *e)
{
    int status = join_and_run(r, joined, started, e);
    if (status < 0 && e->errnum == ENOENT)
        e->kind = PN_ERR_NOT_FOUND;
    return status;
}
