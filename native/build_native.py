"""Build prodng's native parts: the cffi extension prodng._native and the prodng-shim monitor.

Used by setup.py (pip install -e .); running it directly rebuilds both in place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "prodng_native.c"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]
LIBS = ["seccomp"]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "prodng_native.h").read_text().split("*/", 1)[1])
ffibuilder.set_source(
    "prodng._native",
    '#include "prodng_native.h"',
    sources=[str(SOURCE)],
    include_dirs=[str(HERE)],
    libraries=LIBS,
    extra_compile_args=CFLAGS,
)


def build_shim(dest: Path) -> Path:
    """The monitor is a small separate executable: it must outlive the CLI and cost little memory."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "prodng-shim"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cmd = [*cc.split(), *CFLAGS, "-I", str(HERE), "-o", str(out), str(HERE / "shim_main.c"), str(SOURCE), *(f"-l{lib}" for lib in LIBS)]
    subprocess.run(cmd, check=True)
    return out


if __name__ == "__main__":
    # Same as `pip install -e .` does: the extension in place, then the shim.
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=HERE.parent, check=True)
