"""The agent: every verb over REST with mutual TLS and over the unix socket, for real."""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import PORT, Client, start_agent
from openapi_spec_validator import validate
from probe_helpers import make_probe_root
from prometheus_client.parser import text_string_to_metric_families

from prodng import verbs
from prodng.agent import credentials
from prodng.agent.app import create_app
from prodng.agent.openapi import document
from prodng.config import Paths

from conftest import Prodng


def test_routes_are_the_verb_table() -> None:
    app = create_app(Paths(Path("/nonexistent-prodng-root")))
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()  # type: ignore[union-attr]
        if r.resource and r.resource.canonical.startswith("/prodng/") and r.method != "HEAD"
    }
    table = {(v.method, v.route) for v in verbs.VERBS}
    assert routes - {("GET", "/prodng/openapi.json")} == table


def test_openapi_is_valid_and_complete() -> None:
    spec = document()
    validate(spec)  # raises on an invalid OpenAPI 3.1 document
    assert spec["openapi"] == "3.1.0"
    assert {(path, method.upper()) for path, item in spec["paths"].items() for method in item} == {
        (v.route, v.method) for v in verbs.VERBS
    }


@pytest.fixture(scope="module")
def agent(prodng: Prodng, template: str) -> Iterator[subprocess.Popen[str]]:
    proc = start_agent(prodng)
    yield proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def https(prodng: Prodng, agent: subprocess.Popen[str]) -> Client:
    return Client(Paths(prodng.root))


@pytest.fixture(scope="module")
def unix(prodng: Prodng, agent: subprocess.Popen[str]) -> Client:
    return Client(Paths(prodng.root), unix=prodng.root / "agent.sock")


VOLATILE = {"stats", "started_at", "finished_at"}


def _stable(info: object) -> dict[str, object]:
    assert isinstance(info, dict)
    return {k: v for k, v in info.items() if k not in VOLATILE}


@pytest.mark.root
@pytest.mark.slow
def test_every_verb_over_rest(prodng: Prodng, template: str, https: Client, unix: Client, container: str) -> None:
    status, body = https.request(
        "POST",
        "/prodng/run",
        {"args": [template, "none"], "name": container, "exec": "sh -c 'echo ready; exec sleep 100000'"},
    )
    assert status == 200 and body["state"] == "running", body  # type: ignore[index]
    status, info = https.request("GET", f"/prodng/info?{container}")
    assert status == 200 and _stable(info) == _stable(prodng.info(container))
    status, rows = unix.request("GET", "/prodng/ls")
    assert status == 200 and container in {r["name"] for r in rows}  # type: ignore[union-attr, index]
    assert https.request("POST", f"/prodng/freeze?{container}")[1]["state"] == "frozen"  # type: ignore[index]
    assert prodng.info(container)["state"] == "frozen"
    assert https.request("POST", f"/prodng/thaw?name={container}")[1]["state"] == "running"  # type: ignore[index]
    status, result = https.request(
        "POST", "/prodng/exec", {"name": container, "command": ["sh", "-c", "echo hi; exit 3"]}
    )
    assert status == 200 and result == {"name": container, "exit_code": 3, "stdout": "hi\n", "stderr": ""}
    ready = {"source": "service", "line": "ready"}
    prodng.wait_for(lambda: ready in https.request("GET", f"/prodng/logs?{container}")[1], what="log")  # type: ignore[operator]
    assert https.request("GET", f"/prodng/logs?name={container}&tail=1")[1] == [ready]
    status, rows = https.request("GET", "/prodng/query?" + "sql=SELECT%20name%20FROM%20prodng_containers")
    assert status == 200 and {"name": container} in rows  # type: ignore[operator]
    assert https.request("GET", "/prodng/template/ls")[1][0]["name"] == template  # type: ignore[index]
    assert https.request("GET", f"/prodng/template/info?{template}")[1]["suite"] == "bookworm"  # type: ignore[index]
    assert https.request("POST", f"/prodng/kill?{container}", {"signal": "TERM"})[0] == 200
    assert https.request("POST", "/prodng/stop", {"name": container, "timeout": 2})[1]["state"] == "exited"  # type: ignore[index]
    assert https.request("POST", "/prodng/start", {"name": container})[1]["state"] == "running"  # type: ignore[index]
    assert https.request("POST", f"/prodng/rm?{container}", {"force": True})[1] == {"name": container, "removed": True}
    assert https.request("GET", f"/prodng/info?{container}")[0] == 404


@pytest.mark.root
def test_template_import_over_rest(prodng: Prodng, https: Client, probe_binary: Path, tmp_path: Path) -> None:
    source = str(make_probe_root(tmp_path, probe_binary))
    status, body = https.request("POST", "/prodng/template/import", {"name": "rest-import", "source": source})
    assert status == 200 and body["variant"] == "import" and body["source"] == source, body  # type: ignore[index]
    status, body = https.request("POST", "/prodng/template/import", {"name": "rest-import", "source": source})
    assert status == 409 and "already exists" in body["error"], body  # type: ignore[index]
    status, body = https.request("POST", "/prodng/template/import", {"name": "Rest", "source": source})
    assert status == 400 and "invalid template name" in body["error"], body  # type: ignore[index]
    assert https.request("POST", "/prodng/template/rm", {"name": "rest-import"})[0] == 200


@pytest.mark.root
@pytest.mark.slow
def test_event_and_log_streams(prodng: Prodng, template: str, https: Client, container: str) -> None:
    conn = https.connection()
    conn.request("GET", "/prodng/events")
    events = conn.getresponse()
    assert events.headers["Content-Type"].startswith("text/event-stream")
    prodng("run", template, "--name", container, "--exec", "sh -c 'while true; do echo tick; sleep 0.2; done'")
    prodng("freeze", container)
    prodng("thaw", container)
    prodng("rm", "-f", container)
    seen = []
    while "removed" not in seen:
        line = events.readline().decode()
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event["name"] == container:
                seen.append(event["event"])
    conn.close()
    assert seen[0] == "created" and {"frozen", "thawed", "removed"} <= set(seen)
    prodng("run", template, "--name", container, "--exec", "sh -c 'while true; do echo tick; sleep 0.1; done'")
    conn = https.connection()
    conn.request("GET", f"/prodng/logs?{container}&follow=1")
    follow = conn.getresponse()
    assert [follow.readline() for _ in range(3)] == [b'{"source": "service", "line": "tick"}\n'] * 3
    conn.close()


@pytest.mark.root
@pytest.mark.slow
def test_remote_cli_drives_the_verbs(prodng: Prodng, template: str, agent: object, container: str) -> None:
    for url in (f"https://localhost:{PORT}", f"unix:{prodng.root / 'agent.sock'}"):
        r = ["--remote", url]
        assert (
            prodng(*r, "run", template, "none", "--name", container, "--exec", "sleep 100000").stdout.strip()
            == container
        )
        assert container in prodng(*r, "ls").stdout
        assert prodng.json(*r, "freeze", container)["state"] == "frozen"  # type: ignore[index]
        assert prodng.json(*r, "thaw", container)["state"] == "running"  # type: ignore[index]
        run = prodng(*r, "exec", container, "--", "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
        assert (run.returncode, run.stdout, run.stderr) == (5, "out\n", "err\n")
        assert prodng.json(*r, "info", container)["name"] == container  # type: ignore[index]
        assert prodng.json(*r, "stop", container, "-t", "0")["state"] == "exited"  # type: ignore[index]
        missing = prodng(*r, "info", "nosuch", check=False)
        assert missing.returncode == 3 and missing.stderr == "prodng: error: no such container: nosuch\n"
        prodng(*r, "rm", container)


@pytest.mark.root
@pytest.mark.slow
def test_clients_without_trusted_certificates_are_refused(prodng: Prodng, https: Client, tmp_path: Path) -> None:
    paths = Paths(prodng.root)
    bare = ssl.create_default_context(cafile=str(credentials.files(paths).ca))
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        Client(paths, context=bare).request("GET", "/prodng/ls")
    other = Paths(tmp_path)  # a different CA and client certificate, never trusted here
    credentials.ensure(other)
    stranger = ssl.create_default_context(cafile=str(credentials.files(paths).ca))
    stranger.load_cert_chain(credentials.files(other).client, credentials.files(other).client_key)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        Client(paths, context=stranger).request("GET", "/prodng/ls")
    keys = [credentials.files(paths).ca_key, credentials.files(paths).server_key, credentials.files(paths).client_key]
    assert all(credentials.is_private(k) for k in keys)
    assert oct((prodng.root / "agent.sock").stat().st_mode & 0o777) == "0o600"
    listed = prodng.json("agent", "trust", "ls")
    assert [t["name"] for t in listed] == ["prodng-cli"]  # type: ignore[index, union-attr]


@pytest.mark.root
@pytest.mark.slow
def test_bad_requests_get_json_errors(
    prodng: Prodng, template: str, https: Client, unix: Client, container: str
) -> None:
    cases = [
        ("GET", "/prodng/nosuchverb", None, 404),
        ("GET", "/prodng/info?nosuch", None, 404),
        ("POST", "/prodng/freeze", b"{not json", 400),
        ("POST", "/prodng/freeze", b"[1, 2]", 400),
        ("POST", "/prodng/freeze", {"name": 5}, 400),
        ("POST", "/prodng/stop", {"name": "x", "timeout": "soon"}, 400),
        ("POST", "/prodng/freeze", {"name": "a/b"}, 400),
        ("POST", "/prodng/freeze", {"name": "x", "colour": "red"}, 400),
        ("POST", "/prodng/run", {"args": [template], "exec": "true", "pids": 0}, 400),
        ("POST", "/prodng/freeze", b"{" + b'"name": "' + b"x" * (300 * 1024) + b'"}', 413),
        ("GET", "/prodng/query?sql=DELETE%20FROM%20prodng_containers", None, 400),
    ]
    for method, path, body, status in cases:
        raw = body if isinstance(body, bytes) else None
        got, answer = unix.request(method, path, None if raw else body, raw=raw)
        assert got == status, (path, body, answer)
        assert isinstance(answer, dict) and answer["status"] == status and answer["error"], answer
    prodng("run", template, "--name", container, "--exec", "sleep 100000")
    got, answer = https.request("POST", f"/prodng/rm?{container}")
    assert got == 409 and "is running" in answer["error"]  # type: ignore[index]
    assert https.request("GET", "/prodng/ls", headers={"Host": "evil.example:1337"})[0] == 421
    assert https.request("POST", f"/prodng/freeze?{container}", headers={"Origin": "https://evil.example"})[0] == 403
    assert prodng.info(container)["state"] == "running"


@pytest.mark.root
@pytest.mark.slow
def test_metrics_parse_and_move(prodng: Prodng, template: str, https: Client, container: str) -> None:
    prodng("run", template, "--name", container, "--exec", "sh -c 'while true; do :; done'", "--cpus", "0.5")

    def cpu() -> float:
        status, text = https.request("GET", "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}  # type: ignore[arg-type]
        samples = {s.labels.get("name"): s.value for s in families["prodng_container_cpu_seconds"].samples}
        states = [
            s for s in families["prodng_container_state"].samples if s.labels == {"name": container, "state": "running"}
        ]
        assert states and states[0].value == 1.0
        assert "prodng_agent_requests" in families
        return samples[container]

    first = cpu()
    time.sleep(1)
    assert cpu() > first


@pytest.mark.root
@pytest.mark.slow
def test_schemathesis_finds_no_server_error(prodng: Prodng, https: Client) -> None:
    """Fuzz every non-destructive, non-streaming route against the served spec."""
    f = credentials.files(Paths(prodng.root))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"https://localhost:{PORT}/prodng/openapi.json",
            "--tls-verify",
            str(f.ca),
            "--request-cert",
            str(f.client),
            "--request-cert-key",
            str(f.client_key),
            "-n",
            "25",
            "--phases",
            "examples,fuzzing",
            "--seed",
            "1337",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path",
            "/prodng/events",
            "--exclude-path",
            "/prodng/logs",  # endless streams
            "--exclude-path",
            "/prodng/template/build",
            "--exclude-path",
            "/prodng/template/rm",  # slow / destructive
            "--exclude-path",
            "/prodng/template/import",  # would copy any host directory it names
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=prodng.env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", result.stdout), result.stdout[-2000:]
