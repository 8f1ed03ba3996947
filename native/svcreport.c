/* The units' output and status for the service manager (see services_int.h): each unit's output
 * copied into the container's log with its last lines kept, syslog and journal lines matched to
 * their unit, and the status lines the monitor keeps in the container's state. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "services_int.h"

static const char *const state_names[] = {"inactive", "skipped", "starting", "running", "exited",
                                          "stopping", "dead",    "failed",   "restarting"};

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

void publish(void)
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

void __attribute__((format(printf, 2, 3))) set_error(struct svc *s, const char *fmt, ...)
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
void drain(struct svc *s)
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

void relay(int (*receive)(int, char *, size_t, pid_t *), int sock)
{
    char line[TAIL_LEN];
    pid_t pid = 0;
    int len = receive(sock, line, sizeof line, &pid);
    struct svc *s = len > 0 ? unit_of(pid) : NULL;
    if (s)
        keep_line(s, line, strlen(line));
}
