"""Linters run as tests (mkosi's habit): ruff, ruff format, strict mypy (setup.cfg: prodng, tests and bench) and
shellcheck for the shell scripts."""

import subprocess
import sys

from conftest import REPO


def clean(*argv: str) -> None:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    clean(sys.executable, "-m", "ruff", "check", "prodng", "tests", "bench", "native")


def test_ruff_format() -> None:
    clean(sys.executable, "-m", "ruff", "format", "--check", "prodng", "tests", "bench")


def test_mypy() -> None:
    clean(sys.executable, "-m", "mypy")


def test_shellcheck() -> None:
    scripts = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("scripts/*.sh"), *REPO.glob("packaging/*.sh")])
    clean("shellcheck", *scripts, ".ci/run")
