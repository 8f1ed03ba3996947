/* What confines a container's processes: cgroups, capabilities, uid/gid, no_new_privs, seccomp. */
#ifndef PRODNG_SANDBOX_H
#define PRODNG_SANDBOX_H

#include "config.h"

/* Move the calling process into every cgroup of the config. */
int join_cgroups(const struct pn_config *c, struct pn_error *e);
/* Bounding set, uid/gid, capabilities (the config's when keep_caps, else none), no_new_privs, seccomp. */
int drop_privileges(const struct pn_config *c, int keep_caps, struct pn_error *e);
/*
 * In a forked child that is to become argv: default signals, the config's workdir, dropped
 * privileges, no inherited fds but syncfd (O_CLOEXEC), then exec. On failure reports through
 * syncfd (see pn_child_fail) and exits.
 */
void __attribute__((noreturn)) exec_service(const struct pn_config *c, const char *const *argv, int syncfd);

#endif
