/* The error type, fd and process helpers every part of the C core shares (see util.h). */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

int pn_fail(struct pn_error *e, enum pn_error_kind kind, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (errnum && len >= 0 && (size_t)len < sizeof e->msg)
        snprintf(e->msg + len, sizeof e->msg - len, ": %s", strerror(errnum));
    e->kind = kind;
    e->errnum = errnum;
    return -1;
}

const char *pn_error_kind_name(enum pn_error_kind kind)
{
    switch (kind) {
    case PN_ERR_INVALID:
        return "invalid";
    case PN_ERR_REFUSED:
        return "refused";
    case PN_ERR_NOT_FOUND:
        return "notfound";
    case PN_ERR_SYSTEM:
        break;
    }
    return "system";
}

void pn_error_format(const struct pn_error *e, char *buf, size_t size)
{
    snprintf(buf, size, "%s %s", pn_error_kind_name(e->kind), e->msg);
}

void pn_error_report(int fd, const struct pn_error *e)
{
    dprintf(fd, "error %s %s\n", pn_error_kind_name(e->kind), e->msg);
}

void pn_child_fail(int syncfd, const struct pn_error *e)
{
    if (syncfd >= 0)
        (void)!write(syncfd, e, sizeof *e);
    _exit(127);
}

int pn_read_child_error(int syncfd, struct pn_error *e)
{
    ssize_t got = TEMP_FAILURE_RETRY(read(syncfd, e, sizeof *e));
    if (got == 0)
        return 0;
    if (got != (ssize_t)sizeof *e)
        return pn_fail(e, PN_ERR_SYSTEM, got < 0 ? errno : 0, "child reported no readable error");
    e->msg[sizeof e->msg - 1] = 0;
    return -1;
}

int write_file(const char *path, const char *text)
{
    cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    return TEMP_FAILURE_RETRY(write(fd, text, strlen(text))) < 0 ? -1 : 0;
}

void close_fds_except(int keep)
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

int loopback_up(struct pn_error *e)
{
    cleanup_fd int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return pn_sys(e, "bring up loopback");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return pn_sys(e, "bring up loopback");
    return 0;
}

int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Field 22 of /proc/PID/stat: with the pid, it names one process for good (pids are reused). */
unsigned long long pn_starttime(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, buf, sizeof buf - 1);
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
