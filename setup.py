"""Builds the cffi extension and the prodng-shim monitor with the package."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).parent / "native"))


class BuildWithShim(build_ext):
    def run(self) -> None:
        super().run()
        from build_native import build_exec, build_shim

        target = Path("prodng") if self.inplace else Path(self.build_lib) / "prodng"
        build_shim(target / "libexec")
        build_exec(target / "libexec")


setup(cffi_modules=["native/build_native.py:ffibuilder"], cmdclass={"build_ext": BuildWithShim})
