"""The unit -> service plan compiler, on roots made of planted files (no root, no containers)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from prodng.errors import InvalidRequest
from prodng.payload import execline, tmpfiles, units
from prodng.payload.plan import compile_plan, unit_name
from prodng.payload.rootfiles import RootFiles

CAPS = frozenset({"CHOWN", "KILL", "SETUID", "SETGID", "NET_BIND_SERVICE"})
PASSWD = "root:x:0:0:root:/root:/bin/sh\nredis:x:101:102::/var/lib/redis:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nredis:x:102:\nssl-cert:x:103:redis\n"


def plant(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> RootFiles:
    for rel, text in {"etc/passwd": PASSWD, "etc/group": GROUP, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for rel, target in (links or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)
    return RootFiles(root)


def enable(name: str) -> dict[str, str]:
    return {f"etc/systemd/system/multi-user.target.wants/{name}": f"/lib/systemd/system/{name}"}


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("$OPTS", {"OPTS": "-a  -b"}, ["-a", "-b"]),  # a word of its own splits
        ("${OPTS}", {"OPTS": "-a -b"}, ["-a -b"]),  # braces: one word
        ("--x=${V}", {"V": "1"}, ["--x=1"]),
        ("--x=$V", {"V": "1"}, ["--x=$V"]),  # $V inside a word is the program's (a shell's)
        ("$UNSET", {}, []),
        ("$$HOME", {}, ["$HOME"]),
        ("$MAINPID", {}, ["$MAINPID"]),  # known only when the command runs
    ],
)
def test_expansion(word: str, env: dict[str, str], expected: list[str]) -> None:
    (command,) = execline.commands(f"/bin/x {word}", env)
    assert list(command.argv[1:]) == expected


@pytest.mark.parametrize(
    ("line", "path", "argv", "flags"),
    [
        ("-/bin/true a", "/bin/true", ("/bin/true", "a"), "-"),
        ("@/bin/sh mysh -c x", "/bin/sh", ("mysh", "-c", "x"), ""),
        ("+-/bin/x", "/bin/x", ("/bin/x",), "-+"),
        ("!!/bin/x", "/bin/x", ("/bin/x",), "+"),
        ("- /bin/x", "/bin/x", ("/bin/x",), "-"),
    ],
)
def test_prefixes(line: str, path: str, argv: tuple[str, ...], flags: str) -> None:
    (command,) = execline.commands(line, {})
    assert (command.path, command.argv, command.flags()) == (path, argv, flags)


def test_semicolon_separates_commands() -> None:
    first, second = execline.commands("/bin/a 1 ; /bin/b \\;", {})
    assert first.argv == ("/bin/a", "1") and second.argv == ("/bin/b", ";")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1min 30s", 90.0), ("100ms", 0.1), ("infinity", execline.INFINITY), ("5m", 300.0)],
)
def test_timespan(text: str, seconds: float) -> None:
    assert execline.timespan(text) == pytest.approx(seconds)


def test_specifiers() -> None:
    spec = execline.Specifiers("postgresql@15-main.service", hostname="db.example")
    assert spec.expand("%n %N %p %i %I %t %S %C %L %l %%") == (
        "postgresql@15-main.service postgresql@15-main postgresql 15-main 15/main /run /var/lib /var/cache "
        "/var/log db %"
    )
    with pytest.raises(InvalidRequest, match="unknown specifier"):
        spec.expand("%Q")


def test_env_file() -> None:
    text = "# comment\nA=1\nexport B=\"two words\"\nC='x' # trailing\n; other\nD\n"
    assert execline.env_file(text) == {"A": "1", "B": "two words", "C": "x"}


def test_parse_continuation_reset_and_dropins(tmp_path: Path) -> None:
    files = plant(
        tmp_path,
        {
            "lib/systemd/system/a.service": "[Service]\nExecStart=/bin/a \\\n  --long\nEnvironment=X=1\n",
            "etc/systemd/system/a.service.d/override.conf": "[Service]\nEnvironment=\nEnvironment=Y=2\n",
        },
    )
    unit = units.UnitStore(files).load("a.service")
    assert unit.all("Service", "ExecStart") == ["/bin/a  --long"]
    assert unit.all("Service", "Environment") == ["Y=2"]  # the empty assignment reset the list


def test_boot_units_wants_masks_aliases_templates_sysv(tmp_path: Path) -> None:
    lib = "lib/systemd/system"
    files = plant(
        tmp_path,
        {
            f"{lib}/web.service": "[Unit]\nWants=helper.service\n[Service]\nExecStart=/bin/web\n",
            f"{lib}/helper.service": "[Unit]\nBefore=web.service\n[Service]\nExecStart=/bin/helper\n",
            f"{lib}/masked.service": "[Service]\nExecStart=/bin/no\n",
            f"{lib}/db@.service": "[Service]\nExecStart=/bin/db %i\n",
            f"{lib}/db.target": "[Unit]\nDescription=dbs\n",
            f"{lib}/systemd-journald.service": "[Service]\nExecStart=/lib/systemd/journald\n",
            "etc/init.d/legacy": "#!/bin/sh\nPIDFILE=/run/legacy.pid\n",
            "etc/init.d/web": "#!/bin/sh\n",  # a native unit of the same name wins
        },
        {
            **enable("web.service"),
            **enable("masked.service"),
            **enable("db.target"),
            **enable("systemd-journald.service"),
            "etc/systemd/system/masked.service": "/dev/null",
            "etc/systemd/system/db.target.wants/db@main.service": f"/{lib}/db@.service",
            "etc/rc2.d/S01legacy": "../init.d/legacy",
            "etc/rc2.d/S01web": "../init.d/web",
        },
    )
    plan = compile_plan(files, "h", (), {}, CAPS)
    names = [s.name for s in plan.services]
    assert names == ["db@main.service", "helper.service", "legacy.service", "web.service"]
    db, _, legacy, _ = plan.services
    assert db.commands[0][1].argv == ("/bin/db", "main")
    assert (legacy.type, legacy.pidfile, legacy.remain) == ("forking", "/run/legacy.pid", True)
    assert legacy.commands[0][1].argv == ("/etc/init.d/legacy", "start")


def test_unit_compiled_like_systemd(tmp_path: Path) -> None:
    unit = (
        "[Unit]\nConditionPathExists=/etc/redis/redis.conf\n"
        "[Service]\nType=notify\nUser=redis\nEnvironmentFile=-/etc/default/redis\nEnvironment=A=1\n"
        "ExecStartPre=-/bin/prep $OPTS\nExecStart=/usr/bin/redis-server ${CONF}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\nRuntimeDirectory=redis\nRuntimeDirectoryMode=2755\n"
        "StateDirectory=redis\nKillSignal=SIGINT\nTimeoutStopSec=30\nRestart=always\nPIDFile=redis.pid\n"
        "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN\n"
    )
    files = plant(
        tmp_path,
        {
            "lib/systemd/system/redis.service": unit,
            "etc/default/redis": "OPTS='-x -y'\nCONF=/etc/redis/redis.conf\n",
            "etc/redis/redis.conf": "",
        },
        enable("redis.service"),
    )
    (plan,) = compile_plan(files, "h", (), {"A": "from-user"}, CAPS).services
    assert (plan.type, plan.uid, plan.gid, plan.groups) == ("notify", 101, 102, (103,))  # ssl-cert, as initgroups
    assert "NOTIFY_SOCKET=/run/systemd/notify" in plan.env and "A=from-user" in plan.env
    phases = [(p, c.flags(), c.argv) for p, c in plan.commands]
    assert phases == [
        ("pre", "-", ("/bin/prep", "-x", "-y")),
        ("start", "", ("/usr/bin/redis-server", "/etc/redis/redis.conf")),
        ("reload", "", ("/bin/kill", "-HUP", "$MAINPID")),
    ]
    assert [(d.path, d.mode, d.uid) for d in plan.dirs] == [("/run/redis", 0o2755, 101), ("/var/lib/redis", 0o755, 101)]
    assert (plan.kill_signal, plan.stop_timeout, plan.restart, plan.pidfile) == (
        int(signal.SIGINT),
        30.0,
        "always",
        "/run/redis.pid",
    )
    assert plan.ambient == ("NET_BIND_SERVICE",)  # never more than the container has
    assert plan.skip == ""


@pytest.mark.parametrize(
    ("condition", "skip"),
    [
        ("ConditionPathExists=/nope", "ConditionPathExists=/nope not met"),
        ("ConditionPathExists=!/etc/passwd", "ConditionPathExists=!/etc/passwd not met"),
        ("ConditionCapability=CAP_SYS_TIME", "ConditionCapability=CAP_SYS_TIME not met"),
        ("ConditionVirtualization=container", ""),
        ("ConditionPathExists=|/nope\nConditionPathExists=|/etc/passwd", ""),
    ],
)
def test_conditions(tmp_path: Path, condition: str, skip: str) -> None:
    files = plant(tmp_path, {"lib/systemd/system/c.service": f"[Unit]\n{condition}\n[Service]\nExecStart=/bin/c\n"})
    (plan,) = compile_plan(files, "h", ("c",), {}, CAPS).services
    assert plan.skip == skip


def test_bad_units_are_refused(tmp_path: Path) -> None:
    files = plant(
        tmp_path,
        {
            "lib/systemd/system/u.service": "[Service]\nUser=ghost\nExecStart=/bin/u\n",
            "lib/systemd/system/e.service": "[Service]\nEnvironmentFile=/etc/missing\nExecStart=/bin/e\n",
            "lib/systemd/system/d.service": "[Service]\nStateDirectory=../../etc\nExecStart=/bin/d\n",
        },
        {"etc/systemd/system/m.service": "/dev/null"},
    )
    for name, message in (
        ("u", "User=ghost does not exist"),
        ("e", "EnvironmentFile /etc/missing is missing"),
        ("d", "must be relative"),
        ("m", "is masked"),
        ("nosuch", "does not exist"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            compile_plan(files, "h", (name,), {}, CAPS)
    with pytest.raises(InvalidRequest, match="invalid unit name"):
        unit_name("../x")


def test_reads_never_leave_the_root(tmp_path: Path) -> None:
    """A package's symlink to /etc/shadow names the container's file, never the host's."""
    outside = tmp_path / "host-secret"
    outside.write_text("SECRET=host\n")
    root = tmp_path / "root"
    files = plant(
        root,
        {
            "lib/systemd/system/s.service": "[Service]\nEnvironmentFile=-/etc/default/s\nExecStart=/bin/s $SECRET\n",
        },
        {"etc/default/s": str(outside), "etc/default/t": "../../../../../../" + str(outside)},
    )
    assert files.read_text(str(outside)) is None
    assert files.read_text("/etc/default/t") is None
    (plan,) = compile_plan(files, "h", ("s",), {}, CAPS).services
    assert plan.commands[0][1].argv == ("/bin/s",)


def test_openvpn_instance_from_a_bound_config(tmp_path: Path) -> None:
    """openvpn's generator (emulated) wants openvpn@NAME for each /etc/openvpn/NAME.conf, bound ones too."""
    conf = tmp_path / "server.conf"
    conf.write_text("dev tun\n")
    lib = "lib/systemd/system"
    files = plant(
        tmp_path / "root",
        {
            f"{lib}/openvpn@.service": "[Service]\nExecStart=/usr/sbin/openvpn %i\n",
            f"{lib}/openvpn.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            "lib/systemd/system-generators/openvpn-generator": "#!/bin/sh\n",
        },
        enable("openvpn.service"),
    )
    bound = RootFiles(files.root, ((str(conf), "/etc/openvpn/server.conf"),))
    assert [s.name for s in compile_plan(bound, "h", (), {}, CAPS).services] == [
        "openvpn.service",
        "openvpn@server.service",
    ]
    assert [s.name for s in compile_plan(files, "h", (), {}, CAPS).services] == ["openvpn.service"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("d /run/sshd 0755 root root -", ("d", "/run/sshd", 0o755, -1, -1, "")),
        ("d %t/redis 0750 redis redis", ("d", "/run/redis", 0o750, 101, 102, "")),
        ("f /run/x.flag 0644 - - - hello\\n", ("f", "/run/x.flag", 0o644, -1, -1, "hello\n")),
        ("L+ /run/link - - - - /etc/target", ("L", "/run/link", -1, -1, -1, "/etc/target")),
        ("x /tmp/foo", None),
        ("d /proc/x 0755", None),
        ("d /run/../etc 0755", None),
        ("# comment", None),
    ],
)
def test_tmpfiles_lines(line: str, expected: tuple[object, ...] | None) -> None:
    users = {"redis": (101, 102)}
    op = tmpfiles.parse_line(line, users, {"redis": (102, 0)})
    assert (op and (op.kind, op.path, op.mode, op.uid, op.gid, op.argument)) == expected


def test_links_in_a_bind_resolve_the_containers_way(tmp_path: Path) -> None:
    """A :rw bind holds what the container planted: its links lead into the container's root, never the host's."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "x.env").write_text("WHERE=host\n")
    files = plant(tmp_path / "root", {"secrets/x.env": "WHERE=root\n", "etc/x.env": "WHERE=root-etc\n"})
    data = tmp_path / "data"
    data.mkdir()
    (data / "abs").symlink_to(secrets)  # the host's path, read inside the root: missing
    (data / "up").symlink_to("../secrets")  # up from /data is the container's /
    (data / "etc").symlink_to("/etc")
    (data / "own.env").write_text("WHERE=bind\n")
    bound = RootFiles(files.root, ((str(data), "/data"),))
    assert bound.read_text("/data/abs/x.env") is None
    assert bound.read_text("/data/up/x.env") == "WHERE=root\n"
    assert bound.read_text("/data/etc/x.env") == "WHERE=root-etc\n"
    assert bound.read_text("/data/own.env") == "WHERE=bind\n"
    assert bound.readlink("/data/up") == "../secrets" and bound.readlink("/data") is None
    assert bound.listdir("/data/up") == ["x.env"] and bound.is_dir("/data") and not bound.exists("/data/abs")
