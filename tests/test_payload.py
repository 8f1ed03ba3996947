"""Everything is a .deb: real Debian packages installed into sandboxed snapshots, and bad ones refused."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from prodng.errors import InvalidRequest
from prodng.payload import deb

from conftest import Prodng

pytestmark = [pytest.mark.root, pytest.mark.slow]

HOST_DPKG_STATUS = Path("/var/lib/dpkg/status")


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real packages from Debian's archive (apt-get download never touches the host's dpkg)."""
    folder = tmp_path_factory.mktemp("archive")
    apt_download(folder, ["hello", "redis-server", "nginx", "nginx-common"])
    return folder


def apt_download(folder: Path, packages: list[str]) -> None:
    """These packages' .debs from Debian's archive into folder; the host's package lists are updated
    first only if they are too old to name them."""
    if not packages:
        return
    cmd = ["apt-get", "download", "-q", *packages]
    if subprocess.run(cmd, cwd=folder, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)


def _one(folder: Path, package: str) -> str:
    (match,) = folder.glob(f"{package}_*.deb")
    return str(match)


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, int(time.time())
    return info


def crafted_deb(
    path: Path,
    control: str,
    data: Sequence[tuple[tarfile.TarInfo, bytes | None]],
    scripts: dict[str, str] | None = None,
) -> str:
    """A .deb assembled by hand (ar + tar), so it can carry what dpkg-deb would refuse to build."""
    control_members = [(_entry("./control"), control.encode())]
    for name, text in (scripts or {}).items():
        control_members.append((_entry(f"./{name}", mode=0o755), text.encode()))
    members = [("debian-binary", b"2.0\n"), ("control.tar.gz", _tar(control_members)), ("data.tar.gz", _tar(data))]
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, blob in members:
        out.write(f"{name:<16}{int(time.time()):<12}0     0     100644  {len(blob):<10}`\n".encode())
        out.write(blob + (b"\n" if len(blob) % 2 else b""))
    path.write_bytes(out.getvalue())
    return str(path)


def control(package: str = "prodng-probe", arch: str = "all", extra: str = "") -> str:
    return (
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: {arch}\nMaintainer: prodng <t@example.org>\n"
        f"Description: probe\n{extra}"
    )


def built_deb(
    tmp_path: Path, name: str, fields: str, files: dict[str, str], scripts: dict[str, str] | None = None
) -> str:
    """A package built the normal way, with dpkg-deb."""
    root = tmp_path / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(control(name, extra=fields))
    for script, text in (scripts or {}).items():
        (root / "DEBIAN" / script).write_text(text)
        (root / "DEBIAN" / script).chmod(0o755)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        (root / rel).chmod(0o755)
    out = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True, capture_output=True)
    return str(out)


def _host_unchanged(before: str) -> None:
    assert hashlib.sha256(HOST_DPKG_STATUS.read_bytes()).hexdigest() == before


@pytest.fixture
def host_dpkg() -> str:
    return hashlib.sha256(HOST_DPKG_STATUS.read_bytes()).hexdigest()


def test_hello_from_the_archive_with_exec(
    prodng: Prodng, template: str, debs: Path, container: str, host_dpkg: str
) -> None:
    result = prodng(template, _one(debs, "hello"), "none", "--name", container, "--exec", "hello -g 'from prodng'")
    assert result.stdout.strip() == container
    prodng.wait_for(lambda: "from prodng" in prodng("logs", container).stdout, what="hello's greeting")
    info = prodng.info(container)
    assert info["payloads"] == [f"hello={deb.inspect(_one(debs, 'hello')).version}"]
    rows = prodng.json(
        "query", f"SELECT name FROM prodng_deb_packages WHERE container = '{container}' AND name = 'hello'"
    )
    assert rows == [{"name": "hello"}]
    _host_unchanged(host_dpkg)
    again = prodng(template, _one(debs, "hello"), "none", "--name", container + "-2", "--exec", "hello")
    try:
        assert "reusing the cached install" in again.stderr
    finally:
        prodng("rm", "-f", container + "-2")


def test_redis_from_its_unit_answers(prodng: Prodng, template: str, debs: Path, container: str, host_dpkg: str) -> None:
    # The README demo's limits: enough for the service; its install (apt, dpkg, a postinst making a user)
    # gets what apt needs whatever the flags say (install.JOB_FLOOR).
    prodng(template, _one(debs, "redis-server"), "none", "--name", container, "--memory", "64M", "--pids", "32")
    info = prodng.info(container)
    assert "redis-server" in str(info["command"]) and info["state"] == "running"
    assert prodng.wait_for(
        lambda: prodng("exec", container, "--", "redis-cli", "ping", check=False).stdout.strip() == "PONG", what="redis"
    )
    users = prodng.json(
        "query", f"SELECT user FROM prodng_processes WHERE container = '{container}' AND name = 'redis-server'"
    )
    assert users == [{"user": "redis"}]  # User= from the unit
    _host_unchanged(host_dpkg)


HTTP_GET = (
    "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(q(127.0.0.1:80)) or die $!; "
    "print $s qq(GET / HTTP/1.0\\r\\n\\r\\n); print <$s>'"
)


def test_nginx_from_its_forking_unit_answers(prodng: Prodng, template: str, debs: Path, container: str) -> None:
    prodng(template, _one(debs, "nginx-common"), _one(debs, "nginx"), "none", "--name", container)
    answer = prodng.wait_for(
        lambda: prodng("exec", container, "--", "sh", "-c", HTTP_GET, check=False).stdout, what="nginx to answer"
    )
    assert answer.startswith("HTTP/1.1 200") and "nginx" in answer
    assert prodng.info(container)["state"] == "running"  # Type=forking: the daemon outlives its launcher


def test_x_prodng_exec_field(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    deb = built_deb(
        tmp_path,
        "prodng-greeter",
        "X-Prodng-Exec: /usr/bin/prodng-greeter hello there\n",
        {"usr/bin/prodng-greeter": '#!/bin/sh\necho "greeter says: $*"\nexec sleep 100000\n'},
    )
    prodng(template, deb, "--name", container)
    prodng.wait_for(lambda: "greeter says: hello there" in prodng("logs", container).stdout, what="the greeter")


def test_no_service_says_what_to_add(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    deb = built_deb(tmp_path, "prodng-empty", "", {"usr/share/prodng-empty/README": "nothing\n"})
    result = prodng(template, deb, "--name", container, check=False)
    assert result.returncode == 2 and "X-Prodng-Exec" in result.stderr and "--exec" in result.stderr


def _bad_packages(tmp_path: Path) -> dict[str, tuple[str, str]]:
    reg = _entry
    ok = [(reg("./usr/share/doc/probe/README"), b"x")]
    text = tmp_path / "not-a-deb.deb"
    text.write_text("just text\n")
    good = crafted_deb(tmp_path / "good.deb", control(), ok)
    disk = reg("./usr/share/prodng-dev/disk", tarfile.BLKTYPE)
    disk.devmajor, disk.devminor = 7, 0  # a loop device: another tenant's disk
    truncated = tmp_path / "truncated.deb"
    truncated.write_bytes(Path(good).read_bytes()[:300])
    return {
        "not a deb": (str(text), "not a valid Debian binary package"),
        "truncated": (str(truncated), "not a valid Debian binary package"),
        "wrong arch": (crafted_deb(tmp_path / "arch.deb", control(arch="s390x"), ok), "does not fit"),
        "absolute path": (crafted_deb(tmp_path / "abs.deb", control(), [(reg("/etc/evil"), b"x")]), "absolute path"),
        "traversal": (crafted_deb(tmp_path / "dots.deb", control(), [(reg("./../../evil"), b"x")]), "path traversal"),
        "hard link out": (
            crafted_deb(
                tmp_path / "link.deb", control(), [(reg("./usr/x", tarfile.LNKTYPE, "../../etc/shadow"), None)]
            ),
            "hard link",
        ),
        "device node": (crafted_deb(tmp_path / "dev.deb", control(), [(disk, None)]), "may not ship devices"),
        "slash in Package": (crafted_deb(tmp_path / "slash.deb", control("evil/name"), ok), "invalid Package"),
        "bad Version": (
            crafted_deb(tmp_path / "ver.deb", control().replace("1.0-1", "one point oh"), ok),
            "invalid Version",
        ),
        "unmet dependency": (
            built_deb(
                tmp_path, "prodng-needy", "Depends: prodng-no-such-package\n", {"usr/bin/prodng-needy": "#!/bin/sh\n"}
            ),
            "install failed",
        ),
        "failing postinst": (
            built_deb(
                tmp_path,
                "prodng-broken",
                "",
                {"usr/bin/prodng-broken": "#!/bin/sh\n"},
                {"postinst": "#!/bin/sh\necho postinst fails >&2\nexit 1\n"},
            ),
            "install failed",
        ),
    }


def test_bad_packages_are_refused_and_harm_nothing(
    prodng: Prodng, template: str, container: str, tmp_path: Path, host_dpkg: str
) -> None:
    canary = tmp_path / "canary"
    canary.write_text("untouched")
    for label, (package, says) in _bad_packages(tmp_path).items():
        result = prodng(template, package, "none", "--name", container, "--exec", "true", check=False)
        assert result.returncode == 2, (label, result.stderr)
        assert says in result.stderr and result.stderr.strip().count("\n") <= 1, (label, result.stderr)
        assert prodng("info", container, check=False).returncode == 3, f"{label} left a container"
    assert not list((prodng.root / "pool" / "cache").glob(".build-*"))
    assert canary.read_text() == "untouched"
    _host_unchanged(host_dpkg)


def test_symlink_in_package_cannot_write_outside(
    prodng: Prodng, template: str, container: str, tmp_path: Path, host_dpkg: str
) -> None:
    target = tmp_path / "outside"
    target.mkdir()
    deb = crafted_deb(
        tmp_path / "escape.deb",
        control("prodng-escape"),
        [
            (_entry("./opt/escape", tarfile.SYMTYPE, str(target)), None),
            (_entry("./opt/escape/planted"), b"gotcha"),
        ],
    )
    prodng(template, deb, "none", "--name", container, "--exec", "sleep 100000", check=False)
    assert not (target / "planted").exists(), "the package wrote outside the container's root"
    _host_unchanged(host_dpkg)


def test_inspect_units_unit() -> None:
    with pytest.raises(InvalidRequest, match="no such file"):
        deb.inspect("/nonexistent/x.deb")


def _version_deb(tmp_path: Path, version: str, exe: str = "/usr/bin/prodng-ver") -> str:
    root = tmp_path / f"ver-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(control("prodng-ver").replace("1.0-1", version) + f"X-Prodng-Exec: {exe}\n")
    (root / "usr/bin/prodng-ver").write_text(f"#!/bin/sh\necho serving {version} $GREETING\nexec sleep 100000\n")
    (root / "usr/bin/prodng-ver").chmod(0o755)
    out = tmp_path / f"ver-{version}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True, capture_output=True)
    return str(out)


def test_upgrade_rollback_and_failed_upgrade(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    def serving() -> str:
        return prodng.wait_for(lambda: prodng("logs", container, "--tail", "1").stdout.strip(), what="output")

    prodng(template, _version_deb(tmp_path, "1.0"), "--name", container, "-e", "GREETING=hi")
    assert serving() == "serving 1.0 hi"
    first_pid = prodng.info(container)["pid"]
    prodng("upgrade", container, _version_deb(tmp_path, "2.0"))
    prodng.wait_for(lambda: serving() == "serving 2.0 hi", what="version 2, the user's -e kept")
    info = prodng.info(container)
    assert info["payloads"] == ["prodng-ver=2.0"] and info["state"] == "running" and info["pid"] != first_pid
    broken = prodng("upgrade", container, _version_deb(tmp_path, "3.0", exe="/usr/bin/missing"), check=False)
    assert broken.returncode == 2 and "exec /usr/bin/missing" in broken.stderr
    info = prodng.info(container)
    assert info["payloads"] == ["prodng-ver=2.0"] and info["state"] == "running"
    bad = prodng("upgrade", container, str(tmp_path / "nosuch.deb"), check=False)
    assert bad.returncode == 2 and prodng.info(container)["pid"] == info["pid"], "a bad package touches nothing"
    prodng("rollback", container)
    prodng.wait_for(lambda: serving() == "serving 1.0 hi", what="the rollback")
    assert prodng.info(container)["payloads"] == ["prodng-ver=1.0"]
    prodng("rollback", container)  # and forward again
    prodng.wait_for(lambda: serving() == "serving 2.0 hi", what="the roll forward")
    prodng("rm", "-f", container)
    assert not [p for p in (prodng.root / "pool" / "containers").iterdir() if container in p.name]


def test_setuid_gains_nothing(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    unit = "[Service]\nUser=nobody\nExecStart=/bin/sh -c '/usr/bin/prodng-suid -u; exec sleep 100000'\n"
    suid = _entry("./usr/bin/prodng-suid", mode=0o4755)
    folders = [
        (_entry(f"./{d}/", tarfile.DIRTYPE, mode=0o755), None)
        for d in ("usr", "usr/bin", "lib", "lib/systemd", "lib/systemd/system")
    ]
    deb = crafted_deb(
        tmp_path / "privileged.deb",
        control("prodng-privileged"),
        [
            *folders,
            (suid, Path("/usr/bin/id").read_bytes()),
            (_entry("./lib/systemd/system/prodng-privileged.service"), unit.encode()),
        ],
    )
    prodng(template, deb, "none", "--name", container)
    log = prodng.wait_for(lambda: prodng("logs", container).stdout, what="the probe")
    assert log.splitlines()[0] == "65534", "the setuid bit gained root under no_new_privs"
    mode = prodng("exec", container, "--", "stat", "-c", "%a %F", "/usr/bin/prodng-suid")
    assert mode.stdout.strip() == "4755 regular file"  # installed, inert
