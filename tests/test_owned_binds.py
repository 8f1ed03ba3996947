"""`--bind SRC:DST:rw,owner=USER`: a data bind the service's own user writes, nothing chowned on the host
(issue 16). The init idmaps the bound tree (mount_setattr MOUNT_ATTR_IDMAP): SRC's owner's files are
USER's inside, USER's new files are SRC's owner's on the host, every other id is itself.

The attacks: a symlink planted in SRC, SRC swapped for a symlink after the request was checked, another
host user's file in SRC, a root-owned SRC (the service's files would be root's on the host).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_services import deb_of, debs, probe  # noqa: F401 (debs: the cached .debs fixture)

from conftest import Prodng

pytestmark = [pytest.mark.root, pytest.mark.slow]

OWNER = 4321  # the host owner of SRC: no user of this host or of the template
STRANGER = 4322  # another host user, whose files in SRC stay theirs


def owned_dir(path: Path, uid: int = OWNER) -> Path:
    path.mkdir()
    os.chown(path, uid, uid)
    path.chmod(0o755)
    return path


def host_file(path: Path, text: str, uid: int) -> Path:
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(0o644)
    return path


def as_user(prodng: Prodng, name: str, uid: str, script: str) -> tuple[int, str]:
    result = prodng("exec", "-u", uid, name, "--", "sh", "-c", script, check=False)
    return result.returncode, result.stdout + result.stderr


def test_nobody_writes_an_owned_bind_as_its_host_owner(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    data = owned_dir(tmp_path / "data")
    theirs = host_file(data / "theirs", "a stranger's\n", STRANGER)
    prodng(template, "none", "--name", container, "--exec", "sleep 100000", "--bind", f"{data}:/data:rw,owner=nobody")
    assert prodng.info(container)["binds"] == [f"{data}:/data:rw,owner=nobody"]
    code, out = as_user(prodng, container, "65534:65534", "echo made > /data/new && stat -c %U:%G /data /data/new")
    assert code == 0, out
    assert out.split() == ["nobody:nogroup", "nobody:nogroup"]
    made = (data / "new").stat()
    assert (made.st_uid, made.st_gid) == (OWNER, OWNER)  # the host owner's, not 65534's
    # Another host user's file stays theirs: readable, not writable by the owner= user.
    code, out = as_user(prodng, container, "65534:65534", "stat -c %u /data/theirs; echo x >> /data/theirs")
    assert code != 0 and out.split()[0] == str(STRANGER), out
    assert theirs.read_text() == "a stranger's\n"
    # Root in the container keeps its own id in the bind: its files are root's, as in a plain bind.
    code, out = as_user(prodng, container, "0", "touch /data/roots")
    assert code == 0, out
    assert (data / "roots").stat().st_uid == 0


def test_a_symlink_planted_in_an_owned_bind_resolves_inside_the_container(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    """The host file the link names is the SRC owner's own: were the link followed on the host, the map
    would make it writable by the service. It is resolved inside the container, where no such file is."""
    victim = host_file(tmp_path / "victim", "host data\n", OWNER)
    data = owned_dir(tmp_path / "data")
    (data / "escape").symlink_to(victim)
    (data / "escape-dir").symlink_to(tmp_path)
    prodng(template, "none", "--name", container, "--exec", "sleep 100000", "--bind", f"{data}:/data:rw,owner=nobody")
    as_user(prodng, container, "65534:65534", "echo pwned > /data/escape; echo pwned > /data/escape-dir/victim")
    assert victim.read_text() == "host data\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "victim"]


def test_owned_binds_refuse_root_owned_and_symlinked_sources(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    root_owned = tmp_path / "root-owned"
    root_owned.mkdir()
    result = prodng(template, "none", "--name", container, "--exec", "sleep 1",
                    "--bind", f"{root_owned}:/data:rw,owner=nobody", check=False)  # fmt: skip
    assert result.returncode == 2 and "is owned by root" in result.stderr, result.stderr
    real = owned_dir(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    result = prodng(template, "none", "--name", container, "--exec", "sleep 1",
                    "--bind", f"{tmp_path / 'link'}:/data:rw,owner=nobody", check=False)  # fmt: skip
    assert result.returncode == 2 and "goes through a symlink" in result.stderr, result.stderr
    result = prodng(template, "none", "--name", container, "--exec", "sleep 1",
                    "--bind", f"{real}:/data:rw,owner=no-such-user", check=False)  # fmt: skip
    assert result.returncode == 2 and "no-such-user is no user of the container" in result.stderr, result.stderr


def test_a_source_swapped_for_a_symlink_after_create_is_refused_at_start(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    """The request was checked at create; at start the init opens SRC again with no symlink allowed on
    the way, so a link swapped in since (here to a root-owned host directory) is not mapped."""
    data = owned_dir(tmp_path / "data")
    target = tmp_path / "etc-like"
    target.mkdir()
    host_file(target / "config", "root's\n", 0)
    prodng("create", template, "none", "--name", container, "--exec", "sleep 100000",
           "--bind", f"{data}:/data:rw,owner=nobody")  # fmt: skip
    data.rmdir()
    data.symlink_to(target)
    result = prodng("start", container, check=False)
    assert result.returncode != 0 and "goes through a symlink" in result.stderr, result.stderr
    assert (target / "config").read_text() == "root's\n"
    assert (target / "config").stat().st_uid == 0


def test_redis_saves_its_dump_into_an_owned_bind(
    prodng: Prodng,
    template: str,
    debs: Path,  # noqa: F811 (the fixture imported above)
    container: str,
    tmp_path: Path,
) -> None:
    """redis-server runs as its own user (User=redis) with its data in /var/lib/redis: bound from a host
    directory of an unrelated owner, its SAVE lands there, owned on the host by that owner."""
    data = owned_dir(tmp_path / "redis")
    prodng(template, deb_of(debs, "redis-server"), "none", "--name", container,
           "--bind", f"{data}:/var/lib/redis:rw,owner=redis", timeout=900)  # fmt: skip
    probe(prodng, container, "redis-cli set greeting hello-from-the-bind && redis-cli save", "OK")
    dump = data / "dump.rdb"
    assert dump.read_bytes().startswith(b"REDIS")
    assert b"hello-from-the-bind" in dump.read_bytes()
    assert (dump.stat().st_uid, dump.stat().st_gid) == (OWNER, OWNER)
    inside = prodng("exec", container, "--", "stat", "-c", "%U:%G", "/var/lib/redis/dump.rdb").stdout.strip()
    assert inside == "redis:redis"
    prodng("stop", container)  # redis saves again on the way down, into the same place
    assert dump.stat().st_uid == OWNER
