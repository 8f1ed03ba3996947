/* The service manager in the container's init (see services.h). One thread, one poll loop. */
#define _GNU_SOURCE
#include "services.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "logsock.h"
#include "pathops.h"
#include "sandbox.h"

#define SETTLE 0.25    /* a simple service alive this long after its exec counts as started */
#define BURST 5        /* StartLimitBurst= in StartLimitIntervalSec=10s, systemd's defaults */
#define FOREVER 1e18
#define TAIL_LINES 4   /* each unit's last lines of output, in its status line (info shows them) */
#define TAIL_LEN 120

enum state { S_INACTIVE, S_SKIPPED, S_STARTING, S_ACTIVE, S_EXITED, S_STOPPING, S_DEAD, S_FAILED, S_RESTARTING };
static const char *const state_names[] = {"inactive", "skipped", "starting", "running", "exited",
                                          "stopping", "dead",    "failed",   "restarting"};

struct svc {
    const struct pn_unit *u;
    enum state state;
    pid_t main, control;
    int main_status, control_status, ready, restarts, exit_code, boot_failed, burst;
    double since, restart_at, burst_start;
    char error[300];
    int out[2];                          /* its processes' stdout and stderr; the init copies it to the log */
    char partial[TAIL_LEN];              /* the line being written */
    size_t plen;
    char tail[TAIL_LINES][TAIL_LEN];     /* the last whole lines, a ring */
    int tail_next;
};

static struct {
    const struct pn_config *c;
    struct svc svc[PN_MAX_UNITS];
    int n, sfd, notify, devlog, journal, statusfd, stopping, reload, booting;
} M;

/* ---- reporting ---- */

/* No tab or control character in a status field; the tail's lines are separated by US (0x1f). */
static int put_field(char *buf, size_t size, const char *text)
{
    size_t n = 0;
    for (; *text && n < size - 1; text++)
        buf[n++] = (unsigned char)*text < 0x20 ? ' ' : *text;
    buf[n] = 0;
    return (int)n;
}

static void tail_field(const struct svc *s, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < TAIL_LINES; k++) {
        const char *line = s->tail[(s->tail_next + k) % TAIL_LINES];
        if (!line[0] || n + TAIL_LEN + 1 >= size)
            continue;
        if (n)
            buf[n++] = 0x1f;
        n += put_field(buf + n, size - n, line);
    }
}

#define UNIT_REPORT (300 + TAIL_LINES * (TAIL_LEN + 1) + 200)

static void publish(void)
{
    char buf[PN_MAX_UNITS * UNIT_REPORT + 64], error[300], tail[TAIL_LINES * (TAIL_LEN + 1) + 1];
    int len = snprintf(buf, sizeof buf, "boot=%s\n", M.booting ? "starting" : "done");
    for (int i = 0; i < M.n && len < (int)sizeof buf - UNIT_REPORT; i++) {
        struct svc *s = &M.svc[i];
        put_field(error, sizeof error, s->error);
        tail_field(s, tail, sizeof tail);
        len += snprintf(buf + len, sizeof buf - len, "unit\t%s\t%s\t%d\t%d\t%d\t%d\t%.3f\t%s\t%s\n", s->u->name,
                        state_names[s->state], s->main, s->restarts, s->exit_code, s->boot_failed, s->since,
                        error, tail);
    }
    len += snprintf(buf + len, sizeof buf - len, ".\n");
    for (int off = 0; off < len;) {
        ssize_t put = write(M.statusfd, buf + off, len - off);
        if (put <= 0 && errno != EINTR)
            return;
        off += put > 0 ? put : 0;
    }
}

static void __attribute__((format(printf, 2, 3))) set_error(struct svc *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    dprintf(1, "prodng: %s: %s\n", s->u->name, s->error);
}

/* ---- output ---- */

static void keep_line(struct svc *s, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    snprintf(s->tail[s->tail_next], TAIL_LEN, "%.*s", (int)len, line);
    s->tail_next = (s->tail_next + 1) % TAIL_LINES;
}

/* Copy what the unit's processes wrote to the log (fd 1), keeping its last lines. */
static void drain(struct svc *s)
{
    char buf[8192];
    ssize_t got;
    while (s->out[0] >= 0 && (got = read(s->out[0], buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < got;) {
            ssize_t put = write(1, buf + off, got - off);
            if (put <= 0 && errno != EINTR)
                break;
            off += put > 0 ? put : 0;
        }
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] == '\n') {
                keep_line(s, s->partial, s->plen);
                s->plen = 0;
            } else if (s->plen < sizeof s->partial - 1) {
                s->partial[s->plen++] = buf[i];
            }
        }
    }
}

/* The unit a syslog sender belongs to: its main or control process, or one in their session (each
 * command starts a session of its own; a daemon that forks and calls setsid() is its own main). */
static struct svc *unit_of(pid_t pid)
{
    pid_t sid = pid > 0 ? getsid(pid) : -1;
    for (int i = 0; i < M.n && pid > 0; i++) {
        struct svc *s = &M.svc[i];
        if ((s->main > 0 && (pid == s->main || sid == s->main)) || (s->control > 0 && (pid == s->control || sid == s->control)))
            return s;
    }
    return NULL;
}

static void relay(int (*receive)(int, char *, size_t, pid_t *), int sock)
{
    char line[TAIL_LEN];
    pid_t pid = 0;
    int len = receive(sock, line, sizeof line, &pid);
    struct svc *s = len > 0 ? unit_of(pid) : NULL;
    if (s)
        keep_line(s, line, strlen(line));
}

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
static pid_t spawn(struct svc *s, const char *cmd)
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

static void on_main_exit(struct svc *s, int status);

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

static void pump(double until)
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

static int alive(pid_t pid)
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
static int run_phase(struct svc *s, const char *phase, double deadline, int *condition_skip)
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

static const char *find_cmd(const struct pn_unit *u, const char *phase)
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
static pid_t forked_main(struct svc *s)
{
    for (double until = now() + 1; s->u->pidfile[0] && now() < until; pump(now() + 0.02)) {
        char buf[32] = {0};
        cleanup_fd int fd = open(s->u->pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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

static int should_restart(const char *policy, int status)
{
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int signalled = WIFSIGNALED(status);
    if (!strcmp(policy, "always"))
        return 1;
    if (!strcmp(policy, "on-success"))
        return clean;
    if (!strcmp(policy, "on-failure"))
        return !clean;
    if (!strcmp(policy, "on-abnormal"))
        return signalled;
    if (!strcmp(policy, "on-abort"))
        return signalled && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGHUP;
    return 0;
}

/* A failure: start again later under Restart= and the start limit, or stay failed. */
static void failed(struct svc *s, int status)
{
    drain(s);
    s->exit_code = status >= 0 ? exit_code(status) : s->exit_code ? s->exit_code : 1;
    if (M.booting)
        s->boot_failed = 1;
    double t = now();
    if (t - s->burst_start > 10)
        s->burst_start = t, s->burst = 0;
    if (!M.stopping && status >= 0 && should_restart(s->u->restart, status) && ++s->burst < BURST) {
        s->state = S_RESTARTING;
        s->restart_at = t + s->u->restart_ms / 1000.0;
    } else {
        s->state = S_FAILED;
    }
    s->since = t;
    publish();
}

static void on_main_exit(struct svc *s, int status)
{
    if (s->state != S_ACTIVE)
        return; /* starting and stopping look at main themselves */
    int code = exit_code(status);
    if (code == 0 && !should_restart(s->u->restart, status)) {
        s->state = s->u->remain ? S_EXITED : S_DEAD;
        s->since = now();
        publish();
        return;
    }
    set_error(s, WIFSIGNALED(status) ? "main process killed by signal %d" : "main process exited with %d",
              WIFSIGNALED(status) ? WTERMSIG(status) : code);
    failed(s, status);
}

static void kill_unit(struct svc *s, int sig)
{
    if (s->main > 0) {
        if (strcmp(s->u->killmode, "process") && strcmp(s->u->killmode, "none"))
            kill(-s->main, sig); /* its session: setsid() made the group */
        if (strcmp(s->u->killmode, "none"))
            kill(s->main, sig);
    }
    if (s->control > 0)
        kill(-s->control, sig), kill(s->control, sig);
}

static int wait_gone(struct svc *s, double deadline)
{
    while ((alive(s->main) || s->control > 0) && now() < deadline)
        pump(now() + 0.05 < deadline ? now() + 0.05 : deadline);
    return !alive(s->main) && s->control <= 0;
}

static void stop_unit(struct svc *s)
{
    if (s->state != S_ACTIVE && s->state != S_EXITED && s->state != S_STARTING && s->state != S_RESTARTING)
        return;
    int was_active = s->state == S_ACTIVE || s->state == S_EXITED;
    s->state = S_STOPPING;
    publish();
    double deadline = s->u->stop_timeout_ms < 0 ? FOREVER : now() + s->u->stop_timeout_ms / 1000.0;
    if (was_active)
        run_phase(s, "stop", deadline, NULL);
    kill_unit(s, s->u->killsig);
    if (s->u->killsig != SIGKILL && s->main > 0)
        kill(s->main, SIGCONT);
    if (!wait_gone(s, deadline) && s->u->sigkill) {
        kill_unit(s, SIGKILL);
        wait_gone(s, now() + 2);
    }
    run_phase(s, "stoppost", now() + 10, NULL);
    s->state = S_DEAD;
    s->since = now();
    publish();
}

static int apply_dirs(struct svc *s)
{
    struct pn_error e;
    for (int i = 0; i < s->u->ndirs; i++)
        if (apply_path_op(s->u->dirs[i], &e) < 0) {
            set_error(s, "%s", e.msg);
            return -1;
        }
    return 0;
}

/* After ExecStart: wait until the unit counts as started, by its type; 0, or -1 with s->error set. */
static int await_ready(struct svc *s, const char *type, double deadline)
{
    if (!strcmp(type, "forking")) {
        while (s->control > 0 && now() < deadline && !M.stopping)
            pump(deadline);
        if (s->control > 0) {
            set_error(s, "start timed out (TimeoutStartSec)");
            return -1;
        }
        if (exit_code(s->control_status) != 0) {
            s->exit_code = exit_code(s->control_status);
            set_error(s, "start command exited with %d", s->exit_code);
            return -1;
        }
        s->main = forked_main(s);
        if (!s->main && s->u->pidfile[0] && !s->u->remain) {
            set_error(s, "no process in PIDFile %s after start", s->u->pidfile);
            return -1;
        }
        return 0;
    }
    int notify = !strcmp(type, "notify");
    double settle = notify ? deadline : now() + SETTLE;
    while (s->main > 0 && now() < settle && !(notify && s->ready) && !M.stopping)
        pump(settle);
    if (s->main <= 0) {
        int status = s->main_status;
        s->exit_code = exit_code(status);
        if (s->exit_code == 0 && !notify)
            return 1; /* a simple service that did its work and ended */
        set_error(s, WIFSIGNALED(status) ? "killed by signal %d at start" : "exited with %d at start",
                  WIFSIGNALED(status) ? WTERMSIG(status) : s->exit_code);
        return -1;
    }
    if (notify && !s->ready) {
        set_error(s, "no READY=1 before TimeoutStartSec");
        return -1;
    }
    return 0;
}

static int start_main(struct svc *s, double deadline)
{
    const char *type = s->u->type;
    if (!strcmp(type, "oneshot"))
        return run_phase(s, "start", deadline, NULL) < 0 ? -1 : 1;
    const char *cmd = find_cmd(s->u, "start");
    if (!cmd) {
        set_error(s, "no ExecStart");
        return -1;
    }
    s->ready = 0;
    s->main_status = 0;
    pid_t pid = spawn(s, cmd);
    if (pid < 0)
        return -1;
    if (!strcmp(type, "forking"))
        s->control = pid, s->control_status = 0;
    else
        s->main = pid;
    return await_ready(s, type, deadline);
}

/* The whole start of one unit; its state says how it went. */
static void start_unit(struct svc *s)
{
    if (s->u->skip[0]) {
        s->state = S_SKIPPED;
        snprintf(s->error, sizeof s->error, "%s", s->u->skip);
        publish();
        return;
    }
    s->state = S_STARTING;
    s->error[0] = 0;
    s->since = now();
    publish();
    double deadline = s->u->start_timeout_ms < 0 ? FOREVER : now() + s->u->start_timeout_ms / 1000.0;
    int skip = 0;
    if (apply_dirs(s) < 0 || run_phase(s, "condition", deadline, &skip) < 0) {
        failed(s, -1);
        return;
    }
    if (skip) {
        s->state = S_SKIPPED;
        snprintf(s->error, sizeof s->error, "ExecCondition exited with %d", skip);
        publish();
        return;
    }
    int started = run_phase(s, "pre", deadline, NULL) < 0 ? -1 : start_main(s, deadline);
    if (started >= 0 && run_phase(s, "post", deadline, NULL) < 0)
        started = -1;
    if (started < 0) {
        int status = s->main_status;
        kill_unit(s, SIGKILL);
        wait_gone(s, now() + 2);
        failed(s, s->exit_code ? (s->exit_code << 8) : status ? status : 1 << 8);
        return;
    }
    s->state = started == 1 ? (s->u->remain ? S_EXITED : S_DEAD) : S_ACTIVE;
    if (s->state == S_ACTIVE && !s->main && strcmp(s->u->type, "forking"))
        s->state = S_DEAD;
    s->since = now();
    publish();
}

static void reload_all(void)
{
    for (int i = 0; i < M.n; i++) {
        struct svc *s = &M.svc[i];
        if (s->state != S_ACTIVE && s->state != S_EXITED)
            continue;
        if (find_cmd(s->u, "reload"))
            run_phase(s, "reload", now() + (s->u->start_timeout_ms < 0 ? 90 : s->u->start_timeout_ms / 1000.0), NULL);
        else if (s->main > 0)
            kill(s->main, SIGHUP);
    }
}

static int any_alive(void)
{
    for (int i = 0; i < M.n; i++) {
        enum state st = M.svc[i].state;
        if (st == S_ACTIVE || st == S_EXITED || st == S_STARTING || st == S_RESTARTING)
            return 1;
    }
    return 0;
}

static int final_code(void)
{
    for (int i = 0; i < M.n; i++)
        if (M.svc[i].state == S_FAILED)
            return M.svc[i].exit_code ? M.svc[i].exit_code : 1;
    return 0;
}

static void __attribute__((noreturn)) shut_down(void)
{
    M.stopping = 1;
    for (int i = M.n - 1; i >= 0; i--)
        stop_unit(&M.svc[i]);
    int code = final_code();
    kill(-1, SIGTERM); /* what the units left behind, as systemd's final kill */
    for (double until = now() + 1; now() < until && waitpid(-1, NULL, WNOHANG) >= 0;)
        pump(now() + 0.05);
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    for (int i = 0; i < M.n; i++)
        drain(&M.svc[i]);
    publish();
    _exit(code);
}

/* Inside the container, as root, before the manager drops what it does not need. */
static int prepare(const struct pn_config *c, struct pn_error *e)
{
    struct pn_error ignored;
    for (int i = 0; i < c->ntmpfiles; i++)
        apply_path_op(c->tmpfiles[i], &ignored); /* tmpfiles goes on past a bad line, so do we */
    if (mkdir("/run/lock", 01777) < 0 && errno != EEXIST)
        return pn_sys(e, "mkdir /run/lock");
    chmod("/run/lock", 01777);
    if (c->hosts && write_hosts(c->hosts, e) < 0)
        return -1;
    mkdir("/run/systemd", 0755);
    mkdir("/run/systemd/journal", 0755);
    M.notify = bind_datagram("/run/systemd/notify", e);
    M.devlog = bind_datagram("/dev/log", e);
    M.journal = bind_datagram("/run/systemd/journal/socket", e);
    if (M.notify < 0 || M.devlog < 0 || M.journal < 0)
        return -1;
    if (symlink("/dev/log", "/run/systemd/journal/dev-log") < 0 && errno != EEXIST)
        return pn_sys(e, "symlink dev-log");
    sigset_t all;
    sigfillset(&all);
    M.sfd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
    return M.sfd < 0 ? pn_sys(e, "signalfd") : 0;
}

/* Nothing of the monitor's stays open in PID 1 but the two pipes (the CLI waits for EOF on another). */
static void close_others(int a, int b)
{
    int lo = a < b ? a : b, hi = a < b ? b : a;
    syscall(SYS_close_range, 3, lo - 1, 0);
    syscall(SYS_close_range, lo + 1, hi - 1, 0);
    syscall(SYS_close_range, hi + 1, ~0U, 0);
}

void run_services(const struct pn_config *c, int syncfd, int statusfd)
{
    struct pn_error e;
    close_others(syncfd, statusfd);
    M.c = c;
    M.n = c->nunits;
    M.statusfd = statusfd;
    M.booting = 1;
    for (int i = 0; i < M.n; i++)
        M.svc[i] = (struct svc){.u = &c->units[i], .out = {-1, -1}};
    if (prepare(c, &e) < 0 || drop_privileges(c, 1, &e) < 0)
        pn_child_fail(syncfd, &e);
    prctl(PR_SET_NAME, "prodng-init", 0, 0, 0);
    publish();
    close(syncfd); /* the monitor answers "ok": the units' own start is reported on statusfd */
    for (int i = 0; i < M.n && !M.stopping; i++)
        start_unit(&M.svc[i]);
    M.booting = 0;
    publish();
    for (;;) {
        if (M.stopping || !any_alive())
            shut_down();
        if (M.reload) {
            M.reload = 0;
            reload_all();
        }
        double next = FOREVER;
        for (int i = 0; i < M.n; i++) {
            struct svc *s = &M.svc[i];
            if (s->state == S_RESTARTING && s->restart_at <= now()) {
                s->restarts++;
                start_unit(s);
            }
            if (s->state == S_RESTARTING && s->restart_at < next)
                next = s->restart_at;
        }
        pump(next);
    }
}
