/* Run from a sealed memfd copy of ourselves (see selfexec.h). */
#define _GNU_SOURCE
#include "selfexec.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: ask for an executable memfd even where memfd_noexec says otherwise */
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static int is_sealed_copy(int exe)
{
    int seals = fcntl(exe, F_GET_SEALS);
    return seals >= 0 && (seals & SEALS) == SEALS;
}

static int make_copy(int exe, const char *name, struct pn_error *e)
{
    struct stat st;
    if (fstat(exe, &st) < 0)
        return pn_sys(e, "stat /proc/self/exe");
    int copy = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (copy < 0 && errno == EINVAL) /* before 6.3: no MFD_EXEC, every memfd may be executed */
        copy = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (copy < 0)
        return pn_sys(e, "memfd_create");
    for (off_t done = 0; done < st.st_size;) {
        ssize_t sent = sendfile(copy, exe, NULL, st.st_size - done);
        if (sent <= 0) {
            pn_fail(e, PN_ERR_SYSTEM, sent < 0 ? errno : EIO, "copy /proc/self/exe");
            close(copy);
            return -1;
        }
        done += sent;
    }
    if (fcntl(copy, F_ADD_SEALS, SEALS) < 0) {
        pn_sys(e, "seal the copy of /proc/self/exe");
        close(copy);
        return -1;
    }
    return copy;
}

int pn_run_sealed_copy(char **argv, char **envp, struct pn_error *e)
{
    cleanup_fd int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (exe < 0)
        return pn_sys(e, "open /proc/self/exe");
    if (is_sealed_copy(exe))
        return 0;
    const char *base = strrchr(argv[0], '/');
    cleanup_fd int copy = make_copy(exe, base ? base + 1 : argv[0], e);
    if (copy < 0)
        return -1;
    /* An ELF image is loaded before close-on-exec closes the fd it came from. */
    syscall(SYS_execveat, copy, "", argv, envp, AT_EMPTY_PATH);
    return pn_sys(e, "exec the sealed copy");
}
