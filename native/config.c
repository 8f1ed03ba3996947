/* Parsing the container's configuration (see config.h). */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static void defaults(struct pn_config *c)
{
    memset(c, 0, sizeof *c);
    c->workdir = "/";
    c->restart = "no";
    c->net = "none";
    c->log_max = 1 << 20;
}

/* Append val to a list, refusing more than max entries. */
static int add(const char **list, int *count, int max, const char *key, const char *val, struct pn_error *e)
{
    if (*count >= max)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "too many %s", key);
    list[(*count)++] = val;
    return 0;
}

static long number(const char *val)
{
    return strtol(val, NULL, 10);
}

/* Keys of the service plan: "unit" opens one, "u_*" fill the last one opened. */
static int set_unit(struct pn_config *c, const char *key, char *val, struct pn_error *e)
{
    if (!strcmp(key, "tmpfile"))
        return add(c->tmpfiles, &c->ntmpfiles, PN_MAX_TMPFILES, key, val, e);
    if (!strcmp(key, "unit")) {
        if (!c->units && !(c->units = calloc(PN_MAX_UNITS, sizeof *c->units)))
            return pn_sys(e, "calloc");
        if (c->nunits >= PN_MAX_UNITS)
            return pn_fail(e, PN_ERR_INVALID, 0, "more than %d units", PN_MAX_UNITS);
        struct pn_unit *u = &c->units[c->nunits++];
        *u = (struct pn_unit){.name = val, .type = "simple", .workdir = "/", .pidfile = "", .killmode = "control-group",
                              .restart = "no", .skip = "", .killsig = 15, .sigkill = 1, .start_timeout_ms = 90000,
                              .stop_timeout_ms = 90000, .restart_ms = 100};
        return 0;
    }
    if (c->nunits == 0)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "%s before any unit", key);
    struct pn_unit *u = &c->units[c->nunits - 1];
    if (!strcmp(key, "u_type")) u->type = val;
    else if (!strcmp(key, "u_workdir")) u->workdir = val;
    else if (!strcmp(key, "u_pidfile")) u->pidfile = val;
    else if (!strcmp(key, "u_killmode")) u->killmode = val;
    else if (!strcmp(key, "u_restart")) u->restart = val;
    else if (!strcmp(key, "u_skip")) u->skip = val;
    else if (!strcmp(key, "u_uid")) u->uid = number(val);
    else if (!strcmp(key, "u_gid")) u->gid = number(val);
    else if (!strcmp(key, "u_killsig")) u->killsig = number(val);
    else if (!strcmp(key, "u_sigkill")) u->sigkill = number(val);
    else if (!strcmp(key, "u_remain")) u->remain = number(val);
    else if (!strcmp(key, "u_ambient")) u->ambient = strtoull(val, NULL, 10);
    else if (!strcmp(key, "u_start_timeout")) u->start_timeout_ms = number(val);
    else if (!strcmp(key, "u_stop_timeout")) u->stop_timeout_ms = number(val);
    else if (!strcmp(key, "u_restart_ms")) u->restart_ms = number(val);
    else if (!strcmp(key, "u_group")) {
        if (u->ngroups >= PN_MAX_GROUPS)
            return pn_fail(e, PN_ERR_INVALID, 0, "unit %s: too many groups", u->name);
        u->groups[u->ngroups++] = number(val);
    }
    else if (!strcmp(key, "u_cmd")) return add(u->cmds, &u->ncmds, PN_MAX_UNIT_CMDS, key, val, e);
    else if (!strcmp(key, "u_env")) return add((const char **)u->env, &u->nenv, PN_MAX_UNIT_ENV, key, val, e);
    else if (!strcmp(key, "u_dir")) return add(u->dirs, &u->ndirs, PN_MAX_LIST, key, val, e);
    else return 1;
    return 0;
}

/* 0 when set, 1 for a key prodng does not write, -1 with e filled when a list is full. */
static int set(struct pn_config *c, const char *key, char *val, struct pn_error *e)
{
    if (!strcmp(key, "name")) c->name = val;
    else if (!strcmp(key, "rootfs")) c->rootfs = val;
    else if (!strcmp(key, "workdir")) c->workdir = val;
    else if (!strcmp(key, "log")) c->log = val;
    else if (!strcmp(key, "log_max")) c->log_max = atol(val);
    else if (!strcmp(key, "tmpfs_size")) c->tmpfs_size = atol(val);
    else if (!strcmp(key, "status")) c->status = val;
    else if (!strcmp(key, "restart")) c->restart = val;
    else if (!strcmp(key, "restart_max")) c->restart_max = atoi(val);
    else if (!strcmp(key, "net")) c->net = val;
    else if (!strcmp(key, "events")) c->events = val;
    else if (!strcmp(key, "events_lock")) c->events_lock = val;
    else if (!strcmp(key, "events_max")) c->events_max = atol(val);
    else if (!strcmp(key, "oom_watch")) c->oom_watch = val;
    else if (!strcmp(key, "quota_watch")) c->quota_watch = val;
    else if (!strcmp(key, "keeper_server")) c->keeper_server = val;
    else if (!strcmp(key, "uid")) c->uid = atoi(val);
    else if (!strcmp(key, "gid")) c->gid = atoi(val);
    else if (!strcmp(key, "forking")) c->forking = atoi(val);
    else if (!strcmp(key, "cap")) { if (c->ncaps < 64) c->caps[c->ncaps++] = atoi(val); }
    else if (!strcmp(key, "arg")) return add(c->argv, &c->argc, PN_MAX_ARGS, key, val, e);
    else if (!strcmp(key, "env")) return add((const char **)c->env, &c->envc, PN_MAX_ARGS, key, val, e);
    else if (!strcmp(key, "cgroup")) return add(c->cgroups, &c->ncgroups, PN_MAX_LIST, key, val, e);
    else if (!strcmp(key, "bind")) return add(c->binds, &c->nbinds, PN_MAX_LIST, key, val, e);
    else if (!strcmp(key, "rundir")) return add(c->rundirs, &c->nrundirs, PN_MAX_LIST, key, val, e);
    else if (!strcmp(key, "keeper")) return add(c->keeper, &c->nkeeper, PN_MAX_LIST, key, val, e);
    else if (!strcmp(key, "hosts")) c->hosts = val;
    else if (!strcmp(key, "unit") || !strcmp(key, "tmpfile") || !strncmp(key, "u_", 2)) return set_unit(c, key, val, e);
    else return 1;
    return 0;
}

/* buf holds len bytes and two NULs past them, so the last string always ends. */
static int parse(struct pn_config *c, char *buf, size_t len, const char *path, struct pn_error *e)
{
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *key = p;
        p += strlen(p) + 1;
        if (p >= end)
            return pn_fail(e, PN_ERR_SYSTEM, 0, "config %s: key %s has no value", path, key);
        char *val = p;
        p += strlen(p) + 1;
        int rc = set(c, key, val, e);
        if (rc > 0)
            return pn_fail(e, PN_ERR_SYSTEM, 0, "config %s: unknown key %s", path, key);
        if (rc < 0)
            return -1;
    }
    if (!c->name || !c->rootfs || (c->argc == 0 && c->nunits == 0))
        return pn_fail(e, PN_ERR_SYSTEM, 0, "config %s: name, rootfs and arg are required", path);
    return 0;
}

/* A broken config is prodng's own doing (it writes the file), so its errors are PN_ERR_SYSTEM. */
int load_config(const char *path, struct pn_config *c, struct pn_error *e)
{
    defaults(c);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pn_sys(e, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > PN_MAX_CONFIG)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "config %s unreadable or too large", path);
    cleanup_free char *buf = calloc(1, st.st_size + 2);
    ssize_t got = buf ? TEMP_FAILURE_RETRY(read(fd, buf, st.st_size)) : -1;
    if (got != st.st_size)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "read %s: short read", path);
    if (parse(c, buf, got, path, e) < 0) {
        free(c->units);
        defaults(c); /* nothing points into the freed buffer */
        return -1;
    }
    c->buf = buf;
    buf = NULL;
    return 0;
}

void free_config(struct pn_config *c)
{
    free(c->buf);
    c->buf = NULL;
    free(c->units);
    c->units = NULL;
}
