/*
 * exec: run a command in a running container, joining its init's namespaces, its cgroups and
 * its restrictions. Called from Python (prodng.runtime.exec_in) through cffi in one call, so no
 * Python runs after the fork.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>

#include "config.h"
#include "prodng_native.h"
#include "sandbox.h"

static const char *const namespaces[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
enum { NNS = sizeof namespaces / sizeof namespaces[0] };

struct ns_fds {
    int fd[NNS];
};

static struct ns_fds no_ns_fds(void)
{
    struct ns_fds ns;
    for (int i = 0; i < NNS; i++)
        ns.fd[i] = -1;
    return ns;
}

static void close_ns_fds(struct ns_fds *ns)
{
    for (int i = 0; i < NNS; i++)
        pn_close_fdp(&ns->fd[i]);
}
#define cleanup_ns_fds __attribute__((cleanup(close_ns_fds)))

static int open_namespaces(int init_pid, struct ns_fds *ns, struct pn_error *e)
{
    char path[64];
    for (int i = 0; i < NNS; i++) {
        snprintf(path, sizeof path, "/proc/%d/ns/%s", init_pid, namespaces[i]);
        if ((ns->fd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return pn_sys(e, "open %s", path);
    }
    return 0;
}

/* The forked child: enter, then fork once more (only children of a setns(pid) caller enter the pid namespace). */
static void __attribute__((noreturn)) enter_and_run(const struct pn_config *c, const struct ns_fds *ns,
                                                    const char *const *argv, const int *stdio, int syncfd)
{
    struct pn_error e;
    if (join_cgroups(c, &e) < 0)
        pn_child_fail(syncfd, &e);
    for (int i = 0; i < NNS; i++)
        if (setns(ns->fd[i], 0) < 0) {
            pn_sys(&e, "setns %s", namespaces[i]);
            pn_child_fail(syncfd, &e);
        }
    for (int fd = 0; fd < 3; fd++) /* -1: keep ours (a terminal); else the caller's pipe or file */
        if (stdio[fd] >= 0 && dup2(stdio[fd], fd) < 0) {
            pn_fail(&e, PN_ERR_SYSTEM, 0, "stdio setup failed");
            pn_child_fail(syncfd, &e);
        }
    pid_t child = fork();
    if (child == 0)
        exec_service(c, argv, syncfd);
    close(syncfd);
    int status = 0;
    while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    _exit(child < 0 ? 127 : exit_code(status));
}

/*
 * exec reports what is missing (the init gone, its cgroup removed, the command) as not found,
 * anything else as a host failure, whatever the step that failed.
 */
static int exec_failed(const struct pn_error *e, char *err, int errlen)
{
    struct pn_error out = *e;
    out.kind = e->errnum == ENOENT ? PN_ERR_NOT_FOUND : PN_ERR_SYSTEM;
    pn_error_format(&out, err, errlen);
    return -1;
}

int pn_exec(const char *config_path, int init_pid, const char *const *argv, const int *stdio, char *err,
            int errlen)
{
    struct pn_error e = {0};
    cleanup_config struct pn_config c = {0};
    cleanup_ns_fds struct ns_fds ns = no_ns_fds();
    cleanup_pipe int sync[2] = {-1, -1};
    if (load_config(config_path, &c, &e) < 0 || open_namespaces(init_pid, &ns, &e) < 0)
        return exec_failed(&e, err, errlen);
    if (pipe2(sync, O_CLOEXEC) < 0) {
        pn_sys(&e, "pipe");
        return exec_failed(&e, err, errlen);
    }
    pid_t pid = fork();
    if (pid == 0) {
        pn_close_now(&sync[0]);
        enter_and_run(&c, &ns, argv, stdio, sync[1]);
    }
    if (pid < 0) {
        pn_sys(&e, "fork");
        return exec_failed(&e, err, errlen);
    }
    pn_close_now(&sync[1]);
    if (pn_read_child_error(sync[0], &e) < 0) {
        waitpid(pid, NULL, 0);
        return exec_failed(&e, err, errlen);
    }
    return pid;
}

int pn_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}
