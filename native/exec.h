/* exec: one command in a running container, from the separate prodng-exec helper (exec_main.c). */
#ifndef PRODNG_EXEC_H
#define PRODNG_EXEC_H

#include <sys/types.h>

#include "util.h"

#define PN_EXEC_MAX_ENV 8

struct pn_exec_request {
    const char *config;              /* the container's config (its cgroups, user, caps, env, workdir) */
    pid_t init_pid;                  /* the container's init ... */
    unsigned long long init_start;   /* ... and its start time, so a reused pid is never joined */
    int uid, gid;                    /* -1: the service's */
    int console;                     /* a unix socket to send a pty master over, or -1 for the caller's stdio */
    const char *env[PN_EXEC_MAX_ENV]; /* KEY=VALUE added to the container's environment (TERM for a pty) */
    int nenv;
    char *const *argv;
};

/*
 * Join the container (its cgroups, then every namespace of its init at once through a pidfd),
 * fork the command's process (a session and process group of its own, the pty's controlling
 * tty when asked), confine it as the service and exec argv. Returns the command's exit status
 * (128 + signal when killed), or -1 with e filled if the command never started. `joined` is
 * called once we are in the container's cgroups and namespaces (from then on the container's
 * lock is not needed: a stop kills us with it), `started` once the command runs (the caller
 * closes its report fd there).
 */
int pn_exec_run(const struct pn_exec_request *r, void (*joined)(void), void (*started)(void), struct pn_error *e);

#endif
