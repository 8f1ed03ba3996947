"""run, create and upgrade: check every argument, install the payloads, make the container."""

from __future__ import annotations

import shlex
from pathlib import Path

from prodng import faults
from prodng.config import parse_size
from prodng.container import lifecycle, observe, services, state, validation
from prodng.container.state import ContainerRecord, Limits
from prodng.container.upgrade import upgrade as upgrade_container
from prodng.errors import InvalidRequest, NotFound
from prodng.frozen import replace
from prodng.payload import deb, install, plan
from prodng.storage import btrfs, recipes, templates
from prodng.verbs import Context


def _split_run_args(args: list[str]) -> tuple[str, list[str], str | None]:
    """TEMPLATE [PAYLOAD...] [NETMODE]: the seed's `prodng trusty my_service.deb dhcp`."""
    if not args:
        raise InvalidRequest("run needs a template", hint="prodng TEMPLATE [PAYLOAD] [NETMODE] --exec CMD")
    template, rest = args[0], list(args[1:])
    network = rest.pop() if rest and not rest[-1].endswith(".deb") else None
    return template, rest, network


def _exec_argv(exec: str | None, payload_files: list[str]) -> tuple[str, ...]:
    """--exec as words; without it, a payload must say what to run."""
    if not exec and not payload_files:
        raise InvalidRequest("no service to run", hint="add --exec 'CMD ARGS' or a .deb payload")
    try:
        argv = tuple(shlex.split(exec)) if exec else ()
    except ValueError as err:
        raise InvalidRequest(f"malformed --exec: {err}") from None
    if exec and not argv:
        raise InvalidRequest("--exec is empty")
    return argv


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
    disk: str | None,
    tmpfs_size: str | None,
    restart: str,
    workdir: str,
    net: str | None,
    publish: list[str],
    nat: bool,
    unit: list[str],
    no_recommends: bool,
) -> tuple[ContainerRecord, list[deb.Payload]]:
    """Check every argument of run/create; nothing is touched yet. (Its signature is the verbs'
    parameters, one per line, as the verb table hands them over; the body is some 35 lines.)"""
    template, payload_files, positional_net = _split_run_args(args)
    recipes.check_name(template)  # before it becomes part of a generated container name
    argv = _exec_argv(exec, payload_files)
    policy, restart_max = validation.parse_restart(restart)
    if not workdir.startswith("/"):
        raise InvalidRequest(f"--workdir must be absolute, not {workdir!r}")
    sizes = [parse_size(text) if text else None for text in (memory, disk, tmpfs_size)]
    asked = Limits(memory=sizes[0], pids=pids, cpus=cpus, disk=sizes[1], tmpfs_size=sizes[2])
    limits = validation.with_defaults(validation.check_limits(asked), ctx.paths.settings)
    payloads = [deb.inspect(f, limits.disk) for f in payload_files]  # all validated before anything is touched
    deb.check_unpacked_size(payloads, limits.disk)
    name = state.check_name(name) if name is not None else validation.generate_name(ctx.paths, template)
    mode = net or positional_net or "none"
    network, forwards = validation.check_network(ctx.paths.settings, name, mode, publish, nat)
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
        nat=nat,
        workdir=workdir,
        payloads=tuple(p.path for p in payloads),
        explicit_exec=bool(exec),
        units=tuple(plan.unit_name(u) for u in unit),
        recommends=not no_recommends,
    )
    if record.units and (exec or not payloads):
        raise InvalidRequest("--unit picks units of a .deb payload; it does not go with --exec")
    return record, payloads


def _with_payloads(
    ctx: Context, record: ContainerRecord, payloads: list[deb.Payload]
) -> tuple[ContainerRecord, Path | None]:
    """Install the payloads (or reuse the cached install) and fill in the service they ship."""
    if not payloads:
        return record, None
    root = install.installed_root(ctx.paths, record.template, payloads, ctx.progress, record.limits, record.recommends)
    labels = tuple(f"{p.package}={p.version}" for p in payloads)
    if record.explicit_exec:
        return replace(record, payloads=labels), root
    exec_field = next((p.exec_field for p in payloads if p.exec_field), "")
    if exec_field:  # X-Prodng-Exec: the package says what to run
        return replace(record, payloads=labels, argv=tuple(shlex.split(exec_field)), units=()), root
    record = replace(record, payloads=labels, argv=())
    compiled = services.compile_for(ctx.paths, record, root)  # every unit checked before anything is created
    if not compiled.services:
        names = ", ".join(p.package for p in payloads)
        raise InvalidRequest(
            f"{names}: no service to run (no unit is enabled for multi-user.target)",
            hint="pass --unit NAME or --exec CMD, or add an X-Prodng-Exec control field",
        )
    return record, root


def _prepare(ctx: Context, arguments: dict[str, object], to_start: bool) -> ContainerRecord:
    """Validate, install the payloads if any, and create the container (not started)."""
    record, payloads = _record(ctx, **arguments)  # type: ignore[arg-type]
    ctx.pool()
    record, source = _with_payloads(ctx, record, payloads)
    return lifecycle.create(ctx.paths, record, source, to_start=to_start)


def create(ctx: Context, **kw: object) -> dict[str, object]:
    return observe.describe(ctx.paths, _prepare(ctx, kw, to_start=False).name)


def run(ctx: Context, **kw: object) -> dict[str, object]:
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


def upgrade(ctx: Context, name: str, payloads: list[str]) -> dict[str, object]:
    disk = state.load(ctx.paths, name).limits.disk
    checked = [deb.inspect(p, disk) for p in payloads]  # nothing is touched for a bad package
    deb.check_unpacked_size(checked, disk)
    ctx.pool()

    def stage(current: ContainerRecord, staged: Path) -> ContainerRecord:
        # The user's --exec and -e stay; the unit's command and environment come from the new payloads.
        base = replace(
            current,
            argv=current.argv if current.explicit_exec else (),
            unit_env=(),
            uid=0,
            gid=0,
            forking=False,
            run_dirs=(),
        )
        record, source = _with_payloads(ctx, base, checked)
        btrfs.snapshot(source or templates.require(ctx.paths, record.template), staged)
        return record

    upgrade_container(ctx.paths, name, stage)
    return observe.describe(ctx.paths, name)
