/*
 * cgroup v2 has no devices.allow: the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
 * cgroup (runc's devicefilter, crun's ebpf.c; systemd's DeviceAllow=). Ours allows the character devices
 * prodng puts in a container's /dev and its devpts, every access (read, write, mknod), and nothing else:
 * a block device or /dev/kmsg in reach (a `:dev` bind, a node a payload made) opens with EPERM.
 * The same list is written to the v1 devices controller by prodng/container/cgroups.py (DEVICE_ALLOW).
 */
#define _GNU_SOURCE
#include "devices.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define ANY_MINOR (-1)

static const struct { int major, minor; } allowed[] = {
    {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, /* null zero full random urandom */
    {5, 0}, {5, 2},                         /* tty ptmx */
    {136, ANY_MINOR},                       /* pts/N */
};

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LOAD_U32(dst, field) INSN(BPF_LDX | BPF_W | BPF_MEM, dst, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, field), 0)
#define AND32(dst, imm) INSN(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define JNE(dst, imm, skip) INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, skip, imm)
#define RETURN(value) INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, value), INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* r2 = type (low 16 bits of access_type), r4 = major, r5 = minor; one block per rule, then deny. */
static size_t build_program(struct bpf_insn *prog)
{
    size_t n = 0;
    prog[n++] = LOAD_U32(BPF_REG_2, access_type);
    prog[n++] = AND32(BPF_REG_2, 0xffff);
    prog[n++] = LOAD_U32(BPF_REG_4, major);
    prog[n++] = LOAD_U32(BPF_REG_5, minor);
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        int any = allowed[i].minor == ANY_MINOR;
        int rest = any ? 3 : 4; /* the instructions of this block after the first jump */
        prog[n++] = JNE(BPF_REG_2, BPF_DEVCG_DEV_CHAR, rest);
        prog[n++] = JNE(BPF_REG_4, allowed[i].major, rest - 1);
        if (!any)
            prog[n++] = JNE(BPF_REG_5, allowed[i].minor, 2);
        prog[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
        prog[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    struct bpf_insn deny[] = {RETURN(0)};
    memcpy(prog + n, deny, sizeof deny);
    return n + 2;
}

static long bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

int pn_attach_device_filter(int cgroup_fd)
{
    struct bpf_insn prog[64];
    size_t count = build_program(prog);
    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (unsigned long)prog;
    load.insn_cnt = (unsigned)count;
    load.license = (unsigned long)"GPL";
    cleanup_fd int fd = (int)bpf(BPF_PROG_LOAD, &load);
    if (fd < 0)
        return -errno;
    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = (unsigned)cgroup_fd;
    attach.attach_bpf_fd = (unsigned)fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    return bpf(BPF_PROG_ATTACH, &attach) < 0 ? -errno : 0;
}
