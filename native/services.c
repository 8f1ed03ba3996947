/* The service manager in the container's init (see services.h). One thread, one poll loop. */
#define _GNU_SOURCE
#include "services.h"
#include "services_int.h"

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


struct manager M;

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

void on_main_exit(struct svc *s, int status)
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
