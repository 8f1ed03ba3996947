/* Resolving a path inside a container or template root, never out of it (see inroot.c). */
#ifndef PRODNG_INROOT_H
#define PRODNG_INROOT_H

/* What every in-root resolution asks of openat2: `..`, absolute symlinks and the root itself stay at
 * rootfd; no /proc magic links (a planted /proc/self/root link) and no crossing into another mount. */
#define PN_RESOLVE_INROOT (0x10ULL /* IN_ROOT */ | 0x02ULL /* NO_MAGICLINKS */ | 0x01ULL /* NO_XDEV */)

/*
 * openat2(rootfd, path, flags | O_CLOEXEC, mode, resolve): the fd, or -errno (-ENOSYS: the kernel
 * has no openat2, before 5.6). EAGAIN (a rename raced the lookup) is retried a few times.
 */
int pn_openat2(int rootfd, const char *path, int flags, int mode, unsigned long long resolve);

#endif
