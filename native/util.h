/*
 * Shared by every part of prodng's C core: the error type, scoped cleanup, small syscall helpers.
 *
 * Errors follow crun's libcrun_error_t: a function that fails fills a struct pn_error (what
 * kind of failure, the errno behind it, a one-line message) and returns -1; it never exits.
 * The kind travels to Python as a word ("error KIND MESSAGE"), and prodng/errors.py maps it
 * to an error class in one place, so Python never guesses from the message's wording.
 */
#ifndef PRODNG_UTIL_H
#define PRODNG_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

enum pn_error_kind {
    PN_ERR_SYSTEM = 0, /* the host could not do it (a mount, a fork, a cgroup): SystemFailure */
    PN_ERR_INVALID,    /* what the container's config asks for cannot be used: its command, workdir, a bind source */
    PN_ERR_REFUSED,    /* the root is unsafe to set up: a symlink or non-directory where a mount goes */
    PN_ERR_NOT_FOUND,  /* what an exec was pointed at is gone: the container's init, the command */
};

struct pn_error {
    enum pn_error_kind kind;
    int errnum;     /* the errno behind the failure, 0 if none */
    char msg[512];  /* one line, ": strerror(errnum)" already appended */
};

/* Fill e and return -1. errnum 0 adds nothing to the message; else ": strerror(errnum)". */
int pn_fail(struct pn_error *e, enum pn_error_kind kind, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The common case: a system call just failed, errno says why. */
#define pn_sys(e, ...) pn_fail((e), PN_ERR_SYSTEM, errno, __VA_ARGS__)

/* The word for a kind as it goes over the wire ("system", "invalid", ...). */
const char *pn_error_kind_name(enum pn_error_kind kind);
/* "KIND MESSAGE" into buf. */
void pn_error_format(const struct pn_error *e, char *buf, size_t size);
/* "error KIND MESSAGE\n" on fd: how the monitor answers the CLI on its ready pipe. */
void pn_error_report(int fd, const struct pn_error *e);

/*
 * A forked child reports its error to the parent through a sync pipe, then dies. The struct goes
 * whole (same binary on both ends; smaller than PIPE_BUF, so the write is atomic). The parent reads
 * EOF (the exec succeeded: the pipe is O_CLOEXEC) or one error.
 */
void __attribute__((noreturn)) pn_child_fail(int syncfd, const struct pn_error *e);
/* 0 on EOF (the child exec'd), -1 with e filled when the child reported an error. */
int pn_read_child_error(int syncfd, struct pn_error *e);

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expr)                                                                                       \
    ({                                                                                                                 \
        long _r;                                                                                                       \
        do                                                                                                             \
            _r = (long)(expr);                                                                                         \
        while (_r == -1L && errno == EINTR);                                                                           \
        _r;                                                                                                            \
    })
#endif

/* Scoped cleanup (systemd, crun): closed or freed when the variable leaves scope, errno kept. */
static inline void pn_close_fdp(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void pn_close_pipep(int (*fds)[2])
{
    pn_close_fdp(&(*fds)[0]);
    pn_close_fdp(&(*fds)[1]);
}

static inline void pn_freep(void *p)
{
    free(*(void **)p);
}

#define cleanup_fd __attribute__((cleanup(pn_close_fdp)))
#define cleanup_pipe __attribute__((cleanup(pn_close_pipep)))
#define cleanup_free __attribute__((cleanup(pn_freep)))

/* Hand ownership on: returns the fd and leaves -1 behind, so the cleanup does not close it. */
static inline int pn_steal_fd(int *fd)
{
    int out = *fd;
    *fd = -1;
    return out;
}

/* Close now (e.g. so a reader sees EOF) and leave -1 behind for the cleanup. */
static inline void pn_close_now(int *fd)
{
    pn_close_fdp(fd);
    *fd = -1;
}

/* Write text to an existing file (cgroup.procs and the like); -1 with errno set. */
int write_file(const char *path, const char *text);
/* Close every fd from 3 up except keep (-1: keep none). */
void close_fds_except(int keep);
/* Bring up lo in the current network namespace. */
int loopback_up(struct pn_error *e);
/* A wait status as a shell would report it: the exit code, or 128 + the signal. */
int exit_code(int status);
/* Field 22 of /proc/PID/stat (0 if gone): with the pid, it names one process for good. */
unsigned long long pn_starttime(int pid);
/* CLOCK_REALTIME in seconds. */
double now(void);

#endif
