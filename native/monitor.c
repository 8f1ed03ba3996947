/*
 * The monitor: outside the namespaces, one per container. It clones the container's init,
 * copies its output to a bounded log, records its status in a file prodng reads, appends
 * events, and restarts it under its policy with exponential backoff.
 */
#define _GNU_SOURCE
#include "monitor.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "config.h"
#include "init.h"
#include "keeper.h"

struct monitor {
    const struct pn_config *c;
    int logfd, restarts, exit_code, unitfd;
    char units[65536]; /* the service manager's last, partial report */
    size_t unitlen;
    long logsize;
    pid_t init_pid, keeper_pid;
    unsigned long long init_start;
    double started_at, finished_at, checked_at;
    long long oom_kills; /* as last seen in oom_watch */
    int disk_full;       /* said once until usage falls well below the quota */
    const char *state;
    struct pn_error error;
};

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
                       m->exit_code, m->started_at, m->finished_at, m->error.msg);
    cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    (void)!write(fd, text, len);
    fsync(fd);
    rename(tmp, m->c->status);
}

/*
 * Past events_max the journal becomes events.jsonl.1, as events.emit rotates it and under the same
 * flock: the service decides how often its monitor writes (an OOM a second, a crash every 10 s),
 * so without this a container could grow a file on the host without end.
 */
static void rotate_events(const struct monitor *m)
{
    struct stat st;
    if (!m->c->events_lock || m->c->events_max <= 0 || stat(m->c->events, &st) < 0 || st.st_size <= m->c->events_max)
        return;
    cleanup_fd int lock = open(m->c->events_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || TEMP_FAILURE_RETRY(flock(lock, LOCK_EX)) < 0)
        return;
    char old[4200];
    snprintf(old, sizeof old, "%s.1", m->c->events);
    if (stat(m->c->events, &st) == 0 && st.st_size > m->c->events_max) /* another writer may have rotated it */
        rename(m->c->events, old);
}

/* One JSON line appended to the events journal (O_APPEND keeps lines whole); extra: more "key": value. */
static void emit_event_with(const struct monitor *m, const char *kind, const char *extra)
{
    if (!m->c->events)
        return;
    rotate_events(m);
    char line[640];
    int len = snprintf(line, sizeof line, "{\"event\": \"%s\", \"name\": \"%s\", \"time\": %.6f, %s}\n", kind,
                       m->c->name, now(), extra);
    cleanup_fd int fd = open(m->c->events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && len < (int)sizeof line)
        (void)!write(fd, line, len);
}

static void emit_event(const struct monitor *m, const char *kind)
{
    char extra[64];
    snprintf(extra, sizeof extra, "\"exit_code\": %d", m->exit_code);
    emit_event_with(m, kind, extra);
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
    if (m->logfd >= 0 && TEMP_FAILURE_RETRY(write(m->logfd, data, len)) > 0)
        m->logsize += len;
}

/*
 * The service's output, whose bytes may not include the mark of prodng's own lines: its
 * record separators become '?', so no line it writes is ever taken for one of ours.
 */
static void write_service_log(struct monitor *m, char *data, size_t len)
{
    for (char *p = data; (p = memchr(p, PN_OWN_LINE_MARK, data + len - p)); p++)
        *p = '?';
    write_log(m, data, len);
}

/* One of prodng's own lines: it begins with the mark (see prodng/container/logs.py). */
static void __attribute__((format(printf, 2, 3))) log_line(struct monitor *m, const char *fmt, ...)
{
    char line[700];
    va_list ap;
    va_start(ap, fmt);
    line[0] = PN_OWN_LINE_MARK;
    int len = 1 + vsnprintf(line + 1, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    write_log(m, line, len);
}

/* The number after "key " in a small file of "key value" lines (a file of one number if key is NULL). */
static long long read_counter(const char *dir, const char *file, const char *key)
{
    char path[4200], buf[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, file ? "/" : "", file ? file : "");
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (got <= 0)
        return -1;
    buf[got] = 0;
    if (!key)
        return strtoll(buf, NULL, 10);
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, klen) && line[klen] == ' ')
            return strtoll(line + klen + 1, NULL, 10);
    return -1;
}

/*
 * Limits hit: an OOM kill in the container's cgroup, its root at its disk quota. Polled about
 * once a second while the service runs (two small reads); each becomes an event and a log line.
 */
static void check_limits(struct monitor *m)
{
    if (now() - m->checked_at < 1.0)
        return;
    m->checked_at = now();
    long long kills = m->c->oom_watch ? read_counter(m->c->oom_watch, NULL, "oom_kill") : -1;
    if (kills > m->oom_kills) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"oom_kills\": %lld", kills);
        emit_event_with(m, "oom", extra);
        log_line(m, "prodng: out of memory: the kernel killed a process (%lld so far)", kills);
        m->oom_kills = kills;
    }
    if (!m->c->quota_watch)
        return;
    long long used = read_counter(m->c->quota_watch, "exclusive", NULL); /* see prodng/storage/quota.py */
    long long limit = read_counter(m->c->quota_watch, "max_exclusive", NULL);
    if (limit <= 0) /* a root limited before limits were on exclusive bytes */
        limit = read_counter(m->c->quota_watch, "max_referenced", NULL);
    long long slack = limit / 100 > (1 << 20) ? limit / 100 : (1 << 20); /* writes stop a little short */
    if (limit > 0 && used >= limit - slack && !m->disk_full) {
        char extra[96];
        snprintf(extra, sizeof extra, "\"disk_used\": %lld, \"disk_limit\": %lld", used, limit);
        emit_event_with(m, "disk_full", extra);
        log_line(m, "prodng: disk quota reached: %lld of %lld bytes", used, limit);
        m->disk_full = 1;
    } else if (limit > 0 && used < limit - 10 * slack) {
        m->disk_full = 0;
    }
}

/*
 * The service manager reports every unit after each change as "boot=..." lines ending in ".";
 * each whole report replaces STATUS.units (prodng reads it: container/services.py).
 */
static void read_units(struct monitor *m)
{
    ssize_t got = TEMP_FAILURE_RETRY(read(m->unitfd, m->units + m->unitlen, sizeof m->units - m->unitlen - 1));
    if (got <= 0) {
        close(m->unitfd);
        m->unitfd = -1;
        return;
    }
    m->unitlen += got;
    m->units[m->unitlen] = 0;
    char *end;
    while ((end = strstr(m->units, "\n.\n"))) {
        size_t len = end + 3 - m->units;
        char path[4200], tmp[4300];
        snprintf(path, sizeof path, "%s.units", m->c->status);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        cleanup_fd int fd = m->c->status ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        if (fd >= 0 && write(fd, m->units, len) == (ssize_t)len)
            rename(tmp, path);
        memmove(m->units, m->units + len, m->unitlen - len + 1);
        m->unitlen -= len;
    }
    if (m->unitlen >= sizeof m->units - 1)
        m->unitlen = 0; /* a report larger than the buffer: drop it, the next one is whole again */
}

/* Start once: returns the init's pid with *outfd its output pipe, or -1 with m->error set. */
static pid_t start_container(struct monitor *m, int *outfd)
{
    cleanup_pipe int out[2] = {-1, -1};
    cleanup_pipe int sync[2] = {-1, -1};
    cleanup_pipe int units[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(sync, O_CLOEXEC) < 0 || pipe2(units, O_CLOEXEC) < 0)
        return pn_sys(&m->error, "pipe");
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    if (!strcmp(m->c->net, "none"))
        flags |= CLONE_NEWNET; /* dhcp, static: the monitor already made the namespace the keeper wired */
    pid_t pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) {
            pn_fail(&m->error, PN_ERR_SYSTEM, 0, "stdio setup failed");
            pn_child_fail(sync[1], &m->error);
        }
        close(units[0]);
        container_init(m->c, sync[1], units[1]);
    }
    if (pid < 0)
        return pn_sys(&m->error, "clone");
    pn_close_now(&out[1]);
    pn_close_now(&sync[1]);
    pn_close_now(&units[1]);
    /* EOF on the sync pipe means the service's exec succeeded; an error is what failed first. */
    if (pn_read_child_error(sync[0], &m->error) < 0) {
        waitpid(pid, NULL, 0);
        return -1;
    }
    m->error = (struct pn_error){0};
    *outfd = pn_steal_fd(&out[0]);
    m->unitfd = pn_steal_fd(&units[0]);
    m->unitlen = 0;
    return pid;
}

/* Copy output to the log until the init exits and its pipe is drained. */
static int supervise(struct monitor *m, int sfd, int outfd, int *stopping)
{
    int status = 0, reaped = 0, eof = 0;
    int watching = m->c->oom_watch || m->c->quota_watch;
    char buf[65536];
    m->oom_kills = m->c->oom_watch ? read_counter(m->c->oom_watch, NULL, "oom_kill") : -1;
    while (!(reaped && eof)) {
        struct pollfd fds[3] = {{sfd, POLLIN, 0}, {eof ? -1 : outfd, POLLIN, 0}, {m->unitfd, POLLIN, 0}};
        int ready = poll(fds, 3, watching ? 1000 : -1);
        if (watching)
            check_limits(m);
        if (ready <= 0)
            continue;
        if (fds[2].revents)
            read_units(m);
        if (!eof && fds[1].revents) {
            ssize_t got = TEMP_FAILURE_RETRY(read(outfd, buf, sizeof buf));
            if (got > 0)
                write_service_log(m, buf, got);
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

/* 100 ms doubling per quick failure up to 30 s; a run of over 10 s starts the count again. */
static int restart_delay(const struct monitor *m, int *failures)
{
    *failures = m->finished_at - m->started_at > 10 ? 0 : *failures + 1;
    int delay = *failures > 9 ? 30000 : 100 << (*failures > 0 ? *failures - 1 : 0);
    return delay > 30000 ? 30000 : delay;
}

/* The monitor's own set-up: name, fds, log, signals (all through *sfd, a signalfd). */
static int prepare(struct monitor *m, int ready_fd, int *sfd)
{
    prctl(PR_SET_NAME, "prodng-shim", 0, 0, 0);
    /* The OOM killer must pick the service, never its monitor or init (which inherits this);
     * exec_service gives the service back a normal score. */
    write_file("/proc/self/oom_score_adj", "-1000");
    close_fds_except(ready_fd); /* the config fd is read; nothing else of our parent's stays open */
    if (chdir("/") < 0)
        return -1;
    m->logfd = m->c->log ? open(m->c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
    struct stat st;
    m->logsize = m->logfd >= 0 && fstat(m->logfd, &st) == 0 ? st.st_size : 0;
    sigset_t mask;
    sigemptyset(&mask);
    int handled[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        sigaddset(&mask, handled[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    *sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    return 0;
}

static int fail_start(struct monitor *m, int ready_fd)
{
    m->state = "failed";
    write_status(m);
    pn_error_report(ready_fd, &m->error);
    return 1;
}

/*
 * Run, supervise and restart until the policy or a stop says no more: 1 if stopped, 0 if it
 * ended, -1 if the first start failed (reported on ready_fd).
 */
static int run_until_done(struct monitor *m, int sfd, int ready_fd)
{
    int stopping = 0, failures = 0;
    for (int first = 1;; first = 0) {
        int outfd = -1;
        m->started_at = now();
        m->init_pid = start_container(m, &outfd);
        if (m->init_pid < 0) {
            if (first) {
                fail_start(m, ready_fd);
                return -1;
            }
            log_line(m, "prodng: restart failed: %s", m->error.msg);
            m->exit_code = 127;
        } else {
            m->init_start = pn_starttime(m->init_pid);
            m->state = "running";
            write_status(m);
            if (first) {
                dprintf(ready_fd, "ok %d %llu\n", m->init_pid, m->init_start);
                close(ready_fd);
            }
            m->exit_code = supervise(m, sfd, outfd, &stopping);
            close(outfd);
            while (m->unitfd >= 0) /* the manager's last report, before its end */
                read_units(m);
        }
        m->finished_at = now();
        m->init_pid = 0;
        emit_event(m, "died");
        if (stopping || !should_restart(m))
            return stopping;
        int delay = restart_delay(m, &failures);
        log_line(m, "prodng: service exited with %d; restart %d in %d ms", m->exit_code, m->restarts + 1, delay);
        m->state = "restarting";
        write_status(m);
        if (backoff(sfd, delay))
            return 1;
        m->restarts++;
        emit_event(m, "restarted");
    }
}

int pn_monitor_main(const char *config_path, int ready_fd)
{
    struct pn_config c;
    struct monitor m = {.c = &c, .logfd = -1, .unitfd = -1, .state = "starting"};
    if (load_config(config_path, &c, &m.error) < 0) {
        pn_error_report(ready_fd, &m.error);
        return 1;
    }
    int sfd = -1, lifeline = -1;
    if (prepare(&m, ready_fd, &sfd) < 0)
        return 1;
    if (c.nkeeper > 0 && start_keeper(&c, &lifeline, &m.keeper_pid, &m.error) < 0)
        return fail_start(&m, ready_fd);
    int stopping = run_until_done(&m, sfd, ready_fd);
    if (stopping < 0)
        return 1;
    m.state = stopping ? "stopped" : "exited";
    write_status(&m);
    if (lifeline >= 0)
        close(lifeline); /* the keeper tears the network down now */
    return 0;
}
