/* Idmapped binds: `--bind SRC:DST:rw,owner=USER` (see idmap.c). */
#ifndef PRODNG_IDMAP_H
#define PRODNG_IDMAP_H

#include <sys/types.h>

#include "util.h"

/*
 * Make the detached mount tree (from open_tree) show the files of SRC's owner (uid and gid of the
 * tree's root, read from the tree itself) as uid:gid's, and uid:gid's as SRC's owner's, every other
 * id as itself. Nothing on disk changes. -1 with e set when the mount cannot be idmapped (its
 * filesystem, or the kernel) or when SRC is owned by root (see idmap.c).
 */
int idmap_tree(int tree, const char *source, uid_t uid, gid_t gid, struct pn_error *e);

#endif
