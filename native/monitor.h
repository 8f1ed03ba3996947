/* The per-container monitor, the body of prodng-shim (shim_main.c). */
#ifndef PRODNG_MONITOR_H
#define PRODNG_MONITOR_H

/* First byte of a log line prodng itself wrote; removed from the service's output (prodng/container/logs.py). */
#define PN_OWN_LINE_MARK '\x1e'

/*
 * Run the container the config at config_path describes, outside its namespaces, until it ends
 * for good: log its output, record its status, restart it under its policy. Answers
 * "ok PID START" or "error KIND MESSAGE" on ready_fd once the service has been exec'd.
 */
int pn_monitor_main(const char *config_path, int ready_fd);

#endif
