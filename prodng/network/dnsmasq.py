"""dnsmasq (Debian's dnsmasq-base), managed by prodng: one per bridge, bound to it alone.

It serves DHCP from the lower half of the bridge's subnet and DNS for NAME.prodng, read
from one hosts file per container in a directory it watches (so names come from prodng,
never from what a container claims). Its files live in a runtime directory per prodng
root and network namespace; leases survive its restarts through the lease file.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from prodng import pidfd, polling, run
from prodng.errors import SystemFailure

if TYPE_CHECKING:
    from prodng.network.modes import Bridge


def binary() -> str:
    return run.require("dnsmasq", "dnsmasq-base")


def running_pid(directory: Path) -> int | None:
    """dnsmasq's pid if it runs for this directory, in our network namespace."""
    try:
        pid = int((directory / "dnsmasq.pid").read_text().split()[0])
        if Path(f"/proc/{pid}/comm").read_text().strip() != "dnsmasq":
            return None
        if os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/thread-self/ns/net").st_ino:
            return None
        return pid
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def ensure(directory: Path, net: Bridge) -> int:
    """Start dnsmasq unless it runs; the caller holds the network lock."""
    pid = running_pid(directory)
    if pid:
        return pid
    hosts = directory / "hosts"
    hosts.mkdir(parents=True, exist_ok=True)
    for d in (directory.parent, directory, hosts):
        d.chmod(0o755)  # dnsmasq reads the hosts files as nobody
    first, last = net.dhcp_range
    run.run(
        [
            binary(),
            "--conf-file=/dev/null",
            # The bridge's address alone, not any other the bridge or the host has (issue 14).
            f"--listen-address={net.gateway}",
            "--bind-interfaces",
            f"--dhcp-range={first},{last},{net.network.netmask},{net.lease_time}",
            f"--dhcp-leasefile={directory / 'leases'}",
            f"--pid-file={directory / 'dnsmasq.pid'}",
            f"--hostsdir={hosts}",
            "--domain=prodng",
            "--local=/prodng/",
            "--no-resolv",
            "--no-hosts",
            "--dhcp-ignore-names",
            "--dhcp-ignore-clid",  # leases by MAC alone: the bridge checks a container's MAC, not its client id
            # Authoritative: a restarted container asking for its old address gets it at once.
            # No ping: static addresses live outside the DHCP range, so nothing there to find.
            "--dhcp-authoritative",
            "--no-ping",
            # Logs go to the host's syslog, which bounds and rate-limits them: a container decides how many
            # DHCP messages it sends, and a line each in a file of ours in /run (the host's RAM on most hosts)
            # grew without end (2,000 DISCOVERs were 139 KB; --quiet-dhcp still logs each NAK). Start-up
            # errors come on stderr before dnsmasq detaches (run.run says them).
            "--quiet-dhcp",
            "--quiet-dhcp6",
            "--quiet-ra",
            "--user=nobody",
            "--group=nogroup",
        ]
    )
    pid = running_pid(directory)
    if not pid:
        raise SystemFailure("dnsmasq did not start: no pid file", hint="its reasons are in the host's syslog")
    return pid


def stop(pid: int, timeout: float = 5.0) -> None:
    """TERM dnsmasq and wait until it has exited, its sockets released (its /proc entries
    vanish earlier than that, so a pidfd tells, not /proc)."""
    pidfd.send_signal(pid, signal.SIGTERM, wait=timeout)


def publish_name(directory: Path, name: str, address: str) -> None:
    """NAME.prodng -> address; dnsmasq picks the file up through inotify."""
    staged = directory / f"staged-{name}"
    staged.write_text(f"{address} {name}.prodng {name}\n")
    staged.chmod(0o644)
    os.rename(staged, directory / "hosts" / name)


def leases(directory: Path) -> list[list[str]]:
    """dnsmasq's lease file: EXPIRY MAC IP HOSTNAME CLIENTID per line."""
    try:
        return [line.split() for line in (directory / "leases").read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def forget(directory: Path, name: str, mac: str, wait: float = 1.0) -> bool:
    """Drop the container's name; True once its lease is gone too (its keeper releases it)."""
    (directory / "hosts" / name).unlink(missing_ok=True)
    # A RELEASE just sent may still be on its way.
    return polling.until(lambda: not any(len(f) > 2 and f[1] == mac for f in leases(directory)), wait, first=0.05)


def drop_lease(directory: Path, mac: str, net: Bridge) -> None:
    """A lease its keeper could not release (it was killed): dnsmasq has no verb to drop one,
    so it is restarted without that line. The caller holds the network lock."""
    pid = running_pid(directory)
    if pid:
        stop(pid)
    kept = [" ".join(f) for f in leases(directory) if not (len(f) > 2 and f[1] == mac)]
    (directory / "leases").write_text("".join(line + "\n" for line in kept))
    ensure(directory, net)
