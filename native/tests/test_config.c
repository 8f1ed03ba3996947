/*
 * The C core's pure parts, tested without root: config parsing (good, missing key, unknown key,
 * oversize, a key without a value, a value without a key, a full list, no leak on any error) and
 * bind targets refusing a symlink. Usage: test_config SCRATCH_DIR (empty, made by the caller).
 * Prints one line per failed check; exits 1 if any failed. Run it with
 * GLIBC_TUNABLES=glibc.malloc.tcache_count=0: mallinfo2 counts chunks parked in the tcache as in
 * use, which would read as leaks.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "rootfs.h"

static int failures;
static const char *scratch;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            printf("FAIL %s:%d: ", __func__, __LINE__);                                                                \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

/* Write len bytes (NULs included) to scratch/name; returns the path. Mind "\0" "1": split literals
 * where a digit follows a NUL, or the two read as one octal escape. */
static const char *write_config(const char *name, const char *bytes, size_t len)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    FILE *f = fopen(path, "w");
    fwrite(bytes, 1, len, f);
    fclose(f);
    return path;
}

#define CONFIG(name, literal) write_config(name, literal, sizeof literal - 1)

/* load_config must fail saying `says`, leaving nothing allocated and nothing to free. */
static void expect_error(const char *path, const char *says)
{
    struct pn_config c;
    struct pn_error e = {0};
    size_t before = mallinfo2().uordblks;
    int rc = load_config(path, &c, &e);
    CHECK(rc == -1, "%s: loaded, expected an error saying '%s'", path, says);
    CHECK(strstr(e.msg, says) != NULL, "%s: error '%s' does not say '%s'", path, e.msg, says);
    CHECK(e.kind == PN_ERR_SYSTEM, "%s: kind %d, expected system (prodng writes the config)", path, e.kind);
    CHECK(c.buf == NULL, "%s: failed load left a buffer", path);
    CHECK(mallinfo2().uordblks == before, "%s: failed load leaked %zu bytes", path, mallinfo2().uordblks - before);
}

static void test_good_config(void)
{
    const char *path = CONFIG("good", "name\0web\0rootfs\0/srv/root\0arg\0sleep\0arg\0" "100\0env\0A=1\0"
                                      "bind\0ro\x1f/src\x1f/dst\0cap\0" "10\0log_max\0" "4096\0restart\0always\0"
                                      "keeper\0/usr/bin/python3\0uid\0" "33\0");
    cleanup_config struct pn_config c;
    struct pn_error e = {0};
    CHECK(load_config(path, &c, &e) == 0, "good config refused: %s", e.msg);
    if (!c.buf)
        return;
    CHECK(!strcmp(c.name, "web") && !strcmp(c.rootfs, "/srv/root"), "name %s rootfs %s", c.name, c.rootfs);
    CHECK(c.argc == 2 && !strcmp(c.argv[0], "sleep") && !strcmp(c.argv[1], "100") && c.argv[2] == NULL,
          "argv wrong (%d)", c.argc);
    CHECK(c.envc == 1 && !strcmp(c.env[0], "A=1") && c.env[1] == NULL, "env wrong (%d)", c.envc);
    CHECK(c.nbinds == 1 && !strcmp(c.binds[0], "ro\x1f/src\x1f/dst"), "binds wrong (%d)", c.nbinds);
    CHECK(c.ncaps == 1 && c.caps[0] == 10, "caps wrong (%d)", c.ncaps);
    CHECK(c.log_max == 4096 && c.uid == 33 && !strcmp(c.restart, "always"), "numbers or restart wrong");
    CHECK(c.nkeeper == 1 && c.keeper[1] == NULL, "keeper argv wrong (%d)", c.nkeeper);
    CHECK(!strcmp(c.workdir, "/") && !strcmp(c.net, "none") && c.status == NULL, "defaults wrong");
}

static void test_bad_configs(void)
{
    expect_error(CONFIG("norootfs", "name\0web\0arg\0true\0"), "name, rootfs and arg are required");
    expect_error(CONFIG("noarg", "name\0web\0rootfs\0/r\0"), "name, rootfs and arg are required");
    expect_error(CONFIG("unknown", "name\0web\0rootfs\0/r\0arg\0true\0colour\0red\0"), "unknown key colour");
    expect_error(CONFIG("novalue", "name\0web\0rootfs\0/r\0arg\0true\0workdir\0"), "key workdir has no value");
    /* A value without a key: an empty key, then the value. */
    expect_error(CONFIG("nokey", "name\0web\0rootfs\0/r\0arg\0true\0\0/tmp\0"), "unknown key ");
    char many[64 * 40];
    size_t len = 0;
    memcpy(many, "name\0web\0rootfs\0/r\0arg\0true\0", 28);
    len = 28;
    for (int i = 0; i <= PN_MAX_LIST; i++) { /* one more than a list holds */
        memcpy(many + len, "cgroup\0/c\0", 10);
        len += 10;
    }
    expect_error(write_config("manycgroups", many, len), "too many cgroup");
    /* Past PN_MAX_CONFIG: refused before it is read. */
    char path[4096];
    snprintf(path, sizeof path, "%s/oversize", scratch);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, PN_MAX_CONFIG + 1) == 0, "cannot make %s", path);
    close(fd);
    expect_error(path, "too large");
    struct pn_config c;
    struct pn_error e = {0};
    snprintf(path, sizeof path, "%s/missing", scratch);
    CHECK(load_config(path, &c, &e) == -1 && e.errnum == ENOENT && strstr(e.msg, "No such file"),
          "missing config: errnum %d '%s'", e.errnum, e.msg);
}

/* The path an O_PATH fd stands for, to check it lies under root. */
static int fd_path(int fd, char *out, size_t size)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, out, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = 0;
    return 0;
}

static void test_bind_targets(void)
{
    char root[2048], outside[2048], link[4096], path[8192], probe[4096], want[4096];
    struct pn_error e = {0};
    struct stat st;
    snprintf(root, sizeof root, "%s/root", scratch);
    snprintf(outside, sizeof outside, "%s/outside", scratch);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(rootfd >= 0, "open %s", root);
    /* Made inside: missing directories on the way, then the directory or the file itself. */
    int fd = open_bind_target(rootfd, "/srv/data/dir", 1, &e);
    CHECK(fd >= 0 && fd_path(fd, path, sizeof path) == 0, "dir target: %s", e.msg);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s is not a directory", path);
    fd = open_bind_target(rootfd, "/etc/conf/file", 0, &e);
    CHECK(fd >= 0 && fd_path(fd, path, sizeof path) == 0, "file target: %s", e.msg);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "%s is not a file", path);
    fd = open_bind_target(rootfd, "/srv/data/dir", 1, &e);
    CHECK(fd >= 0 && fd_path(fd, path, sizeof path) == 0, "existing target: %s", e.msg);
    /* A hostile root: an absolute symlink on the way aims at the host; it resolves inside the root. */
    snprintf(link, sizeof link, "%s/escape", root);
    CHECK(symlink("/srv", link) == 0, "symlink %s", link);
    fd = open_bind_target(rootfd, "/escape/x", 1, &e);
    CHECK(fd >= 0 && fd_path(fd, path, sizeof path) == 0, "in-root symlink: %s", e.msg);
    snprintf(want, sizeof want, "%s/srv/x", root);
    CHECK(!strcmp(path, want), "/escape/x went to %s, not %s", path, want);
    /* Debian's *-enabled links: relative, to a sibling directory; `..` stops at the root. */
    snprintf(link, sizeof link, "%s/srv/enabled", root);
    CHECK(symlink("../../../../../srv/data", link) == 0, "symlink %s", link);
    fd = open_bind_target(rootfd, "/srv/enabled/site", 0, &e);
    CHECK(fd >= 0 && fd_path(fd, path, sizeof path) == 0, "enabled link: %s", e.msg);
    snprintf(want, sizeof want, "%s/srv/data/site", root);
    CHECK(!strcmp(path, want), "/srv/enabled/site went to %s, not %s", path, want);
    /* A dangling link to a host directory is refused, and nothing is made outside. */
    snprintf(link, sizeof link, "%s/dangling", root);
    CHECK(symlink(outside, link) == 0, "symlink %s", link);
    CHECK(open_bind_target(rootfd, "/dangling/x", 1, &e) == -1, "dangling symlink followed");
    CHECK(e.kind == PN_ERR_REFUSED && strstr(e.msg, "dangling"), "kind %d '%s'", e.kind, e.msg);
    snprintf(probe, sizeof probe, "%s/x", outside);
    CHECK(lstat(probe, &st) == -1 && errno == ENOENT, "%s was created outside the root", probe);
    /* The last component a symlink to a file outside: the host's file is never the target. */
    snprintf(link, sizeof link, "%s/etc/passwd", root);
    snprintf(probe, sizeof probe, "%s/secret", outside);
    close(open(probe, O_CREAT | O_WRONLY, 0600));
    CHECK(symlink(probe, link) == 0, "symlink %s", link);
    fd = open_bind_target(rootfd, "/etc/passwd", 0, &e);
    CHECK(fd < 0 || (fd_path(fd, path, sizeof path) == 0 && strncmp(path, root, strlen(root)) == 0),
          "last symlink led to %s", path);
    close(rootfd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_config SCRATCH_DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    scratch = argv[1];
    /* The words Python maps to error classes (prodng/errors.py): the caller compares them. */
    printf("kinds");
    for (int kind = PN_ERR_SYSTEM; kind <= PN_ERR_NOT_FOUND; kind++)
        printf(" %s", pn_error_kind_name(kind));
    printf("\n");
    test_good_config();
    test_bad_configs();
    test_bind_targets();
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
