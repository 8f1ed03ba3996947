"""Build prodng's native parts: the cffi extension prodng._native and the prodng-shim monitor.

Run directly (python native/build_native.py) to build in place, or through setup.py.
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
    os.chdir(HERE.parent)
    ffibuilder.compile(tmpdir=str(HERE.parent / "build" / "cffi"), target=None, verbose="-v" in sys.argv)
    built = sorted((HERE.parent / "build" / "cffi" / "prodng").glob("_native*.so"))
    for so in built:
        (HERE.parent / "prodng" / so.name).write_bytes(so.read_bytes())
    print(build_shim(HERE.parent / "prodng" / "libexec"))
