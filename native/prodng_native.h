/* The C surface prodng uses; cffi reads the declarations below verbatim. */
int pn_monitor_main(const char *config_path, int ready_fd);
int pn_exec(const char *config_path, int init_pid, const char *const *argv, const int *stdio, char *err,
            int errlen);
unsigned long long pn_starttime(int pid);
int pn_setns(int fd, int nstype);
