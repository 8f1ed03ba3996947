/* The per-container monitor, the body of prodng-shim (shim_main.c). */
#ifndef PRODNG_MONITOR_H
#define PRODNG_MONITOR_H

/*
 * Run the container the config at config_path describes, outside its namespaces, until it ends
 * for good: log its output, record its status, restart it under its policy. Answers
 * "ok PID START" or "error KIND MESSAGE" on ready_fd once the service has been exec'd.
 */
int pn_monitor_main(const char *config_path, int ready_fd);

#endif
