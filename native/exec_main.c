/*
 * prodng-exec: run one command in a running container (exec.c), for the CLI and the agent.
 *
 *   prodng-exec --config PATH --init PID:START --report FD [--console FD] [--user UID[:GID]]
 *               [--env KEY=VALUE]... -- ARGV...
 *
 * Started with an empty environment, its stdio the command's. Before anything else it makes
 * itself non-dumpable, keeps only the fds it was given and moves onto a sealed memfd copy of
 * itself, so that nothing a container may see of it through /proc (exe, environ, fds) leads to
 * the host. REPORT gets "joined" once it is in the container's cgroups and namespaces, then
 * "error KIND MESSAGE" if the command could not be started, and EOF once it runs; the exit status
 * is then the command's.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "exec.h"
#include "selfexec.h"

#define USAGE "usage: prodng-exec --config PATH --init PID:START --report FD [--console FD] [--user UID[:GID]] " \
              "[--env KEY=VALUE]... -- ARGV...\n"

static int report_fd = -1;

static void joined(void)
{
    dprintf(report_fd, "joined\n");
}

static void started(void)
{
    pn_close_now(&report_fd);
}

static int parse_fd(const char *text)
{
    char *end;
    long fd = strtol(text, &end, 10);
    return *end || fd < 0 || fd > 65535 ? -1 : (int)fd;
}

static int parse_args(int argc, char **argv, struct pn_exec_request *r)
{
    *r = (struct pn_exec_request){.uid = -1, .gid = -1, .console = -1};
    int i = 1;
    for (; i + 1 < argc && strcmp(argv[i], "--"); i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        char *end;
        if (!strcmp(opt, "--config"))
            r->config = strdup(val);
        else if (!strcmp(opt, "--init")) {
            r->init_pid = strtol(val, &end, 10);
            if (*end != ':' || r->init_pid <= 0)
                return -1;
            r->init_start = strtoull(end + 1, &end, 10);
        } else if (!strcmp(opt, "--report") && (report_fd = parse_fd(val)) >= 0)
            continue;
        else if (!strcmp(opt, "--console") && (r->console = parse_fd(val)) >= 0)
            continue;
        else if (!strcmp(opt, "--user")) {
            r->uid = strtol(val, &end, 10);
            r->gid = *end == ':' ? strtol(end + 1, &end, 10) : r->uid;
            if (*end || r->uid < 0 || r->gid < 0)
                return -1;
        } else if (!strcmp(opt, "--env") && strchr(val, '=') && r->nenv < PN_EXEC_MAX_ENV)
            r->env[r->nenv++] = strdup(val);
        else
            return -1;
    }
    if (i >= argc || strcmp(argv[i], "--") || i + 1 >= argc || !r->config || !r->init_pid || report_fd < 0)
        return -1;
    char **command = calloc(argc - i, sizeof *command);
    for (int k = i + 1; command && k < argc; k++)
        command[k - i - 1] = strdup(argv[k]);
    r->argv = command;
    return command ? 0 : -1;
}

/*
 * /proc/PID/cmdline is readable by anyone, non-dumpable or not: the command's process shows it
 * until it execs. Blank our arguments (parse_args copied what we need), so it never names the
 * host's paths or pids.
 */
static void blank_args(int argc, char **argv)
{
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    memset(argv[0], 0, end - argv[0]);
}

/* The given fds become 3 (report) and 4 (console, if any); every other fd from 3 up is closed. */
static int keep_only(struct pn_exec_request *r)
{
    int high_report = fcntl(report_fd, F_DUPFD_CLOEXEC, 64);
    int high_console = r->console >= 0 ? fcntl(r->console, F_DUPFD_CLOEXEC, 64) : -1;
    if (high_report < 0 || (r->console >= 0 && high_console < 0))
        return -1;
    if (dup3(high_report, 3, O_CLOEXEC) < 0 || (high_console >= 0 && dup3(high_console, 4, O_CLOEXEC) < 0))
        return -1;
    report_fd = 3;
    r->console = high_console >= 0 ? 4 : -1;
    unsigned first = r->console >= 0 ? 5 : 4;
    if (syscall(SYS_close_range, first, ~0U, 0) < 0) /* before 5.9 */
        for (int fd = first; fd < 65536; fd++)
            close(fd);
    return 0;
}

int main(int argc, char **argv, char **envp)
{
    struct pn_error e = {0};
    struct pn_exec_request r;
    /* First: no one but root on the host may read our memory, exe, environ or fds, or take them. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (parse_args(argc, argv, &r) < 0) {
        fputs(USAGE, stderr);
        return 125;
    }
    /* Re-run from the sealed copy (same argv and fds; dumpable again only until its first line above). */
    if (pn_run_sealed_copy(argv, envp, &e) < 0) {
        pn_error_report(report_fd, &e);
        return 125;
    }
    blank_args(argc, argv);
    /* Before joining anything: whatever fd the caller's libraries left open stays here. */
    if (keep_only(&r) < 0) {
        dprintf(report_fd, "error system cannot set up the helper's fds\n");
        return 125;
    }
    int status = pn_exec_run(&r, joined, started, &e);
    if (status < 0) {
        pn_error_report(report_fd, &e);
        return 125;
    }
    return status;
}
