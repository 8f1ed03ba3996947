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
 * Create target under rootfs (not yet pivoted) refusing a symlink in any component, so a hostile
 * root cannot aim a bind at the host; path gets rootfs + target. is_dir: the last one is a directory.
 */
int make_bind_target(const char *rootfs, const char *target, int is_dir, char *path, size_t size,
                     struct pn_error *e);

#endif
