/* /dev/log, the journal socket and NOTIFY_SOCKET (see logsock.h). */
#define _GNU_SOURCE
#include "logsock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int bind_datagram(const char *path, struct pn_error *e)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return pn_fail(e, PN_ERR_SYSTEM, 0, "socket path %s too long", path);
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return pn_sys(e, "socket %s", path);
    int one = 1;
    unlink(path);
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod(path, 0666) < 0) {
        pn_sys(e, "bind %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* One datagram with the sender's credentials. */
static ssize_t receive(int sock, char *buf, size_t size, pid_t *pid)
{
    char control[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {buf, size - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t got = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got < 0)
        return -1;
    buf[got] = 0;
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
            *pid = ((struct ucred *)CMSG_DATA(c))->pid;
        else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) /* never keep a sender's fds */
            for (int *fd = (int *)CMSG_DATA(c); (char *)fd < (char *)c + c->cmsg_len; fd++)
                close(*fd);
    return got;
}

/* Printable, without trailing newlines, one line; a copy (no newline) into out[size]; its length. */
static int emit(const char *text, size_t len, char *out, size_t size)
{
    char line[8192];
    size_t n = 0;
    for (size_t i = 0; i < len && n < sizeof line - 2; i++)
        line[n++] = (text[i] == '\n' || text[i] == '\r') ? ' ' : (isprint((unsigned char)text[i]) || (text[i] & 0x80)) ? text[i] : '?';
    while (n && line[n - 1] == ' ')
        n--;
    snprintf(out, size, "%.*s", (int)n, line);
    line[n++] = '\n';
    if (write(1, line, n) < 0) {}
    return (int)n - 1;
}

int relay_syslog(int sock, char *line, size_t size, pid_t *pid)
{
    char buf[8192];
    ssize_t got = receive(sock, buf, sizeof buf, pid);
    if (got <= 0)
        return -1;
    char *p = buf;
    if (*p == '<' && (p = strchr(p, '>')))
        p++;
    else
        p = buf;
    /* "Mmm dd hh:mm:ss " from glibc's syslog(): the log has its own time */
    if (strlen(p) > 16 && p[3] == ' ' && p[6] == ' ' && p[9] == ':' && p[12] == ':' && p[15] == ' ')
        p += 16;
    return emit(p, strlen(p), line, size);
}

int relay_journal(int sock, char *line, size_t size, pid_t *pid)
{
    char buf[16384];
    ssize_t got = receive(sock, buf, sizeof buf, pid);
    if (got <= 0)
        return -1;
    const char *message = NULL, *tag = "journal";
    size_t mlen = 0, tlen = strlen(tag);
    for (char *line = buf; line && *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (!strncmp(line, "MESSAGE=", 8))
            message = line + 8, mlen = len - 8;
        else if (!strncmp(line, "SYSLOG_IDENTIFIER=", 18))
            tag = line + 18, tlen = len - 18;
        line = end ? end + 1 : NULL;
    }
    if (!message)
        return -1;
    char out[16500];
    int n = snprintf(out, sizeof out, "%.*s[%d]: %.*s", (int)tlen, tag, *pid, (int)mlen, message);
    return emit(out, n < (int)sizeof out ? (size_t)n : sizeof out - 1, line, size);
}

int read_notify(int sock, char *buf, size_t size, pid_t *pid)
{
    return receive(sock, buf, size, pid) < 0 ? -1 : 0;
}
