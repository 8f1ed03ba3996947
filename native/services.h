/*
 * The container's service manager: when the config holds a service plan, the init starts its units
 * as systemd would (types simple, exec, forking, notify, oneshot; ExecCondition, ExecStartPre/Post,
 * ExecStop, ExecReload; PIDFile; KillMode, KillSignal, TimeoutStartSec/StopSec; Restart=), applies
 * tmpfiles and unit directories, serves /dev/log, the journal socket and NOTIFY_SOCKET, and reports
 * every unit's state on statusfd (to the monitor, which keeps it in the container's state).
 */
#ifndef PRODNG_SERVICES_H
#define PRODNG_SERVICES_H

#include <signal.h>

#include "config.h"

void __attribute__((noreturn)) run_services(const struct pn_config *c, int syncfd, int statusfd);

#endif
