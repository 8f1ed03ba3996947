/* The container's PID 1 (see init.h): set-up inside the namespaces, then a reaper. */
#define _GNU_SOURCE
#include "init.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "rootfs.h"
#include "sandbox.h"
#include "services.h"

static int setup_container(const struct pn_config *c, struct pn_error *e)
{
    int private_net = strcmp(c->net, "host") != 0;
    if (join_cgroups(c, e) < 0)
        return -1;
    if (unshare(CLONE_NEWCGROUP) < 0 && errno != EINVAL)
        return pn_sys(e, "unshare cgroup namespace");
    if (private_net && loopback_up(e) < 0)
        return -1;
    if (sethostname(c->name, strlen(c->name)) < 0)
        return pn_sys(e, "sethostname");
    return setup_rootfs(c, private_net, e);
}

/* Wait for signals: forward them to the service, reap on SIGCHLD; returns never. */
static void __attribute__((noreturn)) reap_and_forward(const struct pn_config *c, pid_t service, sigset_t *all)
{
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(service > 0 ? service : -1, sig); /* a daemonized service: everyone but us */
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != service)
                continue;
            if (c->forking && exit_code(status) == 0) {
                service = -1; /* Type=forking: the daemon lives on in its children */
                continue;
            }
            kill(-1, SIGKILL); /* the service is gone: so is everything it left */
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            _exit(exit_code(status));
        }
        if (pid < 0 && errno == ECHILD && service == -1)
            _exit(0); /* the last process of a forking service is gone */
    }
}

void container_init(const struct pn_config *c, int syncfd, int statusfd)
{
    struct pn_error e;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    /* The monitor anchors the container (its log, its network keeper): without it, the container ends. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (setup_container(c, &e) < 0)
        pn_child_fail(syncfd, &e);
    if (c->nunits > 0)
        run_services(c, syncfd, statusfd);
    close(statusfd);
    pid_t service = fork();
    if (service < 0) {
        pn_sys(&e, "fork");
        pn_child_fail(syncfd, &e);
    }
    if (service == 0) {
        setsid();
        exec_service(c, c->argv, syncfd);
    }
    prctl(PR_SET_NAME, "prodng-init", 0, 0, 0);
    close(syncfd);
    if (drop_privileges(c, 0, &e) < 0)
        _exit(126);
    close_fds_except(-1);
    reap_and_forward(c, service, &all);
}
