/* The container's PID 1. */
#ifndef PRODNG_INIT_H
#define PRODNG_INIT_H

#include "config.h"

/*
 * In the monitor's clone, in the container's new namespaces: set the container up, start the
 * service, then forward signals to it and reap every orphan; exits with the service's status.
 * Errors before the service's exec go to syncfd (see pn_child_fail). With a service plan
 * (c->nunits) it is a service manager instead (services.h) reporting units on statusfd.
 */
void __attribute__((noreturn)) container_init(const struct pn_config *c, int syncfd, int statusfd);

#endif
