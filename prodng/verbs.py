"""The verb table: every operation declared once.

Each entry gives the CLI subcommand (prodng/cli.py), the REST route (/prodng/<verb>, GET
for reads, POST for changes; agent/app.py) and the OpenAPI entry (agent/openapi.py), so
they cannot drift. A handler (prodng/handlers/) takes a Context and keyword arguments and
returns JSON-serialisable data; the table names it as "module:function" and imports it
when the verb runs, so the CLI starts without importing what other verbs need.
"""

from __future__ import annotations

import enum
import functools
import importlib
import os
from collections.abc import Callable

from prodng.config import Paths, open_root
from prodng.container import state
from prodng.frozen import frozen
from prodng.params import Kind, Param
from prodng.storage import recipes


class Context:
    """What a handler runs with: the root, how to report progress, and the pool once opened."""

    def __init__(
        self,
        paths: Paths,
        progress: Callable[[str], None] | None = None,
        interactive: bool = False,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.paths = paths
        self.progress = progress or (lambda line: None)
        self.interactive = interactive  # True on the CLI: verbs may use the terminal
        self.cancelled = cancelled  # true once the agent is stopping: calls in flight end
        self._pool_open = False
        self.restarted: list[str] = []  # by the sweep when the pool was opened

    def pool(self) -> None:
        """Mount and lay out the pool on first use (idempotent, recovers after reboot)."""
        if not self._pool_open:
            from prodng.container import recovery  # btrfsutil and debian: only verbs that need the pool
            from prodng.payload import install
            from prodng.storage import pool, templates

            pool.open_pool(self.paths, self.paths.settings.pool_size)
            templates.clean_stale_builds(self.paths)
            install.sweep_orphans(self.paths)  # installs whose caller was killed: jobs, cgroups, snapshots
            self._pool_open = True
            self.restarted = recovery.sweep(self.paths, restart=True)  # what killed commands and monitors left

    def pool_if_present(self) -> bool:
        if self.paths.pool_image.exists() or os.path.ismount(self.paths.pool) or self.paths.templates.is_dir():
            self.pool()
            return True
        return False


class Output(enum.Enum):
    """How the CLI shows a verb's result; REST answers the same data as JSON."""

    FIELDS = "fields"  # a dict: a "key: value" line each
    TABLE = "table"  # a list of dicts: Verb.columns, else the first row's keys
    LINES = "lines"  # a list of strings
    NAME = "name"  # a dict: its name alone, for scripts (run)
    LOG = "log"  # a list (or stream) of {"source", "line"} records (prodng/container/logs.py)
    COMMAND = "command"  # a command's own output and its exit code as prodng's (exec)


@frozen
class Verb:
    """One operation. What the faces treat differently is said here, never by testing the name."""

    name: str
    help: str
    method: str
    handler: str  # "module:function", imported when the verb runs (see handler_function)
    params: tuple[Param, ...] = ()
    columns: tuple[str, ...] = ()  # table columns for list results on the CLI
    stream: str = ""  # content type when the handler returns an iterator (REST streams it)
    output: Output = Output.FIELDS
    cacheable: bool = False  # REST may answer a repeated plain read from its cache (agent/app.py)
    progress: bool = False  # reports progress while it works: the CLI draws it on one terminal line
    # The pool is opened (mounted, laid out, swept) before the handler runs. Verbs that check
    # their input first (run, create, upgrade, rm) or only read a pool if there is one
    # (template ls, pool) open it themselves, through the Context.
    needs_pool: bool = False
    slow: bool = False  # may take seconds to minutes (installs, a command's run): REST runs it apart from the rest

    @property
    def route(self) -> str:
        return "/prodng/" + self.name.replace(" ", "/")

    def handler_function(self) -> Callable[..., object]:
        return _resolve(self.handler)


@functools.cache
def _resolve(reference: str) -> Callable[..., object]:
    module, _, function = reference.partition(":")
    handler: Callable[..., object] = getattr(importlib.import_module(module), function)
    return handler


NAME = Param("name", "container name", positional=True, required=True, pattern=state.NAME_RE.pattern)


RUN_PARAMS = (
    Param("args", "TEMPLATE [PAYLOAD.deb...] [NETMODE]", kind=Kind.LIST, positional=True, required=True),
    Param("name", "container name (default: TEMPLATE-xxxxxx)", flags=("--name",)),
    Param("exec", "the service's command line", flags=("--exec",)),
    Param("env", "environment variable KEY=VALUE (repeatable)", kind=Kind.LIST, flags=("-e", "--env"), default=[]),
    Param(
        "bind",
        "bind HOST:CONTAINER[:ro|rw][,dev][,suid][,owner=USER] (read-only, nosuid, nodev on every submount "
        "by default; owner=USER: the host owner's files are USER's inside; repeatable)",
        kind=Kind.LIST,
        flags=("--bind",),
        default=[],
    ),
    Param("memory", "memory limit, e.g. 256M", flags=("--memory",)),
    Param("pids", "maximum number of processes", kind=Kind.INT, flags=("--pids",)),
    Param("cpus", "CPU limit in cores, e.g. 0.5", kind=Kind.FLOAT, flags=("--cpus",)),
    Param("disk", "disk quota of the container's root, e.g. 2G (btrfs qgroup)", flags=("--disk",)),
    Param("tmpfs_size", "size of /run, /tmp, /dev/shm inside, e.g. 64M", flags=("--tmpfs-size",)),
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
    Param(
        "nat",
        "reach beyond the bridge, masqueraded as the host (dhcp and static; setting nat=true: every container)",
        kind=Kind.BOOL,
        flags=("--nat",),
        default=False,
    ),
    Param(
        "unit",
        "start this unit of the payloads (repeatable; default: what systemd starts at boot)",
        kind=Kind.LIST,
        flags=("--unit",),
        default=[],
    ),
    Param(
        "no_recommends",
        "install the payloads without their Recommends",
        kind=Kind.BOOL,
        flags=("--no-recommends",),
        default=False,
    ),
)
STOP_TIMEOUT = Param("timeout", "seconds before KILL", kind=Kind.FLOAT, flags=("-t", "--timeout"), default=10.0)
FORCE = Param("force", "even if in use / running", kind=Kind.BOOL, flags=("-f", "--force"), default=False)
LS_COLUMNS = ("name", "state", "template", "pid", "network", "ip", "restarts", "units", "limits", "command")

VERBS: tuple[Verb, ...] = (
    Verb(
        "run",
        "create and start a container",
        "POST",
        "prodng.handlers.create:run",
        RUN_PARAMS,
        output=Output.NAME,
        slow=True,
    ),
    Verb(
        "create",
        "create a container without starting it",
        "POST",
        "prodng.handlers.create:create",
        RUN_PARAMS,
        slow=True,
    ),
    Verb(
        "start",
        "start a created or exited container",
        "POST",
        "prodng.handlers.control:start",
        (NAME,),
        needs_pool=True,
    ),
    Verb(
        "upgrade",
        "install new .debs beside the running root and switch the service over",
        "POST",
        "prodng.handlers.create:upgrade",
        (NAME, Param("payloads", "the new .deb files", kind=Kind.LIST, positional=True, required=True)),
        slow=True,
    ),
    Verb(
        "rollback",
        "return to the root and service before the last upgrade",
        "POST",
        "prodng.handlers.control:rollback",
        (NAME,),
        slow=True,
        needs_pool=True,
    ),
    Verb(
        "stop",
        "stop: TERM, then KILL after the timeout",
        "POST",
        "prodng.handlers.control:stop",
        (NAME, STOP_TIMEOUT),
    ),
    Verb(
        "restart",
        "stop (as stop does), then start again and wait for every unit",
        "POST",
        "prodng.handlers.control:restart",
        (NAME, STOP_TIMEOUT),
        needs_pool=True,
    ),
    Verb(
        "reload",
        "reload every unit: its ExecReload=, or SIGHUP to its main process",
        "POST",
        "prodng.handlers.control:reload",
        (NAME,),
    ),
    Verb(
        "kill",
        "send a signal (default KILL: the container stops for good)",
        "POST",
        "prodng.handlers.control:kill",
        (NAME, Param("signal", "signal name or number", flags=("-s", "--signal"), default="KILL")),
    ),
    Verb("freeze", "freeze every process of a container", "POST", "prodng.handlers.freezer:freeze", (NAME,)),
    Verb("thaw", "thaw a frozen container", "POST", "prodng.handlers.freezer:thaw", (NAME,)),
    Verb("rm", "remove a container and its root", "POST", "prodng.handlers.control:rm", (NAME, FORCE)),
    Verb(
        "recover",
        "repair what killed commands left; start restartable containers a reboot or a killed monitor took down",
        "POST",
        "prodng.handlers.control:recover",
        slow=True,
        needs_pool=True,
    ),
    Verb(
        "ls", "list containers", "GET", "prodng.handlers.read:ls", (), LS_COLUMNS, output=Output.TABLE, cacheable=True
    ),
    Verb("info", "show one container in detail", "GET", "prodng.handlers.read:info", (NAME,)),
    Verb(
        "pool",
        "the pool's size, use and free space, and each template's, install's and container's use",
        "GET",
        "prodng.handlers.read:pool",
        columns=("kind", "name", "used", "limit", "free"),
        output=Output.TABLE,
    ),
    Verb(
        "logs",
        "show a container's output",
        "GET",
        "prodng.handlers.read:logs",
        (
            NAME,
            Param("follow", "keep printing new output", kind=Kind.BOOL, flags=("-f", "--follow"), default=False),
            Param("tail", "only the last N lines", kind=Kind.INT, flags=("--tail",)),
        ),
        stream="application/x-ndjson",
        output=Output.LOG,
    ),
    Verb(
        "exec",
        "run a command inside a running container",
        "POST",
        "prodng.handlers.control:exec",
        (
            NAME,
            Param("command", "CMD ARGS...", kind=Kind.ARGV, positional=True, required=True),
            Param(
                "tty", "a terminal (a pty of the container's own)", kind=Kind.BOOL, flags=("-t", "--tty"), default=False
            ),
            Param(
                "interactive", "pass stdin to the command", kind=Kind.BOOL, flags=("-i", "--interactive"), default=False
            ),
            Param("user", "UID[:GID] to run as (default: the service's)", flags=("-u", "--user")),
            Param(
                "timeout",
                "seconds before the command gets TERM and the call ends with 124 (0: none on the CLI, 600 over REST)",
                kind=Kind.FLOAT,
                flags=("--timeout",),
                default=0.0,
            ),
        ),
        output=Output.COMMAND,
        slow=True,
    ),
    Verb(
        "events",
        "follow lifecycle events (created, started, died, restarted, frozen, thawed, removed)",
        "GET",
        "prodng.handlers.read:events",
        stream="text/event-stream",
    ),
    Verb(
        "query",
        "read-only SQL over the prodng_* tables",
        "GET",
        "prodng.handlers.read:query",
        (
            Param("sql", "a SELECT statement", positional=True, required=True),
            Param(
                "timeout", "seconds before the query is stopped", kind=Kind.FLOAT, flags=("--timeout",), default=10.0
            ),
        ),
        output=Output.TABLE,
        slow=True,
    ),
    Verb(
        "template build",
        "debootstrap a template from its recipe",
        "POST",
        "prodng.handlers.template:template_build",
        (Param("name", "template name", positional=True, required=True), FORCE),
        progress=True,
        slow=True,
        needs_pool=True,
    ),
    Verb(
        "template import",
        "make a template from a root directory or a tar archive",
        "POST",
        "prodng.handlers.template:template_import",
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
        slow=True,
        needs_pool=True,
    ),
    Verb(
        "template ls",
        "list built templates",
        "GET",
        "prodng.handlers.template:template_ls",
        (),
        ("name", "suite", "variant", "package_count", "used_by"),
        output=Output.TABLE,
    ),
    Verb(
        "template info",
        "show a template and its packages",
        "GET",
        "prodng.handlers.template:template_info",
        (Param("name", "template name", positional=True, required=True),),
        needs_pool=True,
    ),
    Verb(
        "template rm",
        "remove a template (refused while containers use it)",
        "POST",
        "prodng.handlers.template:template_rm",
        (Param("name", "template name", positional=True, required=True), FORCE),
        needs_pool=True,
    ),
    Verb(
        "prune",
        "delete the cache of installed payloads (runs install again when needed)",
        "POST",
        "prodng.handlers.template:prune",
        needs_pool=True,
    ),
)

BY_NAME = {v.name: v for v in VERBS}


def context(
    root: str | None = None, progress: Callable[[str], None] | None = None, interactive: bool = False
) -> Context:
    return Context(open_root(root), progress, interactive)


def call(verb: Verb, ctx: Context, values: dict[str, object]) -> object:
    handler = verb.handler_function()
    if verb.needs_pool:
        ctx.pool()
    return handler(ctx, **values)
