"""The verb table: every operation declared once.

Each entry gives the CLI subcommand (prodng/cli.py) and the REST route
(/prodng/<verb>, GET for reads, POST for changes), so the two cannot drift.
Handlers take a Context and keyword arguments and return JSON-serialisable data.
"""

from __future__ import annotations

import enum
import os
import shlex
import signal as signals
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from prodng import faults
from prodng.config import Paths, parse_int, parse_number, parse_size
from prodng.container import enter, lifecycle, logs, observe, recovery, state, upgrade, validation
from prodng.container.state import ContainerRecord, Limits
from prodng.errors import InvalidRequest, NotFound
from prodng.payload import deb, install
from prodng.storage import btrfs, pool, recipes, templates


@dataclass
class Context:
    paths: Paths
    progress: Callable[[str], None] = lambda line: None
    interactive: bool = False  # True on the CLI: verbs may use the terminal
    _pool_open: bool = field(default=False, repr=False)
    restarted: list[str] = field(default_factory=list)  # by the sweep when the pool was opened

    def pool(self) -> None:
        """Mount and lay out the pool on first use (idempotent, recovers after reboot)."""
        if not self._pool_open:
            pool.open_pool(self.paths, self.paths.settings.pool_size)
            templates.clean_stale_builds(self.paths)
            self._pool_open = True
            self.restarted = recovery.sweep(self.paths, restart=True)  # what killed commands and monitors left

    def pool_if_present(self) -> bool:
        if self.paths.pool_image.exists() or os.path.ismount(self.paths.pool) or self.paths.templates.is_dir():
            self.pool()
            return True
        return False


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError
    return raw


def _number_text(raw: object) -> str:
    # JSON numbers go through their text, so NaN and Infinity are refused like "nan" is;
    # JSON's true is no number (a bool is an int in Python).
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError
    return raw if isinstance(raw, str) else repr(raw)


def _flag(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).lower()  # a JSON 1 or 0 too
    if word not in TRUE | FALSE:
        raise ValueError
    return word in TRUE


def _words(raw: object) -> list[str]:
    return [_text(v) for v in (raw if isinstance(raw, list) else [raw])]


TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
STRINGS: dict[str, object] = {"type": "array", "items": {"type": "string"}}
PLAIN: dict[str, object] = {}  # argparse's default: one word, kept as text


class Kind(enum.Enum):
    """What a parameter holds, with all each face needs to know of it: its JSON schema
    (agent/openapi.py), its argparse options (cli.py), the converter of a REST value, query
    text or JSON (agent/app.py), and for numbers the one strict parser of a word, which
    refuses nan, inf, 1e400 and non-ASCII digits on the CLI and over REST alike."""

    STR = ({"type": "string"}, PLAIN, _text)
    INT = ({"type": "integer"}, PLAIN, _number_text, parse_int)
    FLOAT = ({"type": "number"}, PLAIN, _number_text, parse_number)
    BOOL = ({"type": "boolean"}, {"action": "store_true"}, _flag)
    LIST = (STRINGS, {"action": "append"}, _words)  # a positional list takes one or more words
    ARGV = ({**STRINGS, "minItems": 1}, {"nargs": "..."}, _words)  # a command line: the rest of the words

    def __init__(
        self,
        schema: dict[str, object],
        cli_options: dict[str, object],
        convert: Callable[[object], object],
        parse_word: Callable[[str, str], int | float] | None = None,
    ) -> None:
        self.schema = schema
        self.cli_options = cli_options
        self.convert = convert
        self.parse_word = parse_word

    @property
    def many(self) -> bool:
        """A list: repeated query keys gather, JSON gives an array, the CLI has none by default."""
        return self in (Kind.LIST, Kind.ARGV)

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Param:
    name: str
    help: str
    kind: Kind = Kind.STR
    positional: bool = False
    flags: tuple[str, ...] = ()
    default: object = None
    required: bool = False
    pattern: str = ""  # for the OpenAPI schema; the handler checks it anyway

    def parse(self, raw: object) -> object:
        """A CLI word or a REST value (query text or JSON) as this parameter's kind."""
        try:
            value = self.kind.convert(raw)
        except (ValueError, TypeError):
            raise InvalidRequest(f"{self.name} must be of type {self.kind}") from None
        if self.kind.parse_word and isinstance(value, str):
            return self.kind.parse_word(value, self.flags[-1] if self.flags else self.name)
        return value


class Output(enum.Enum):
    """How the CLI shows a verb's result; REST answers the same data as JSON."""

    FIELDS = "fields"  # a dict: a "key: value" line each
    TABLE = "table"  # a list of dicts: Verb.columns, else the first row's keys
    LINES = "lines"  # a list of strings
    NAME = "name"  # a dict: its name alone, for scripts (run)
    COMMAND = "command"  # a command's own output and its exit code as prodng's (exec)


@dataclass(frozen=True)
class Verb:
    """One operation. What the faces treat differently is said here, never by testing the name."""

    name: str
    help: str
    method: str
    handler: Callable[..., object]
    params: tuple[Param, ...] = ()
    columns: tuple[str, ...] = ()  # table columns for list results on the CLI
    stream: str = ""  # content type when the handler returns an iterator (REST streams it)
    output: Output = Output.FIELDS
    cacheable: bool = False  # REST may answer a repeated plain read from its cache (agent/app.py)
    progress: bool = False  # reports progress while it works: the CLI draws it on one terminal line

    @property
    def route(self) -> str:
        return "/prodng/" + self.name.replace(" ", "/")


def parse_param(param: Param, raw: object) -> object:
    """The one parser of each kind, for the CLI's words and REST's values alike."""
    return param.parse(raw)


NAME = Param("name", "container name", positional=True, required=True, pattern=state.NAME_RE.pattern)


# ---- handlers ----


def _template_build(ctx: Context, name: str, force: bool) -> dict[str, object]:
    ctx.pool()
    return templates.build(ctx.paths, name, ctx.progress, force=force).summary()


def _template_import(ctx: Context, name: str, source: str, force: bool) -> dict[str, object]:
    ctx.pool()
    return templates.import_root(ctx.paths, name, Path(source).absolute(), force=force).summary()


def _template_ls(ctx: Context) -> list[dict[str, object]]:
    if not ctx.pool_if_present():
        return []
    return [templates.info(ctx.paths, n).summary() for n in templates.names(ctx.paths)]


def _template_info(ctx: Context, name: str) -> dict[str, object]:
    ctx.pool()
    info = templates.info(ctx.paths, name)
    return {**info.summary(), "packages": info.packages}


def _template_rm(ctx: Context, name: str, force: bool) -> dict[str, object]:
    ctx.pool()
    templates.remove(ctx.paths, name, force=force)
    return {"name": name, "removed": True}


def _split_run_args(args: list[str]) -> tuple[str, list[str], str | None]:
    """TEMPLATE [PAYLOAD...] [NETMODE]: the seed's `prodng trusty my_service.deb dhcp`."""
    if not args:
        raise InvalidRequest("run needs a template", hint="prodng TEMPLATE [PAYLOAD] [NETMODE] --exec CMD")
    template, rest = args[0], list(args[1:])
    network = rest.pop() if rest and not rest[-1].endswith(".deb") else None
    return template, rest, network


def _record(
    ctx: Context,
    args: list[str],
    name: str | None,
    exec: str | None,
    env: list[str],
    bind: list[str],
    memory: str | None,
    pids: int | None,
    cpus: float | None,
    restart: str,
    workdir: str,
    net: str | None,
    publish: list[str],
) -> tuple[ContainerRecord, list[deb.Payload]]:
    """Check every argument of run/create; nothing is touched yet."""
    template, payload_files, positional_net = _split_run_args(args)
    recipes.check_name(template)  # before it becomes part of a generated container name
    payloads = [deb.inspect(f) for f in payload_files]  # all validated before anything is touched
    if not exec and not payloads:
        raise InvalidRequest("no service to run", hint="add --exec 'CMD ARGS' or a .deb payload")
    try:
        argv = tuple(shlex.split(exec)) if exec else ()
    except ValueError as err:
        raise InvalidRequest(f"malformed --exec: {err}") from None
    if exec and not argv:
        raise InvalidRequest("--exec is empty")
    policy, restart_max = validation.parse_restart(restart)
    if not workdir.startswith("/"):
        raise InvalidRequest(f"--workdir must be absolute, not {workdir!r}")
    limits = validation.check_limits(Limits(parse_size(memory) if memory else None, pids, cpus))
    name = state.check_name(name) if name is not None else validation.generate_name(ctx.paths, template)
    network, forwards = validation.check_network(ctx.paths.settings, name, net or positional_net or "none", publish)
    record = ContainerRecord(
        name=name,
        template=template,
        argv=argv,
        env=validation.parse_env(env),
        binds=validation.parse_binds(bind),
        limits=limits,
        restart=policy,
        restart_max=restart_max,
        network=network,
        forwards=forwards,
        workdir=workdir,
        payloads=tuple(p.path for p in payloads),
        explicit_exec=bool(exec),
    )
    return record, payloads


def _with_payloads(
    ctx: Context, record: ContainerRecord, payloads: list[deb.Payload]
) -> tuple[ContainerRecord, Path | None]:
    """Install the payloads (or reuse the cached install) and fill in the service they ship."""
    if not payloads:
        return record, None
    root = install.installed_root(ctx.paths, record.template, payloads, ctx.progress)
    labels = tuple(f"{p.package}={p.version}" for p in payloads)
    if record.explicit_exec:
        return replace(record, payloads=labels), root
    service = deb.find_service(root, payloads)
    uid, gid = deb.lookup_ids(root, service.user, service.group)
    workdir = record.workdir if record.workdir != "/" else service.workdir
    return replace(
        record,
        payloads=labels,
        argv=service.argv,
        unit_env=service.env,
        uid=uid,
        gid=gid,
        workdir=workdir,
        forking=service.forking,
        run_dirs=service.run_dirs,
    ), root


def _prepare(ctx: Context, arguments: dict[str, object], to_start: bool) -> ContainerRecord:
    """Validate, install the payloads if any, and create the container (not started)."""
    record, payloads = _record(ctx, **arguments)  # type: ignore[arg-type]
    ctx.pool()
    record, source = _with_payloads(ctx, record, payloads)
    return lifecycle.create(ctx.paths, record, source, to_start=to_start)


def _create(ctx: Context, **kw: object) -> dict[str, object]:
    return observe.describe(ctx.paths, _prepare(ctx, kw, to_start=False).name)


def _run(ctx: Context, **kw: object) -> dict[str, object]:
    record = _prepare(ctx, kw, to_start=True)
    faults.point("run.created")
    try:
        observed = lifecycle.start(ctx.paths, record.name)
    except BaseException:
        lifecycle.remove(ctx.paths, record.name, force=True)  # no half-made container
        raise
    try:
        return observe.describe(ctx.paths, record.name)
    except NotFound:  # a concurrent rm won after the start: the run still succeeded
        return observe.summarize(ctx.paths, record, observed)


def _upgrade(ctx: Context, name: str, payloads: list[str]) -> dict[str, object]:
    state.load(ctx.paths, name)
    checked = [deb.inspect(p) for p in payloads]  # nothing is touched for a bad package
    ctx.pool()

    def stage(current: ContainerRecord, staged: Path) -> ContainerRecord:
        # The user's --exec and -e stay; the unit's command and environment come from the new payloads.
        base = replace(current, argv=current.argv if current.explicit_exec else (), unit_env=())
        record, source = _with_payloads(ctx, base, checked)
        btrfs.snapshot(source or templates.require(ctx.paths, record.template), staged)
        return record

    upgrade.upgrade(ctx.paths, name, stage)
    return observe.describe(ctx.paths, name)


def _rollback(ctx: Context, name: str) -> dict[str, object]:
    ctx.pool()
    upgrade.rollback(ctx.paths, name)
    return observe.describe(ctx.paths, name)


def _start(ctx: Context, name: str) -> dict[str, object]:
    ctx.pool()
    lifecycle.start(ctx.paths, name)
    return observe.describe(ctx.paths, name)


def _stop(ctx: Context, name: str, timeout: float) -> dict[str, object]:
    lifecycle.stop(ctx.paths, name, timeout)
    return observe.describe(ctx.paths, name)


def parse_signal(text: str) -> int:
    raw = text.upper().removeprefix("SIG")
    if raw.isdigit() and 0 < int(raw) < signals.NSIG:
        return int(raw)
    try:
        return int(signals.Signals[f"SIG{raw}"])
    except KeyError:
        raise InvalidRequest(f"unknown signal {text!r}", hint="e.g. TERM, HUP, KILL or a number") from None


def _kill(ctx: Context, name: str, signal: str) -> dict[str, object]:
    lifecycle.kill(ctx.paths, name, parse_signal(signal))
    return observe.describe(ctx.paths, name)


def _freeze(ctx: Context, name: str) -> dict[str, object]:
    lifecycle.set_frozen(ctx.paths, name, True)
    return observe.describe(ctx.paths, name)


def _thaw(ctx: Context, name: str) -> dict[str, object]:
    lifecycle.set_frozen(ctx.paths, name, False)
    return observe.describe(ctx.paths, name)


def _rm(ctx: Context, name: str, force: bool) -> dict[str, object]:
    state.load(ctx.paths, name)
    ctx.pool()
    lifecycle.remove(ctx.paths, name, force=force)
    return {"name": name, "removed": True}


def _recover(ctx: Context) -> dict[str, object]:
    ctx.pool()  # opening the pool sweeps and restarts
    return {"started": ctx.restarted}


def _ls(ctx: Context) -> list[dict[str, object]]:
    return observe.list_all(ctx.paths)


def _info(ctx: Context, name: str) -> dict[str, object]:
    return observe.describe(ctx.paths, name, detail=True)


def _logs(ctx: Context, name: str, follow: bool, tail: int | None) -> Iterator[str | None] | list[str]:
    if tail is not None and tail < 0:
        raise InvalidRequest("--tail must not be negative")
    if follow:
        state.load(ctx.paths, name)
        return logs.follow_log(ctx.paths, name, tail)
    return logs.log_lines(ctx.paths, name, tail)


def _events(ctx: Context) -> Iterator[dict[str, object] | None]:
    from prodng.container import events

    return events.follow(ctx.paths)


def _query(ctx: Context, sql: str, timeout: float) -> list[dict[str, object]]:
    from prodng.inspect.query import run_query

    return run_query(ctx.paths, sql, timeout).rows


EXEC_OUTPUT_MAX = 1024 * 1024


def _exec(ctx: Context, name: str, command: list[str]) -> dict[str, object]:
    if ctx.interactive:  # the CLI hands the command its own terminal
        return {"name": name, "exit_code": enter.exec_in(ctx.paths, name, command)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "rb") as null:
        code = enter.exec_in(ctx.paths, name, command, (null.fileno(), out.fileno(), err.fileno()))
        captured = {}
        for label, f in (("stdout", out), ("stderr", err)):
            f.seek(0)
            captured[label] = f.read(EXEC_OUTPUT_MAX).decode(errors="replace")
    return {"name": name, "exit_code": code, **captured}


RUN_PARAMS = (
    Param("args", "TEMPLATE [PAYLOAD.deb...] [NETMODE]", kind=Kind.LIST, positional=True, required=True),
    Param("name", "container name (default: TEMPLATE-xxxxxx)", flags=("--name",)),
    Param("exec", "the service's command line", flags=("--exec",)),
    Param("env", "environment variable KEY=VALUE (repeatable)", kind=Kind.LIST, flags=("-e", "--env"), default=[]),
    Param(
        "bind",
        "bind HOST:CONTAINER[:ro|rw][,dev][,suid] (read-only, nosuid, nodev on every submount by default; repeatable)",
        kind=Kind.LIST,
        flags=("--bind",),
        default=[],
    ),
    Param("memory", "memory limit, e.g. 256M", flags=("--memory",)),
    Param("pids", "maximum number of processes", kind=Kind.INT, flags=("--pids",)),
    Param("cpus", "CPU limit in cores, e.g. 0.5", kind=Kind.FLOAT, flags=("--cpus",)),
    Param("restart", "no, on-failure[:N] or always", flags=("--restart",), default="no"),
    Param("workdir", "working directory inside the container", flags=("--workdir",), default="/"),
    Param("net", "network mode: none, host, dhcp or static:ADDR/LEN[,gw=ADDR]", flags=("--net",)),
    Param(
        "publish",
        "forward a host port: HOSTPORT:CONTAINERPORT[/tcp|udp] (repeatable; dhcp and static)",
        kind=Kind.LIST,
        flags=("-p", "--publish"),
        default=[],
    ),
)
FORCE = Param("force", "even if in use / running", kind=Kind.BOOL, flags=("-f", "--force"), default=False)
LS_COLUMNS = ("name", "state", "template", "pid", "network", "ip", "restarts", "command")

VERBS: tuple[Verb, ...] = (
    Verb("run", "create and start a container", "POST", _run, RUN_PARAMS, output=Output.NAME),
    Verb("create", "create a container without starting it", "POST", _create, RUN_PARAMS),
    Verb("start", "start a created or exited container", "POST", _start, (NAME,)),
    Verb(
        "upgrade",
        "install new .debs beside the running root and switch the service over",
        "POST",
        _upgrade,
        (NAME, Param("payloads", "the new .deb files", kind=Kind.LIST, positional=True, required=True)),
    ),
    Verb("rollback", "return to the root and service before the last upgrade", "POST", _rollback, (NAME,)),
    Verb(
        "stop",
        "stop: TERM, then KILL after the timeout",
        "POST",
        _stop,
        (NAME, Param("timeout", "seconds before KILL", kind=Kind.FLOAT, flags=("-t", "--timeout"), default=10.0)),
    ),
    Verb(
        "kill",
        "send a signal (default KILL: the container stops for good)",
        "POST",
        _kill,
        (NAME, Param("signal", "signal name or number", flags=("-s", "--signal"), default="KILL")),
    ),
    Verb("freeze", "freeze every process of a container", "POST", _freeze, (NAME,)),
    Verb("thaw", "thaw a frozen container", "POST", _thaw, (NAME,)),
    Verb("rm", "remove a container and its root", "POST", _rm, (NAME, FORCE)),
    Verb(
        "recover",
        "repair what killed commands left; start restartable containers a reboot or a killed monitor took down",
        "POST",
        _recover,
    ),
    Verb("ls", "list containers", "GET", _ls, (), LS_COLUMNS, output=Output.TABLE, cacheable=True),
    Verb("info", "show one container in detail", "GET", _info, (NAME,)),
    Verb(
        "logs",
        "show a container's output",
        "GET",
        _logs,
        (
            NAME,
            Param("follow", "keep printing new output", kind=Kind.BOOL, flags=("-f", "--follow"), default=False),
            Param("tail", "only the last N lines", kind=Kind.INT, flags=("--tail",)),
        ),
        stream="text/plain",
        output=Output.LINES,
    ),
    Verb(
        "exec",
        "run a command inside a running container",
        "POST",
        _exec,
        (NAME, Param("command", "CMD ARGS...", kind=Kind.ARGV, positional=True, required=True)),
        output=Output.COMMAND,
    ),
    Verb(
        "events",
        "follow lifecycle events (created, started, died, restarted, frozen, thawed, removed)",
        "GET",
        _events,
        stream="text/event-stream",
    ),
    Verb(
        "query",
        "read-only SQL over the prodng_* tables",
        "GET",
        _query,
        (
            Param("sql", "a SELECT statement", positional=True, required=True),
            Param(
                "timeout", "seconds before the query is stopped", kind=Kind.FLOAT, flags=("--timeout",), default=10.0
            ),
        ),
        output=Output.TABLE,
    ),
    Verb(
        "template build",
        "debootstrap a template from its recipe",
        "POST",
        _template_build,
        (Param("name", "template name", positional=True, required=True), FORCE),
        progress=True,
    ),
    Verb(
        "template import",
        "make a template from a root directory or a tar archive",
        "POST",
        _template_import,
        (
            Param("name", "template name", positional=True, required=True, pattern=f"^{recipes.NAME_RE.pattern}$"),
            Param(
                "source",
                "a directory or a tar archive (.tar, .tar.gz, .tar.xz, .tar.bz2) holding the root",
                positional=True,
                required=True,
            ),
            Param("force", "replace a template of that name", kind=Kind.BOOL, flags=("-f", "--force"), default=False),
        ),
    ),
    Verb(
        "template ls",
        "list built templates",
        "GET",
        _template_ls,
        (),
        ("name", "suite", "variant", "package_count", "used_by"),
        output=Output.TABLE,
    ),
    Verb(
        "template info",
        "show a template and its packages",
        "GET",
        _template_info,
        (Param("name", "template name", positional=True, required=True),),
    ),
    Verb(
        "template rm",
        "remove a template (refused while containers use it)",
        "POST",
        _template_rm,
        (Param("name", "template name", positional=True, required=True), FORCE),
    ),
)

BY_NAME = {v.name: v for v in VERBS}


def context(
    root: str | None = None, progress: Callable[[str], None] | None = None, interactive: bool = False
) -> Context:
    from prodng.config import open_root

    return Context(open_root(root), progress or (lambda line: None), interactive)


def call(verb: Verb, ctx: Context, values: dict[str, object]) -> object:
    return verb.handler(ctx, **values)
