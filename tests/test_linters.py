"""Linters run as tests (mkosi's habit): ruff, ruff format, strict mypy (setup.cfg: prodng, tests and bench) and
shellcheck for the shell scripts."""

import subprocess
import sys

from conftest import REPO


def test_ruff() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "prodng", "tests", "bench", "native"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "prodng", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck() -> None:
    scripts = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("scripts/*.sh"), *REPO.glob("packaging/*.sh")])
    result = subprocess.run(["shellcheck", *scripts, ".ci/run"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
