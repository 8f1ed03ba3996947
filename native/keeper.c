/*
 * dhcp and static networking. The monitor moves into a new network namespace, the
 * container's for its whole life (restarts keep it, and its address), and gets a keeper
 * started, from the warm server or cold with the host's namespace on fd 3; either way the
 * keeper holds the other end of a lifeline. It wires the link, gets the address, answers
 * "ready" or "error MSG", and undoes everything (veth, lease, forwards, name) when the
 * lifeline closes: when this monitor ends, however it ends.
 */
#define _GNU_SOURCE
#include "keeper.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

/*
 * Ask the warm keeper server to fork a keeper for us: it gets our network namespace, the
 * keeper's end of the lifeline and the keeper's argv, and answers once it has forked. Starting
 * a Python keeper cold costs ~0.2 s of CPU; a fork of the warm one costs a few ms. Any failure
 * here just means: start it cold.
 */
static int hand_to_server(const struct pn_config *c, int netns, int lifeline)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!c->keeper_server || strlen(c->keeper_server) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, c->keeper_server);
    char payload[8192], ack[64];
    size_t len = 0;
    for (int i = 0; i < c->nkeeper; i++) { /* the whole argv, NUL-separated: the server reads it as main() would */
        size_t n = strlen(c->keeper[i]) + 1;
        if (len + n > sizeof payload)
            return -1;
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
    cleanup_fd int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = s >= 0 && connect(s, (struct sockaddr *)&addr, sizeof addr) == 0 &&
             sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len && TEMP_FAILURE_RETRY(read(s, ack, sizeof ack)) > 0;
    return ok ? 0 : -1;
}

/* Put fd on exactly `target` for an exec'd child (dup2 onto itself would keep O_CLOEXEC). */
static int place_fd(int fd, int target)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target);
}

/* The keeper started cold: python -m prodng.netkeeper with the host's namespace on 3, the lifeline on 4. */
static pid_t fork_keeper(const struct pn_config *c, int host, int lifeline)
{
    /* Both above 4 first, so placing one cannot overwrite the other. */
    cleanup_fd int host_high = fcntl(host, F_DUPFD_CLOEXEC, 10);
    cleanup_fd int life_high = fcntl(lifeline, F_DUPFD_CLOEXEC, 10);
    pid_t pid = fork();
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
    return pid;
}

/* The keeper's first line: "ready", or "error MSG" (then e says MSG). */
static int await_ready(int lifeline, struct pn_error *e)
{
    char answer[512];
    size_t got = 0;
    while (got < sizeof answer - 1 && !memchr(answer, '\n', got)) {
        ssize_t r = TEMP_FAILURE_RETRY(read(lifeline, answer + got, sizeof answer - 1 - got));
        if (r <= 0)
            break;
        got += r;
    }
    answer[got] = 0;
    answer[strcspn(answer, "\n")] = 0;
    if (!strcmp(answer, "ready"))
        return 0;
    return pn_fail(e, PN_ERR_SYSTEM, 0, "%s",
                   !strncmp(answer, "error ", 6) ? answer + 6 : "network keeper exited before the network was ready");
}

int start_keeper(const struct pn_config *c, int *lifeline, pid_t *keeper_pid, struct pn_error *e)
{
    *keeper_pid = 0;
    cleanup_fd int host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    cleanup_pipe int sv[2] = {-1, -1};
    cleanup_fd int netns = -1;
    if (host < 0 || unshare(CLONE_NEWNET) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        (netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
        return pn_sys(e, "network namespace");
    if (loopback_up(e) < 0)
        return -1;
    pid_t pid = 0;
    if (hand_to_server(c, netns, sv[1]) < 0 && (pid = fork_keeper(c, host, sv[1])) < 0)
        return pn_sys(e, "fork network keeper");
    /* The keeper's end is the keeper's alone (its exit is our EOF); the namespaces are its too. */
    pn_close_now(&sv[1]);
    pn_close_now(&host);
    pn_close_now(&netns);
    if (await_ready(sv[0], e) < 0) {
        pn_close_now(&sv[0]); /* the keeper undoes what it made, then exits */
        if (pid > 0)
            waitpid(pid, NULL, 0);
        return -1;
    }
    *keeper_pid = pid; /* 0 when the server forked it: then it is not ours to reap */
    *lifeline = pn_steal_fd(&sv[0]);
    return 0;
}
