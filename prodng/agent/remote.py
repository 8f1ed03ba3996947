"""The CLI as the agent's client: `prodng --remote URL VERB ...` sends the verb over REST.

URL is https://HOST:PORT (mutual TLS with the agent's client certificate) or
unix:/path/to/agent.sock (root only, no certificate).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

from prodng.agent import credentials
from prodng.config import Paths
from prodng.errors import Conflict, InvalidRequest, NotFound, ProdngError, SystemFailure
from prodng.verbs import Verb

ERRORS: dict[int, type[ProdngError]] = {
    400: InvalidRequest,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    503: SystemFailure,
}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connect(
    url: str, paths: Paths, cert: str | None = None, key: str | None = None, cacert: str | None = None
) -> http.client.HTTPConnection:
    if url.startswith("unix:"):
        return UnixConnection(url[5:])
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRequest(f"--remote must be https://HOST[:PORT] or unix:PATH, not {url!r}")
    context = credentials.client_context(paths, cert, key, cacert)
    return http.client.HTTPSConnection(parts.hostname, parts.port or 1337, context=context)


def _query(values: dict[str, object]) -> str:
    pairs = []
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item is not False:
                pairs.append((key, "1" if item is True else str(item)))
    return urlencode(pairs)


def call(conn: http.client.HTTPConnection, verb: Verb, values: dict[str, object]) -> object:
    try:
        if verb.method == "GET":
            conn.request("GET", f"{verb.route}?{_query(values)}")
        else:
            body = json.dumps({k: v for k, v in values.items() if v is not None})
            conn.request("POST", verb.route, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as err:
        raise SystemFailure(f"cannot reach the agent: {err}") from None
    kind = response.headers.get("Content-Type", "")
    if response.status >= 400:
        try:
            data = json.loads(response.read())
            message, hint = data["error"], data.get("hint")
        except (ValueError, KeyError):
            message, hint = f"agent answered HTTP {response.status}", None
        raise ERRORS.get(response.status, ProdngError)(message, hint)
    if kind.startswith("text/event-stream"):
        return _events(response)
    if kind.startswith("application/x-ndjson"):  # an empty line is a heartbeat
        return (json.loads(line) for line in response if line.strip())
    return json.loads(response.read())


def _events(response: http.client.HTTPResponse) -> Iterator[object]:
    for raw in response:
        line = raw.decode(errors="replace").strip()
        if line.startswith("data: "):
            yield json.loads(line[6:])
