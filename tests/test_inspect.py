"""prodng's tables through embedded SQL and through a real osquery extension socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from osquery.extensions import Extension, ExtensionManager  # type: ignore[import-untyped]
from osquery.extensions.ttypes import ExtensionStatus  # type: ignore[import-untyped]
from thrift.protocol import TBinaryProtocol  # type: ignore[import-untyped]
from thrift.server import TServer  # type: ignore[import-untyped]
from thrift.transport import TSocket, TTransport  # type: ignore[import-untyped]

from prodng.inspect import osquery, tables

from conftest import Prodng

pytestmark = [pytest.mark.root, pytest.mark.slow]

LISTENER = (
    "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1)"
    " or die qq(listen: $!); sleep 100000'"
)


def _deb(tmp_path: Path, package: str) -> Path:
    """A real (tiny) .deb built with dpkg-deb."""
    root = tmp_path / package
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc" / package).mkdir(parents=True)
    (root / "usr/share/doc" / package / "README").write_text("probe\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1.2-3\nArchitecture: all\nMaintainer: prodng <t@example.org>\n"
        "Description: inspection probe\n"
    )
    debs = tmp_path / "debs"
    debs.mkdir(exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{package}.deb")],
        check=True,
        capture_output=True,
    )
    return debs


@pytest.fixture(scope="module")
def pair(prodng: Prodng, template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two running containers: `web` listens on 8080 and has an extra package installed."""
    debs = _deb(tmp_path_factory.mktemp("debs"), "prodng-probe")
    web, idle = "insp-web", "insp-idle"
    prodng("run", template, "--name", web, "--bind", f"{debs}:/debs", "--exec", LISTENER)
    prodng("run", template, "--name", idle, "--exec", "sleep 100000")
    prodng("exec", web, "--", "dpkg", "-i", "/debs/prodng-probe.deb")
    yield web, idle
    for name in (web, idle):
        prodng("rm", "-f", name, check=False)


def q(prodng: Prodng, sql: str) -> list[dict[str, object]]:
    rows = prodng.json("query", sql)
    assert isinstance(rows, list)
    return rows


def test_containers_and_cgroup_stats(prodng: Prodng, pair: tuple[str, str]) -> None:
    web, idle = pair
    rows = q(
        prodng,
        "SELECT name, state, template, pid, network FROM prodng_containers "
        f"WHERE name IN ('{web}', '{idle}') ORDER BY name",
    )
    assert [(r["name"], r["state"], r["network"]) for r in rows] == [
        (idle, "running", "none"),
        (web, "running", "none"),
    ]
    prodng("freeze", idle)
    try:
        frozen = q(prodng, "SELECT container FROM prodng_cgroup_stats WHERE frozen = 1")
        assert {r["container"] for r in frozen} == {idle}
    finally:
        prodng("thaw", idle)


def test_packages_belong_to_their_container(prodng: Prodng, pair: tuple[str, str]) -> None:
    web, idle = pair
    rows = q(prodng, "SELECT container, version, status FROM prodng_deb_packages WHERE name = 'prodng-probe'")
    assert rows == [{"container": web, "version": "1.2-3", "status": "install ok installed"}]
    counts = q(
        prodng,
        "SELECT container, count(*) AS n FROM prodng_deb_packages "
        f"WHERE container IN ('{web}', '{idle}') GROUP BY container ORDER BY container",
    )
    per_container = {r["container"]: r["n"] for r in counts}
    assert per_container[web] == per_container[idle] + 1  # type: ignore[operator]


def test_listening_ports_and_join(prodng: Prodng, pair: tuple[str, str]) -> None:
    web, idle = pair
    prodng.wait_for(lambda: q(prodng, "SELECT * FROM prodng_listening_ports WHERE port = 8080"), what="the listener")
    rows = q(
        prodng,
        "SELECT l.container, l.protocol, l.port, p.name FROM prodng_listening_ports l "
        "JOIN prodng_processes p ON p.pid = l.pid WHERE l.port = 8080",
    )
    assert rows == [{"container": web, "protocol": "tcp", "port": 8080, "name": "perl"}]


def test_processes_mounts_interfaces(prodng: Prodng, pair: tuple[str, str]) -> None:
    web, idle = pair
    procs = q(prodng, f"SELECT ns_pid, name, user FROM prodng_processes WHERE container = '{idle}' ORDER BY ns_pid")
    assert procs == [
        {"ns_pid": 1, "name": "prodng-init", "user": "root"},
        {"ns_pid": 2, "name": "sleep", "user": "root"},
    ]
    mounts = {r["path"]: r["type"] for r in q(prodng, f"SELECT * FROM prodng_mounts WHERE container = '{web}'")}
    assert mounts["/"] == "btrfs" and mounts["/proc"] == "proc" and mounts["/debs"] != "btrfs"
    addresses = q(prodng, f"SELECT interface, address FROM prodng_interfaces WHERE container = '{idle}'")
    assert {(r["interface"], r["address"]) for r in addresses} == {("lo", "127.0.0.1"), ("lo", "::1")}
    assert q(prodng, "SELECT name FROM prodng_templates WHERE name != 'probe'") == [{"name": "bookworm"}]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELEC name FROM prodng_containers", "syntax error"),
        ("DELETE FROM prodng_containers", "read-only"),
        ("INSERT INTO prodng_templates (name) VALUES ('x')", "read-only"),
        ("ATTACH DATABASE '/tmp/prodng-attack.db' AS x", "read-only"),
        ("PRAGMA writable_schema = 1", "read-only"),
        ("SELECT * FROM nosuch", "no such table"),
        ("SELECT nosuch FROM prodng_containers", "no such column"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "time limit"),
    ],
)
def test_bad_queries(prodng: Prodng, sql: str, says: str) -> None:
    result = prodng("query", sql, "--timeout", "1", check=False)
    assert result.returncode == 2 and says in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not Path("/tmp/prodng-attack.db").exists()


class StandInCore(ExtensionManager.Iface):  # type: ignore[misc]
    """Just enough of osqueryd's extension manager for an extension to register."""

    UUID = 4242

    def __init__(self) -> None:
        self.registry: dict[str, object] = {}

    def ping(self) -> ExtensionStatus:
        return ExtensionStatus(code=0, message="OK")

    def registerExtension(self, info: object, registry: dict[str, object]) -> ExtensionStatus:  # noqa: N802
        self.registry = registry
        return ExtensionStatus(code=0, message="OK", uuid=self.UUID)

    def deregisterExtension(self, uuid: int) -> ExtensionStatus:  # noqa: N802
        return ExtensionStatus(code=0, message="OK")

    def extensions(self) -> dict[int, object]:
        return {}

    def options(self) -> dict[str, object]:
        return {}


def _client(path: str) -> tuple[Extension.Client, TTransport.TTransportBase]:
    transport = TTransport.TBufferedTransport(TSocket.TSocket(unix_socket=path))
    transport.open()
    return Extension.Client(TBinaryProtocol.TBinaryProtocol(transport)), transport


def test_extension_over_its_thrift_socket(prodng: Prodng, pair: tuple[str, str], tmp_path: Path) -> None:
    web, idle = pair
    socket_path = str(tmp_path / "osquery.em")
    core = StandInCore()
    server = TServer.TThreadedServer(
        ExtensionManager.Processor(core),
        TSocket.TServerSocket(unix_socket=socket_path),
        TTransport.TBufferedTransportFactory(),
        TBinaryProtocol.TBinaryProtocolFactory(),
        daemon=True,
    )
    threading.Thread(target=server.serve, daemon=True).start()
    prodng.wait_for(lambda: os.path.exists(socket_path), what="the stand-in core")
    extension = subprocess.Popen(
        [sys.executable, "-m", "prodng.inspect.osquery", "--socket", socket_path, "--timeout", "3", "--interval", "1"],
        env=prodng.env,
    )
    try:
        own_socket = f"{socket_path}.{StandInCore.UUID}"
        prodng.wait_for(lambda: os.path.exists(own_socket), what="the extension's socket")
        assert set(core.registry["table"]) == {t.name for t in tables.TABLES}  # type: ignore[call-overload]
        client, transport = _client(own_socket)
        try:
            columns = client.call("table", "prodng_containers", {"action": "columns"})
            assert columns.status.code == 0
            assert [c["name"] for c in columns.response][:3] == ["name", "state", "template"]
            context = {"constraints": [{"name": "name", "affinity": "TEXT", "list": [{"op": 2, "expr": idle}]}]}
            rows = client.call("table", "prodng_containers", {"action": "generate", "context": json.dumps(context)})
            assert rows.status.code == 0
            assert [(r["name"], r["state"]) for r in rows.response] == [(idle, "running")]
            packages = client.call(
                "table",
                "prodng_deb_packages",
                {
                    "action": "generate",
                    "context": json.dumps({"constraints": [{"name": "container", "list": [{"op": 2, "expr": web}]}]}),
                },
            )
            assert "prodng-probe" in {r["name"] for r in packages.response}
            assert {r["container"] for r in packages.response} == {web}
        finally:
            transport.close()
    finally:
        extension.kill()
        extension.wait()
        # The stand-in core's daemon thread stays blocked in accept() until the test process exits:
        # closing its socket here would make thrift's serve loop spin on errors.


def test_constraint_parsing() -> None:
    context = {
        "constraints": [
            {"name": "name", "list": [{"op": 2, "expr": "a"}, {"op": 2, "expr": "b"}]},
            {"name": "state", "list": [{"op": 2, "expr": "running"}]},
        ]
    }
    assert osquery.wanted_values(context, "name") == {"a", "b"}
    assert osquery.wanted_values(json.dumps(context), "container") is None
    like = {"constraints": [{"name": "name", "list": [{"op": 65, "expr": "a%"}]}]}
    assert osquery.wanted_values(like, "name") is None


def test_extension_refuses_non_root() -> None:
    if os.geteuid() == 0:
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "prodng.inspect.osquery",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "HOME": "/"},
        )
    else:  # pragma: no cover - CI runs as root
        result = subprocess.run([sys.executable, "-m", "prodng.inspect.osquery"], capture_output=True, text=True)
    assert result.returncode == 1 and "must run as root" in result.stderr
    time.sleep(0)
