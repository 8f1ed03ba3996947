/*
 * The sockets a Debian daemon expects of its system: /dev/log (syslog) and systemd's journal and
 * notify sockets. Syslog and journal messages go to the init's stdout (the container's log) as
 * "TAG[PID]: MESSAGE" lines.
 */
#ifndef PRODNG_LOGSOCK_H
#define PRODNG_LOGSOCK_H

#include <sys/types.h>

#include "util.h"

/* A datagram socket bound at path (mode 0666), with SO_PASSCRED; -1 with e filled. */
int bind_datagram(const char *path, struct pn_error *e);
/*
 * Read one syslog (RFC 3164 as glibc sends it) datagram and write it to fd 1 as a log line; the line
 * (no newline) also into line[size], the sender's pid into *pid. Its length, or -1 when nothing came.
 */
int relay_syslog(int sock, char *line, size_t size, pid_t *pid);
/* Read one journal native-protocol datagram (KEY=VALUE lines) and write its MESSAGE to fd 1; as above. */
int relay_journal(int sock, char *line, size_t size, pid_t *pid);
/* Read one sd_notify datagram: text into buf, the sender's pid into *pid; 0 or -1. */
int read_notify(int sock, char *buf, size_t size, pid_t *pid);

#endif
