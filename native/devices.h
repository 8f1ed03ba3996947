/* The device allow-list on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (see devices.c). */
#ifndef PRODNG_DEVICES_H
#define PRODNG_DEVICES_H

/*
 * Load the allow-list program and attach it to the cgroup v2 directory cgroup_fd (BPF_F_ALLOW_MULTI, so it
 * composes with what a parent has). The cgroup keeps it; nothing needs to stay open. 0, or -errno.
 */
int pn_attach_device_filter(int cgroup_fd);

#endif
