/*
 * prodng-shim CONFIG READY_FD: the per-container monitor (monitor.c).
 * It forks itself away (so the CLI or agent that started it never has to reap
 * it), then runs the container and reports "ok PID START" or "error KIND MSG" on
 * READY_FD once the service has been exec'd.
 *
 * It runs from a sealed memfd copy of itself (selfexec.h): the container's init is the monitor's
 * clone, and its /proc/1/exe must not be the host's prodng-shim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "monitor.h"
#include "selfexec.h"

int main(int argc, char **argv, char **envp)
{
    if (argc != 3) {
        fprintf(stderr, "usage: prodng-shim CONFIG READY_FD\n");
        return 2;
    }
    int ready_fd = atoi(argv[2]);
    struct pn_error e = {0};
    if (pn_run_sealed_copy(argv, envp, &e) < 0) {
        pn_error_report(ready_fd, &e);
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        dprintf(ready_fd, "error system fork failed\n");
        return 1;
    }
    if (pid > 0)
        return 0;
    return pn_monitor_main(argv[1], ready_fd);
}
