"""Helpers for the agent tests: a small HTTP client and a real agent process."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from prodng.agent import credentials, remote
from prodng.config import Paths

from conftest import Prodng

PORT = 13370 + os.getpid() % 500


class Client:
    """A tiny HTTP client over the agent's TLS port or its unix socket."""

    def __init__(self, paths: Paths, *, unix: Path | None = None, context: ssl.SSLContext | None = None) -> None:
        self.paths, self.unix, self.context = paths, unix, context

    def connection(self) -> http.client.HTTPConnection:
        if self.unix:
            return remote.UnixConnection(str(self.unix), timeout=60)
        return http.client.HTTPSConnection(
            "localhost", PORT, timeout=60, context=self.context or credentials.client_context(self.paths)
        )

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:  # the JSON answer (tests index it freely) or the text
        conn = self.connection()
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        kind = response.headers.get("Content-Type", "")
        return response.status, json.loads(data) if "json" in kind else data.decode()


def start_agent(prodng: Prodng) -> subprocess.Popen[str]:
    sock = prodng.root / "agent.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "prodng", "agent", "--port", str(PORT)],
        env=prodng.env,
        text=True,
        stderr=subprocess.PIPE,
    )
    prodng.wait_for(lambda: sock.exists() or proc.poll() is not None, 30, "the agent")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return proc


def stop_agent(proc: subprocess.Popen[str]) -> None:
    """TERM, as systemd stops it; killed if it has not ended in 30 s (the test then fails elsewhere)."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def metric_families(prodng: Prodng) -> list[Metric]:
    """GET /metrics of an agent started for the call, parsed from Prometheus' text format."""
    from prometheus_client.parser import text_string_to_metric_families

    agent = start_agent(prodng)
    try:
        status, text = Client(Paths(prodng.root), unix=prodng.root / "agent.sock").request("GET", "/metrics")
    finally:
        stop_agent(agent)
    assert status == 200
    return list(text_string_to_metric_families(str(text)))


def as_nobody(script: str, *args: str) -> subprocess.Popen[str]:
    """A Python script run as uid/gid 65534 with no other group: a local user who is not root."""
    return subprocess.Popen(
        ["/usr/bin/python3", "-c", script, *args],
        user=65534,
        group=65534,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
