/* Handing a dhcp or static container's network to its keeper (prodng/netkeeper.py). */
#ifndef PRODNG_KEEPER_H
#define PRODNG_KEEPER_H

#include <sys/types.h>

#include "config.h"

/*
 * Move the calling monitor into a new network namespace and get a keeper for it; returns 0 once
 * the keeper answered "ready", with *lifeline the monitor's end of the lifeline (closing it tells
 * the keeper to tear the network down) and *keeper_pid the keeper if this process must reap it
 * (0 when the warm server forked it).
 */
int start_keeper(const struct pn_config *c, int *lifeline, pid_t *keeper_pid, struct pn_error *e);

#endif
