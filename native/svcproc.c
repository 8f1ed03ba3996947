/* The units' processes for the service manager (see services_int.h): commands forked with the
 * unit's user, output and environment; reaping, signals, sd_notify; the one poll loop (pump). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "logsock.h"
#include "sandbox.h"
#include "services_int.h"

/* ---- processes ---- */

/* cmd: phase US flags US path US argv...; argv[i] in out, $MAINPID substituted. */
static int split_cmd(char *buf, const char **phase, const char **flags, const char **path, char **argv, int max)
{
    char *field[PN_MAX_ARGS + 3];
    int n = 0;
    for (char *p = buf; p && n < PN_MAX_ARGS + 3;) {
        field[n++] = p;
        char *sep = strchr(p, 0x1f);
        if (sep)
            *sep = 0;
        p = sep ? sep + 1 : NULL;
    }
    if (n < 4)
        return -1;
    *phase = field[0], *flags = field[1], *path = field[2];
    int argc = 0;
    for (int i = 3; i < n && argc < max - 1; i++)
        argv[argc++] = field[i];
    argv[argc] = NULL;
    return argc;
}

static const char *phase_of(const char *cmd, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)strcspn(cmd, "\x1f"), cmd);
    return out;
}

static void __attribute__((noreturn)) child(struct svc *s, char *buf, int syncfd)
{
    struct pn_error e;
    const char *phase, *flags, *path;
    char *argv[PN_MAX_ARGS + 1], mainpid[64], *env[PN_MAX_UNIT_ENV + 2];
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    setsid();
    if (s->out[1] >= 0 && (dup2(s->out[1], 1) < 0 || dup2(s->out[1], 2) < 0)) {
        pn_fail(&e, PN_ERR_SYSTEM, errno, "stdout of %s", s->u->name);
        pn_child_fail(syncfd, &e);
    }
    if (split_cmd(buf, &phase, &flags, &path, argv, PN_MAX_ARGS + 1) < 1) {
        pn_fail(&e, PN_ERR_INVALID, 0, "empty command");
        pn_child_fail(syncfd, &e);
    }
    snprintf(mainpid, sizeof mainpid, "%d", s->main);
    for (int i = 0; argv[i]; i++)
        if (!strcmp(argv[i], "$MAINPID") || !strcmp(argv[i], "${MAINPID}"))
            argv[i] = mainpid;
    int n = 0;
    for (; n < s->u->nenv; n++)
        env[n] = s->u->env[n];
    char mainenv[80];
    snprintf(mainenv, sizeof mainenv, "MAINPID=%d", s->main);
    if (s->main)
        env[n++] = mainenv;
    env[n] = NULL;
    if (chdir(s->u->workdir) < 0) {
        pn_fail(&e, PN_ERR_INVALID, errno, "chdir %s", s->u->workdir);
        pn_child_fail(syncfd, &e);
    }
    struct pn_config as = *M.c;
    int privileged = strchr(flags, '+') != NULL;
    as.uid = privileged ? 0 : s->u->uid;
    as.gid = privileged ? 0 : s->u->gid;
    as.groups = privileged ? NULL : s->u->groups;
    as.ngroups = privileged ? 0 : s->u->ngroups;
    as.ambient = privileged ? 0 : s->u->ambient;
    if (drop_privileges(&as, 1, &e) < 0)
        pn_child_fail(syncfd, &e);
    close_fds_except(syncfd);
    extern char **environ;
    environ = env;
    execvp(path, argv);
    pn_fail(&e, PN_ERR_INVALID, errno, "exec %s", path);
    pn_child_fail(syncfd, &e);
}

/* Fork cmd for s; its pid, or -1 with s->error set (the exec failed). */
pid_t spawn(struct svc *s, const char *cmd)
{
    char buf[PN_MAX_CONFIG > 65536 ? 65536 : PN_MAX_CONFIG];
    snprintf(buf, sizeof buf, "%s", cmd);
    /* One pipe per unit for its whole life (the init keeps both ends): its output, then its last lines. */
    if (s->out[0] < 0 && pipe2(s->out, O_CLOEXEC) == 0)
        fcntl(s->out[0], F_SETFL, O_NONBLOCK);
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) {
        set_error(s, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0)
        child(s, buf, sync[1]);
    close(sync[1]);
    struct pn_error e;
    int failed = pid > 0 && pn_read_child_error(sync[0], &e) < 0;
    close(sync[0]);
    if (pid < 0 || failed) {
        set_error(s, "%s", pid < 0 ? "fork failed" : e.msg);
        return -1;
    }
    return pid;
}

static void forward(int sig)
{
    for (int i = 0; i < M.n; i++)
        if (M.svc[i].main > 0)
            kill(M.svc[i].main, sig);
}


static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < M.n; i++) {
            struct svc *s = &M.svc[i];
            if (pid == s->control) {
                s->control = 0;
                s->control_status = status;
            } else if (pid == s->main) {
                s->main = 0;
                s->main_status = status;
                on_main_exit(s, status);
            }
        }
}

static void handle_signals(void)
{
    struct signalfd_siginfo si;
    while (read(M.sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap();
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            M.stopping = 1;
        else if (si.ssi_signo == SIGHUP)
            M.reload = 1;
        else
            forward(si.ssi_signo);
    }
}

static void handle_notify(void)
{
    char buf[4096];
    pid_t pid;
    while (read_notify(M.notify, buf, sizeof buf, &pid) == 0) {
        struct svc *target = NULL;
        for (int i = 0; i < M.n; i++)
            if (M.svc[i].main == pid && pid > 0)
                target = &M.svc[i];
        for (int i = 0; i < M.n && !target; i++) /* units start one at a time: the one starting */
            if (M.svc[i].state == S_STARTING && !strcmp(M.svc[i].u->type, "notify"))
                target = &M.svc[i];
        if (!target)
            continue;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
            if (!strcmp(line, "READY=1"))
                target->ready = 1;
            else if (!strncmp(line, "MAINPID=", 8) && atoi(line + 8) > 0)
                target->main = atoi(line + 8);
    }
}

void pump(double until)
{
    double left = until - now();
    int timeout = until >= FOREVER ? -1 : left <= 0 ? 0 : (int)(left * 1000) + 1;
    struct pollfd fds[4 + PN_MAX_UNITS] = {
        {M.sfd, POLLIN, 0}, {M.notify, POLLIN, 0}, {M.devlog, POLLIN, 0}, {M.journal, POLLIN, 0}};
    for (int i = 0; i < M.n; i++)
        fds[4 + i] = (struct pollfd){M.svc[i].out[0], POLLIN, 0};
    if (poll(fds, 4 + M.n, timeout) <= 0)
        return;
    for (int i = 0; i < M.n; i++) /* output first: a death reported below then has its last words */
        if (fds[4 + i].revents)
            drain(&M.svc[i]);
    if (fds[0].revents)
        handle_signals();
    if (fds[1].revents)
        handle_notify();
    if (fds[2].revents)
        relay(relay_syslog, M.devlog);
    if (fds[3].revents)
        relay(relay_journal, M.journal);
}

int alive(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

/* Run one control command to its end (or the deadline: then it is killed); its wait status or -1. */
static int run_control(struct svc *s, const char *cmd, double deadline)
{
    s->control = spawn(s, cmd);
    if (s->control < 0) {
        s->control = 0;
        return -1;
    }
    while (s->control > 0 && now() < deadline && !(M.stopping && s->state == S_STARTING))
        pump(deadline);
    if (s->control > 0) {
        kill(-s->control, SIGKILL);
        kill(s->control, SIGKILL);
        while (s->control > 0)
            pump(now() + 1);
        const char *path = strchr(strchr(cmd, 0x1f) + 1, 0x1f) + 1;
        set_error(s, "%.*s timed out", (int)strcspn(path, "\x1f"), path);
        return -1;
    }
    return s->control_status;
}

/* Every command of one phase in order; 0, or -1 with s->error (a '-' command's failure is none). */
int run_phase(struct svc *s, const char *phase, double deadline, int *condition_skip)
{
    char name[32];
    for (int i = 0; i < s->u->ncmds; i++) {
        const char *cmd = s->u->cmds[i];
        if (strcmp(phase_of(cmd, name, sizeof name), phase))
            continue;
        const char *flags = strchr(cmd, 0x1f) + 1;
        int status = run_control(s, cmd, deadline);
        if (status < 0)
            return -1;
        int code = exit_code(status);
        if (condition_skip && code > 0 && code < 255 && WIFEXITED(status)) {
            *condition_skip = code;
            return 0;
        }
        if (code != 0 && flags[0] != '-') {
            const char *path = strchr(flags, 0x1f) + 1;
            set_error(s, "%s command %.*s exited with %d", phase, (int)strcspn(path, "\x1f"), path, code);
            s->exit_code = code;
            return -1;
        }
    }
    return 0;
}

const char *find_cmd(const struct pn_unit *u, const char *phase)
{
    char name[32];
    for (int i = 0; i < u->ncmds; i++)
        if (!strcmp(phase_of(u->cmds[i], name, sizeof name), phase))
            return u->cmds[i];
    return NULL;
}

static int known(pid_t pid)
{
    for (int i = 0; i < M.n; i++)
        if (M.svc[i].main == pid || M.svc[i].control == pid)
            return 1;
    return 0;
}

/* Type=forking: the PIDFile's pid, or (as systemd's GuessMainPID) an orphan we adopted and no unit owns. */
pid_t forked_main(struct svc *s)
{
    for (double until = now() + 1; s->u->pidfile[0] && now() < until; pump(now() + 0.02)) {
        char buf[32] = {0};
        /* O_NONBLOCK: a FIFO the service put there must not stop the manager in open() */
        cleanup_fd int fd = open(s->u->pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0 && atoi(buf) > 1 && alive(atoi(buf)))
            return atoi(buf);
    }
    DIR *proc = opendir("/proc");
    pid_t found = 0;
    for (struct dirent *d; proc && (d = readdir(proc));) {
        pid_t pid = atoi(d->d_name);
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        cleanup_fd int fd = pid > 1 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (got <= 0)
            continue;
        buf[got] = 0;
        char *p = strrchr(buf, ')');
        int ppid = 0;
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == 1 && !known(pid) && (!found || pid < found))
            found = pid;
    }
    if (proc)
        closedir(proc);
    return found;
}
