"""Install payloads into a root, inside a sandbox, and cache the result.

apt runs in the snapshot's own namespaces (reduced capabilities without
CAP_MKNOD, a device allow-list in the cgroup, seccomp, no_new_privs), so
maintainer scripts never run on the host, see only the container's root
(symlinks such as `etc -> /etc` resolve inside it) and cannot start daemons
(policy-rc.d). Packages are downloaded first by apt alone (the only phase with
the host's network), then installed with no network at all. The host's dpkg
database is never opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prodng import locks
from prodng.config import Paths
from prodng.container import cgroups, enter, validation
from prodng.container.lifecycle import spawn_monitor
from prodng.container.state import Bind, ContainerRecord, Limits
from prodng.errors import POOL_FULL_HINT, InvalidRequest, SystemFailure
from prodng.frozen import replace
from prodng.network.modes import Mode
from prodng.payload import aptrelay
from prodng.payload.deb import Payload
from prodng.storage import btrfs, inroot, quota, templates

PAYLOAD_DIR = "/var/lib/prodng-payloads"
MARKER = ".prodng-install.json"
INSTALL_TIMEOUT = 1200.0
POLICY_RC_D = "usr/sbin/policy-rc.d"
APT_ENV = ("DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none")
# Two jobs in the same snapshot. The first runs apt only: it fetches the lists and every .deb the payloads
# need into /var/cache/apt/archives (--download-only runs no maintainer script), through the relay
# (prodng/payload/aptrelay.py), its only way out: {proxy} points apt at it, over any apt.conf of the template.
# An update that cannot reach a mirror is no failure by itself: payloads without dependencies install
# from what the root has, and a missing dependency fails the download with apt's own message.
# Recommends come too (as apt installs them by default: unbound's root key is one) unless the caller
# says --no-recommends; {flags} is where that goes.
DOWNLOAD = "apt-get{proxy} update -qq; apt-get{proxy} install -y -q --download-only{flags} " + f"{PAYLOAD_DIR}/*.deb"
PROXY = " -o Acquire::http::Proxy=http://127.0.0.1:{port}/ -o Acquire::https::Proxy=http://127.0.0.1:{port}/"
# The second runs the package code (preinst, postinst, triggers) in a network namespace of its own with
# nothing but loopback, from the cache. apt's binary caches are rebuilt first: the first apt's hold the
# local payloads as fetched, under a relative name dpkg cannot install ("Pathname to install is not
# absolute"). --no-download is left out for the same reason; there is no network to download from.
INSTALL = (
    "rm -f /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin"
    " && apt-get install -y -q{flags} " + f"{PAYLOAD_DIR}/*.deb && apt-get clean"
)
CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]*@")  # http://user:password@host/ -> http://host/
# What scripts print when a limit of the job stops them (dash says "Cannot fork" at its pids limit).
# apt and dpkg are prodng's tools, not the service: a --memory 64M --pids 32 that suits the service
# (the README's demo) must not fail its install. An install job gets at least this much.
JOB_FLOOR = Limits(memory=256 * 1024**2, pids=64)


def _job_limits(limits: Limits) -> Limits:
    def at_least(value: int | None, floor: int | None) -> int | None:
        return value if value is None or floor is None else max(value, floor)

    return replace(limits, memory=at_least(limits.memory, JOB_FLOOR.memory), pids=at_least(limits.pids, JOB_FLOOR.pids))


LIMIT_ERRORS = (
    "Disk quota exceeded",
    "No space left on device",
    "Cannot allocate memory",
    "Resource temporarily",
    "Cannot fork",
    "out of memory: ",  # enter.run_job's line when the job's memory cgroup killed a process
)


def cache_dir(paths: Paths) -> Path:
    return paths.pool / "cache"


def cache_key(paths: Paths, template: str, payloads: list[Payload], recommends: bool = True) -> str:
    built = json.loads(inroot.read_text(paths.template_root(template), templates.METADATA))["built"]
    material = json.dumps([template, built, sorted(p.sha256 for p in payloads)] + ([] if recommends else ["norec"]))
    return hashlib.sha256(material.encode()).hexdigest()[:20]


def _apt_reads(name: str) -> bool:
    """A file of sources.list.d that apt reads (apt skips other names: *.save, *.disabled, ...)."""
    return re.fullmatch(r"[A-Za-z0-9_.-]+\.(list|sources)", name) is not None


def _host_sources(paths: Paths, template: str, copies: Path, *, credentials: bool) -> tuple[Bind, ...]:
    """The host's apt sources (updates, security) for the install, when the template is of the host's
    own release: copies of the files apt reads, bound read-only, so nothing of them stays in the root
    and nothing else of the host's /etc/apt is in reach. The phase that runs package code gets them
    without the user:password of any URI (apt needs the URIs to find its lists; the secrets only to
    download, which that phase does not do): a hostile postinst reads no private repository's token."""
    meta = json.loads(inroot.read_text(paths.template_root(template), templates.METADATA))
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if f"VERSION_CODENAME={meta['suite']}" not in os_release.split():
        return ()
    host_list, host_parts = Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")
    wanted = [(host_list, copies / "sources.list")] if host_list.is_file() else []
    if host_parts.is_dir():
        parts = sorted(p for p in host_parts.iterdir() if _apt_reads(p.name) and p.is_file())
        wanted += [(p, copies / "sources.list.d" / p.name) for p in parts]
    (copies / "sources.list.d").mkdir(parents=True, exist_ok=True)
    for source, copy in wanted:
        text = source.read_text(errors="replace")
        copy.write_text(text if credentials else CREDENTIALS.sub(r"\1", text))
        copy.chmod(0o644)
    binds = [_bind(copies / "sources.list", str(host_list))] if host_list.is_file() else []
    return (*binds, *([_bind(copies / "sources.list.d", str(host_parts))] if host_parts.is_dir() else []))


def _bind(source: Path, target: str) -> Bind:
    """A read-only bind of the install; by its real path, as the init takes a bind's source."""
    return Bind(os.path.realpath(source), target)


def _relay(paths: Paths, template: str, host_sources: Path) -> aptrelay.Relay:
    """The download job's relay: to the hosts of the host's sources (copies in host_sources, which may
    name a local cache on 127.0.0.1), of the template's own sources and of its recipe's mirror."""
    local: set[aptrelay.Destination] = set()
    for copy in sorted(host_sources.rglob("*")):
        if copy.is_file():
            local |= aptrelay.destinations(copy.read_text(errors="replace"))
    root = paths.template_root(template)
    texts = [json.loads(inroot.read_text(root, templates.METADATA)).get("mirror", "")]
    try:
        names = [f"etc/apt/sources.list.d/{n}" for n in inroot.listdir(root, "etc/apt/sources.list.d") if _apt_reads(n)]
    except OSError:
        names = []
    for name in ["etc/apt/sources.list", *names]:
        try:
            texts.append(inroot.read_text(root, name))
        except OSError:
            continue
    own = set().union(*(aptrelay.destinations(text) for text in texts))
    return aptrelay.Relay(local | own, local)


def _failure(log: str) -> str:
    """The most telling line of apt's output: a limit the job hit (its quota, its memory) beats
    dpkg's own reason, which beats apt's summary."""
    lines = [line.strip() for line in log.splitlines() if line.strip() and not line.startswith("prodng:")]
    limits = [line for line in lines if any(why in line for why in LIMIT_ERRORS)]
    if limits:
        return limits[-1]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("dpkg: error processing"):
            return lines[index + 1]
    errors = [line for line in lines if line.startswith(("E:", "dpkg:"))]
    return (errors or lines or ["no output"])[-1]


def _clean_up_after_install(work: Path, names: str) -> None:
    """Remove what the install needed; a package that replaced usr/sbin (or a parent) with a symlink
    moved our policy-rc.d away with it, and nothing outside the root is touched (inroot)."""
    inroot.unlink(work, POLICY_RC_D, missing_ok=True)
    try:
        inroot.rmdir(work, PAYLOAD_DIR)
    except OSError as err:
        raise InvalidRequest(f"{names}: the install left {PAYLOAD_DIR} changed ({err.strerror})") from None


def _run_phase(
    paths: Paths,
    job: ContainerRecord,
    work: Path,
    directory: Path,
    names: str,
    start: Callable[[Path], None] = spawn_monitor,
) -> None:
    code, log = enter.run_job(paths, job, work, directory, INSTALL_TIMEOUT, start)
    if code != 0:
        why = _failure(log)
        if "No space left on device" in why:  # the host's pool, not the package: exit 5 and what to do
            raise SystemFailure(f"{names}: install failed: {why}", hint=POOL_FULL_HINT)
        raise InvalidRequest(f"{names}: install failed: {why}")


def _lock(paths: Paths, key: str) -> Path:
    return paths.locks / f"install-{key}.lock"


def sweep_orphans(paths: Paths) -> list[str]:
    """What installs killed with their caller left: the job (its processes and cgroups), its
    directories and the half-built snapshot. A held install lock means a live install: kept."""
    swept = []
    jobs = paths.state / ".jobs"
    for directory in sorted(jobs.iterdir()) if jobs.is_dir() else []:
        if locks.is_held(_lock(paths, directory.name.rsplit("-", 1)[0])):
            continue
        listed = directory / "cgroups"
        groups = tuple(listed.read_text().split()) if listed.exists() else ()
        cgroups.kill_all(groups)
        cgroups.remove(groups)
        shutil.rmtree(directory, ignore_errors=True)
        swept.append(directory.name)
    for build in sorted(cache_dir(paths).glob(".build-*")):
        if not locks.is_held(_lock(paths, build.name.removeprefix(".build-").rsplit("-", 1)[0])):
            btrfs.delete_subvolume(build)
            swept.append(build.name)
    return swept


def prune(paths: Paths, template: str | None = None) -> list[str]:
    """Delete cached installs (all, or those made from one template); an install being built
    keeps its entry. Containers are snapshots of their own: none depends on the cache."""
    removed = []
    for entry in sorted(cache_dir(paths).iterdir()) if cache_dir(paths).is_dir() else []:
        if entry.name.startswith(".") or locks.is_held(_lock(paths, entry.name)):
            continue
        if template is not None:
            try:
                made_from = json.loads(inroot.read_text(entry, MARKER)).get("template")
            except Exception:  # no or a broken marker: not a finished install of this template
                made_from = None
            if made_from != template:
                continue
        btrfs.delete_subvolume(entry)
        removed.append(entry.name)
    return removed


def installed_root(
    paths: Paths,
    template: str,
    payloads: list[Payload],
    progress: Callable[[str], None],
    limits: Limits | None = None,
    recommends: bool = True,
) -> Path:
    """A read-only root with the payloads installed: from the cache, or built now.

    The install job runs under the container's limits (pids, memory, cpus, tmpfs; the host's defaults
    where it has none), raised to what apt and dpkg themselves need (JOB_FLOOR), and its snapshot
    under the container's disk quota, so maintainer scripts can take little more than the service
    they install could."""
    template_root = templates.require(paths, template)
    key = cache_key(paths, template, payloads, recommends)
    cached = cache_dir(paths) / key
    cache_dir(paths).mkdir(exist_ok=True)
    names = ", ".join(p.package for p in payloads)
    with locks.hold(_lock(paths, key), what=f"the install of {names}"):
        if inroot.is_file(cached, MARKER):
            progress(f"reusing the cached install of {names}")
            return cached
        for stale in cache_dir(paths).glob(f".build-{key}-*"):
            btrfs.delete_subvolume(stale)
        work = cache_dir(paths) / f".build-{key}-{os.getpid()}"
        limits = _job_limits(validation.with_defaults(limits or Limits(), paths.settings))
        with _job_directories(paths, key) as jobs, btrfs.staged(work, cached, source=template_root):
            quota.apply(paths.pool, work, limits.disk)
            _stage_payloads(payloads, jobs.payloads)
            inroot.write_text(
                work, POLICY_RC_D, "#!/bin/sh\n# prodng: no daemon starts during install\nexit 101\n", 0o755
            )
            progress(f"installing {names} with dependencies into a sandboxed snapshot of {template}")
            _run_apt(paths, template, work, jobs, limits, recommends, names)
            _clean_up_after_install(work, names)
            meta = {"template": template, "payloads": [f"{p.package}={p.version}" for p in payloads]}
            inroot.write_text(work, MARKER, json.dumps(meta), 0o644)
    return cached


class _Jobs:
    """Where one install's files live on the host, under the root (state/.jobs/KEY-*), where
    sweep_orphans finds what a killed install left: the payloads handed to the jobs and the
    directory of each job (its config, log and cgroups), and the copies of the host's apt sources
    each job gets (see _host_sources)."""

    def __init__(self, paths: Paths, key: str) -> None:
        self.key = key
        self.payloads = paths.state / ".jobs" / f"{key}-payloads"
        self.apt = paths.state / ".jobs" / f"{key}-apt"
        self.download = paths.state / ".jobs" / f"{key}-download"
        self.install = paths.state / ".jobs" / f"{key}-install"


@contextmanager
def _job_directories(paths: Paths, key: str) -> Iterator[_Jobs]:
    jobs = _Jobs(paths, key)
    for scratch in (jobs.payloads, jobs.apt):
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True, mode=0o700)
    try:
        yield jobs
    finally:
        for directory in (jobs.payloads, jobs.apt, jobs.install, jobs.download):
            shutil.rmtree(directory, ignore_errors=True)


def _stage_payloads(payloads: list[Payload], staging: Path) -> None:
    """The .debs under the names apt reads their identity from (an epoch's ':' escaped as dpkg does)."""
    for p in payloads:
        shutil.copyfile(p.path, staging / f"{p.package}_{p.version.replace(':', '%3a')}_{p.architecture}.deb")


def _run_apt(
    paths: Paths, template: str, work: Path, jobs: _Jobs, limits: Limits, recommends: bool, names: str
) -> None:
    """apt in two sandboxed jobs in the snapshot: the download through the relay to the mirrors (with the
    credentials of its sources), then the install with neither (see DOWNLOAD and INSTALL)."""
    flags = "" if recommends else " --no-install-recommends"
    base = ContainerRecord(name=f"install-{jobs.key[:8]}", template=template, argv=(), env=APT_ENV, limits=limits)
    payload_dir = _bind(jobs.payloads, PAYLOAD_DIR)
    host_sources = _host_sources(paths, template, jobs.apt / "download", credentials=True)
    with _relay(paths, template, jobs.apt / "download") as relay:
        download = replace(
            base,
            argv=("/bin/sh", "-c", DOWNLOAD.format(flags=flags, proxy=PROXY.format(port=relay.port))),
            network=Mode("host"),  # the namespace the monitor is started in: the relay's
            binds=(payload_dir, *host_sources),
        )
        _run_phase(paths, download, work, jobs.download, names, lambda c: relay.in_namespace(lambda: spawn_monitor(c)))
    sources = _host_sources(paths, template, jobs.apt / "install", credentials=False)
    install = replace(base, argv=("/bin/sh", "-c", INSTALL.format(flags=flags)), binds=(payload_dir, *sources))
    _run_phase(paths, install, work, jobs.install, names)
