"""GET /metrics in Prometheus text format: per container, and the agent's own requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from prodng.config import Paths
from prodng.container import cgroups, observe, state
from prodng.storage import quota

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
REQUESTS = web.AppKey("metrics_requests", Counter)
LATENCY = web.AppKey("metrics_latency", Histogram)
STATES = [str(s) for s in observe.ContainerState]


def network_bytes(pid: int) -> tuple[int, int]:
    """Received and sent bytes over the container's own interfaces but loopback."""
    received = sent = 0
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        interface, _, counters = line.partition(":")
        if interface.strip() != "lo":
            fields = counters.split()
            received, sent = received + int(fields[0]), sent + int(fields[8])
    return received, sent


class ContainerCollector(Collector):
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "state": GaugeMetricFamily(
                "prodng_container_state", "1 for the container's current state", labels=["name", "state"]
            ),
            "cpu": GaugeMetricFamily("prodng_container_cpu_seconds", "CPU time used", labels=["name"]),
            "memory": GaugeMetricFamily("prodng_container_memory_bytes", "memory in use", labels=["name"]),
            "pids": GaugeMetricFamily("prodng_container_pids", "processes", labels=["name"]),
            "oom": GaugeMetricFamily("prodng_container_oom_kills", "processes the OOM killer ended", labels=["name"]),
            "disk": GaugeMetricFamily("prodng_container_disk_bytes", "bytes written to the root", labels=["name"]),
            "disk_limit": GaugeMetricFamily("prodng_container_disk_limit_bytes", "the root's quota", labels=["name"]),
            "restarts": GaugeMetricFamily("prodng_container_restarts", "restarts by the monitor", labels=["name"]),
            "unit": GaugeMetricFamily(
                "prodng_service_up", "1 when the unit runs (or exited with RemainAfterExit)", labels=["name", "unit"]
            ),
            "unit_restarts": GaugeMetricFamily(
                "prodng_service_restarts", "restarts of the unit by the init (Restart=)", labels=["name", "unit"]
            ),
            "rx": GaugeMetricFamily("prodng_container_network_receive_bytes", "bytes received", labels=["name"]),
            "tx": GaugeMetricFamily("prodng_container_network_transmit_bytes", "bytes sent", labels=["name"]),
        }
        for name in state.names(self.paths):
            try:
                record = state.load(self.paths, name)
            except Exception:
                continue
            seen = observe.observe(self.paths, record)
            for s in STATES:
                families["state"].add_metric([name, s], 1.0 if s == seen.state else 0.0)
            families["restarts"].add_metric([name], seen.restarts)
            for unit in state.read_units(self.paths, name)[1]:
                labels = [name, str(unit["name"])]
                families["unit"].add_metric(labels, 1.0 if unit["state"] in ("running", "exited") else 0.0)
                families["unit_restarts"].add_metric(labels, float(str(unit["restarts"])))
            if disk := quota.usage(self.paths.pool, self.paths.container_root(name)):
                families["disk"].add_metric([name], disk.used)
                if disk.limit:
                    families["disk_limit"].add_metric([name], disk.limit)
            if seen.pid:
                stats = cgroups.stats(record.cgroups)
                families["cpu"].add_metric([name], (stats["cpu_ns"] or 0) / 1e9)
                families["memory"].add_metric([name], stats["memory_bytes"] or 0)
                families["pids"].add_metric([name], stats["pids"] or 0)
                families["oom"].add_metric([name], stats["oom_kills"] or 0)
                rx, tx = network_bytes(seen.pid)
                families["rx"].add_metric([name], rx)
                families["tx"].add_metric([name], tx)
        yield from families.values()


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    start = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    response = await handler(request)
    request.app[REQUESTS].labels(request.method, route, str(response.status)).inc()
    request.app[LATENCY].labels(request.method, route).observe(time.perf_counter() - start)
    return response


async def _metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(generate_latest, request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def install(app: web.Application, paths: Paths) -> None:
    registry = CollectorRegistry()
    registry.register(ContainerCollector(paths))
    app[REGISTRY] = registry
    app[REQUESTS] = Counter(
        "prodng_agent_requests", "requests served", ["method", "route", "status"], registry=registry
    )
    app[LATENCY] = Histogram("prodng_agent_request_seconds", "request latency", ["method", "route"], registry=registry)
    app.router.add_get("/metrics", _metrics)
