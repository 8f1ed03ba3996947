/* The C surface the cffi module prodng._native offers Python; cffi reads the declarations below verbatim. */
int pn_setns(int fd, int nstype);
int pn_openat2(int rootfd, const char *path, int flags, int mode, unsigned long long resolve);
int pn_attach_device_filter(int cgroup_fd);
