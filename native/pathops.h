/* Path operations of the service plan and /etc/hosts, applied inside the container (see pathops.c). */
#ifndef PRODNG_PATHOPS_H
#define PRODNG_PATHOPS_H

#include "util.h"

int apply_path_op(const char *op, struct pn_error *e);
int write_hosts(const char *text, struct pn_error *e);

#endif
