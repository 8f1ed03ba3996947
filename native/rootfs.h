/* The container's root: private mounts, binds, pivot_root, /dev, /proc, /sys, /run, /tmp. */
#ifndef PRODNG_ROOTFS_H
#define PRODNG_ROOTFS_H

#include <stddef.h>

#include "config.h"

/*
 * In the init, in its new mount namespace: make mounts private, bind the config's binds,
 * pivot into c->rootfs and mount the rest. private_net: sysfs must then mount (no fallback).
 */
int setup_rootfs(const struct pn_config *c, int private_net, struct pn_error *e);
/*
 * An O_PATH fd of target inside the root rootfd, made if missing (directories on the way, then a directory
 * or, !is_dir, an empty file). Symlinks on the way resolve inside the root (a Debian *-enabled link is a
 * fine target), so a hostile root cannot aim a bind at the host; a dangling one is refused.
 */
int open_bind_target(int rootfd, const char *target, int is_dir, struct pn_error *e);

#endif
