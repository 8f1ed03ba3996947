/*
 * The container's configuration: NUL-separated key/value pairs written by prodng.runtime
 * (_config_bytes), read by the monitor, the init and exec.
 */
#ifndef PRODNG_CONFIG_H
#define PRODNG_CONFIG_H

#include "util.h"

#define PN_MAX_ARGS 256
#define PN_MAX_LIST 32
#define PN_MAX_CONFIG (1 << 20)
#define PN_MAX_UNITS 64
#define PN_MAX_UNIT_CMDS 32
#define PN_MAX_UNIT_ENV 128
#define PN_MAX_GROUPS 32
#define PN_MAX_TMPFILES 512

/* One unit of the service plan (prodng/payload/plan.py): what the init's service manager runs. */
struct pn_unit {
    const char *name, *type, *workdir, *pidfile, *killmode, *restart, *skip;
    int uid, gid, killsig, sigkill, remain;
    unsigned long long ambient; /* AmbientCapabilities=, as a mask of the container's capabilities */
    long start_timeout_ms, stop_timeout_ms, restart_ms; /* -1: no limit */
    unsigned groups[PN_MAX_GROUPS];
    int ngroups;
    const char *cmds[PN_MAX_UNIT_CMDS]; /* phase US flags US path US argv0 US argv1 ... */
    int ncmds;
    char *env[PN_MAX_UNIT_ENV + 1];
    int nenv;
    const char *dirs[PN_MAX_LIST]; /* a path op: kind US path US mode US uid US gid US argument */
    int ndirs;
};

struct pn_config {
    char *buf; /* the file's bytes; every string below points into it */
    const char *name, *rootfs, *workdir, *log, *status, *restart, *net, *events;
    const char *events_lock; /* the flock events.emit rotates the journal under */
    long events_max;         /* past this size the journal becomes events.jsonl.1 */
    const char *oom_watch;   /* the cgroup's memory.events (v2) or memory.oom_control (v1): oom_kill N */
    const char *quota_watch; /* the root's qgroup in sysfs: exclusive, max_exclusive */
    long log_max;
    long tmpfs_size; /* bytes: size= of every tmpfs the init mounts (/dev, /dev/shm, /run, /tmp) */
    int restart_max, uid, gid, forking;
    const char *argv[PN_MAX_ARGS + 1];
    int argc;
    char *env[PN_MAX_ARGS + 1];
    int envc;
    const char *cgroups[PN_MAX_LIST];
    int ncgroups;
    const char *binds[PN_MAX_LIST]; /* "OPTIONS" US source US target; OPTIONS: ro|rw[,dev][,suid] */
    int nbinds;
    const char *rundirs[PN_MAX_LIST]; /* systemd's RuntimeDirectory=: made in the fresh /run for uid:gid */
    int nrundirs;
    int caps[64];
    int ncaps;
    const char *keeper[PN_MAX_LIST + 1]; /* argv of the network keeper (dhcp, static): it owns the link */
    int nkeeper;
    const char *keeper_server; /* unix socket of a warm keeper that forks one per container, if it runs */
    const unsigned *groups;    /* supplementary groups for drop_privileges (none when NULL) */
    int ngroups;
    unsigned long long ambient; /* capabilities kept (and made ambient) for a non-root uid */
    struct pn_unit *units;     /* the service plan, when the init is a service manager (calloc'd) */
    int nunits;
    const char *tmpfiles[PN_MAX_TMPFILES]; /* path ops applied in the fresh /run before any unit */
    int ntmpfiles;
    const char *hosts;         /* /etc/hosts to write at start, if set */
};

/* Read and parse path into c (which then owns c->buf); on error c holds nothing to free. */
int load_config(const char *path, struct pn_config *c, struct pn_error *e);
void free_config(struct pn_config *c);
#define cleanup_config __attribute__((cleanup(free_config)))

#endif
