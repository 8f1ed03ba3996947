/*
 * Run from a sealed memfd copy of ourselves (runc's answer to CVE-2019-5736).
 *
 * A process a container can see (its init, the monitor's clone, an exec before it execs the
 * command) must not lead to a host file through /proc/PID/exe: opened there, a host binary could
 * be read to learn the host's layout, or rewritten once nothing runs it and then run as host root.
 * A sealed memfd is nameless on the host and can never be written.
 */
#ifndef PRODNG_SELFEXEC_H
#define PRODNG_SELFEXEC_H

#include "util.h"

/*
 * Returns 0 when this process already runs from a sealed copy; otherwise makes one and execs it
 * with the same argv and environment (fds stay open: the copy starts where we stand). -1 with e
 * filled if the copy cannot be made or run.
 */
int pn_run_sealed_copy(char **argv, char **envp, struct pn_error *e);

#endif
