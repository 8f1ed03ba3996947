"""Build prodng's native parts: the cffi extension prodng._native and the prodng-shim monitor.

Used by setup.py (pip install -e .); running it directly rebuilds both in place. Each binary
links only the parts of the C core it uses (see native/README.md for the map).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
# Hidden by default: the module exports only what cffi's init marks public, not the C core's helpers.
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong",
          "-fvisibility=hidden"]
LIBS = ["seccomp"]
# Python needs setns (the keeper's threads), openat2 and the device filter; exec is the prodng-exec helper's,
# never a fork of Python.
MODULE_SOURCES = ["util.c", "inroot.c", "devices.c", "module.c"]
SHIM_SOURCES = ["util.c", "config.c", "sandbox.c", "inroot.c", "idmap.c", "rootfs.c",
                "init.c", "services.c", "svcproc.c", "svcreport.c", "pathops.c", "logsock.c", "keeper.c", "monitor.c", "selfexec.c", "shim_main.c"]
EXEC_SOURCES = ["util.c", "config.c", "sandbox.c", "selfexec.c", "exec.c", "exec_main.c"]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "prodng_native.h").read_text().split("*/", 1)[1])
ffibuilder.set_source(
    "prodng._native",
    '#include "prodng_native.h"',
    sources=[str(HERE / source) for source in MODULE_SOURCES],
    include_dirs=[str(HERE)],
    libraries=LIBS,
    extra_compile_args=CFLAGS,
)


def build_program(out: Path, sources: list[str], libs: list[str]) -> Path:
    """Compile and link sources (relative to native/) into the executable out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cmd = [*cc.split(), *CFLAGS, "-I", str(HERE), "-o", str(out), *(str(HERE / s) for s in sources),
           *(f"-l{lib}" for lib in libs)]
    subprocess.run(cmd, check=True)
    return out


def build_shim(dest: Path) -> Path:
    """The monitor is a small separate executable: it must outlive the CLI and cost little memory."""
    return build_program(dest / "prodng-shim", SHIM_SOURCES, LIBS)


def build_exec(dest: Path) -> Path:
    """exec's helper (exec_main.c): a process of its own, so nothing of the CLI or the agent enters a container."""
    return build_program(dest / "prodng-exec", EXEC_SOURCES, LIBS)


if __name__ == "__main__":
    # Same as `pip install -e .` does: the extension in place, then the shim.
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=HERE.parent, check=True)
