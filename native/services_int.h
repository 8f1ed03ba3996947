/*
 * The service manager's parts, sharing one state, M: services.c (the units' lifecycle), svcproc.c
 * (their processes, signals, sd_notify and the one poll loop), svcreport.c (their output, syslog
 * lines and the status lines for the monitor). Private to them: the init sees services.h.
 */
#ifndef PRODNG_SERVICES_INT_H
#define PRODNG_SERVICES_INT_H

#include <sys/types.h>

#include "config.h"
#include "util.h"

#define SETTLE 0.25    /* a simple service alive this long after its exec counts as started */
#define BURST 5        /* StartLimitBurst= in StartLimitIntervalSec=10s, systemd's defaults */
#define FOREVER 1e18
#define TAIL_LINES 4   /* each unit's last lines of output, in its status line (info shows them) */
#define TAIL_LEN 120

enum state { S_INACTIVE, S_SKIPPED, S_STARTING, S_ACTIVE, S_EXITED, S_STOPPING, S_DEAD, S_FAILED, S_RESTARTING };

struct svc {
    const struct pn_unit *u;
    enum state state;
    pid_t main, control;
    int main_status, control_status, ready, restarts, exit_code, boot_failed, burst;
    double since, restart_at, burst_start;
    char error[300];
    int out[2];                          /* its processes' stdout and stderr; the init copies it to the log */
    char partial[TAIL_LEN];              /* the line being written */
    size_t plen;
    char tail[TAIL_LINES][TAIL_LEN];     /* the last whole lines, a ring */
    int tail_next;
};

struct manager {
    const struct pn_config *c;
    struct svc svc[PN_MAX_UNITS];
    int n, sfd, notify, devlog, journal, statusfd, stopping, reload, booting;
};

extern struct manager M;

/* svcreport.c */
void publish(void);
void __attribute__((format(printf, 2, 3))) set_error(struct svc *s, const char *fmt, ...);
void drain(struct svc *s);
void relay(int (*receive)(int, char *, size_t, pid_t *), int sock);

/* svcproc.c */
pid_t spawn(struct svc *s, const char *cmd);
void pump(double until);
int alive(pid_t pid);
int run_phase(struct svc *s, const char *phase, double deadline, int *condition_skip);
const char *find_cmd(const struct pn_unit *u, const char *phase);
pid_t forked_main(struct svc *s);

/* services.c */
void on_main_exit(struct svc *s, int status);

#endif
