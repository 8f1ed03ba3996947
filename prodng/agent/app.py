"""The REST face of prodng: one route per verb of prodng/verbs.py, nothing else but
the OpenAPI document and /metrics. Built by create_app(); served by agent/server.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from prodng import verbs
from prodng.agent import metrics, openapi
from prodng.agent.credentials import LOOPBACK
from prodng.config import Paths
from prodng.container import events
from prodng.errors import InvalidRequest, ProdngError, SystemFailure, from_os_error

log = logging.getLogger(__name__)

PATHS = web.AppKey("paths", Paths)
ALLOWED_HOSTS = web.AppKey("allowed_hosts", frozenset)
STREAMS = web.AppKey("streams", ThreadPoolExecutor)
CLOSING = web.AppKey("closing", asyncio.Event)
MAX_BODY = 256 * 1024
BODY_SECONDS = 10.0  # a real client sends its (at most 256 KiB) body at once

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str, hint: str | None = None) -> web.Response:
    body: dict[str, object] = {"error": message, "status": status}
    if hint:
        body["hint"] = hint
    return web.json_response(body, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become JSON with their status; nothing leaks a traceback."""
    try:
        return await handler(request)
    except ProdngError as err:
        return error_response(err.http_status, err.message, err.hint)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body larger than {MAX_BODY} bytes")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return error_response(err.status, err.reason)
    except OSError as err:
        if known := from_os_error(err):
            return error_response(known.http_status, known.message, known.hint)
        log.exception("internal error in %s %s", request.method, request.path)
        return error_response(500, "internal error (see the agent's log)")
    except Exception:
        log.exception("internal error in %s %s", request.method, request.path)
        return error_response(500, "internal error (see the agent's log)")


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse DNS-rebinding (a foreign Host) and cross-site requests (a foreign Origin)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple):  # TCP; the unix socket is reachable by root alone anyway
        host = request.host or ""
        host = host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]
        if host not in request.app[ALLOWED_HOSTS]:
            return error_response(421, f"host {request.host!r} is not served here")
    origin = request.headers.get("Origin")
    if origin and origin not in {f"https://{h}:{request.url.port}" for h in request.app[ALLOWED_HOSTS]}:
        return error_response(403, "cross-origin requests are refused")
    return await handler(request)


async def request_values(verb: verbs.Verb, request: web.Request) -> dict[str, object]:
    """Query string (with the seed's bare `?NAME`) and, for POST, a JSON object body."""
    params = {p.name: p for p in verb.params}
    raw: dict[str, object] = {}
    for key in request.query:
        given = request.query.getall(key)
        if key in params:
            raw[key] = given if params[key].kind.many else given[-1]
        elif given == [""] and "name" in params and "name" not in raw:
            raw["name"] = key  # POST /prodng/freeze?web
        else:
            raise InvalidRequest(f"unknown parameter {key!r} for {verb.name}")
    if request.method == "POST" and request.can_read_body:
        try:
            # A body sent a byte at a time would hold its connection for ever (the idle timeout only
            # covers a request not yet begun).
            text = await asyncio.wait_for(request.read(), BODY_SECONDS)
        except TimeoutError:
            raise InvalidRequest(f"the request body did not arrive within {BODY_SECONDS:g} s") from None
        try:
            body = json.loads(text or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("malformed JSON body") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the JSON body must be an object")
        for key, value in body.items():
            if key not in params:
                raise InvalidRequest(f"unknown field {key!r} for {verb.name}")
            raw[key] = value
    values: dict[str, object] = {}
    for name, param in params.items():
        if name in raw and raw[name] is not None:
            values[name] = param.parse(raw[name])
        elif param.required:
            raise InvalidRequest(f"{verb.name} needs {name}")
        else:
            values[name] = list(param.default) if isinstance(param.default, list) else param.default
    return values


async def _stream(request: web.Request, verb: verbs.Verb, items: Iterator[Any]) -> web.StreamResponse:
    """JSON lines, or dicts as server-sent events; each next() runs off the event loop.

    Followers yield None as a heartbeat about once a second, so a gone client or a
    shutting-down agent frees the thread within a second."""
    response = web.StreamResponse()
    response.content_type = verb.stream
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    done = object()
    while not request.app[CLOSING].is_set():
        item: Any = await loop.run_in_executor(request.app[STREAMS], next, items, done)
        if item is done or request.transport is None or request.transport.is_closing():
            break
        if item is None:
            chunk = ": keep-alive\n\n" if verb.stream == "text/event-stream" else "\n"
        elif verb.stream == "text/event-stream":
            chunk = f"event: {item['event']}\ndata: {json.dumps(item)}\n\n"
        else:  # application/x-ndjson: one JSON value a line
            chunk = f"{json.dumps(item)}\n"
        if chunk:
            await response.write(chunk.encode())
    await response.write_eof()
    return response


class ListingCache:
    """`ls` for many containers costs a few file reads each; answer repeated polls from a
    copy. The copy is dropped whenever the events journal moves (every verb and every
    monitor writes there); then one computation serves every waiting poll. A copy older
    than MAX_AGE (changes made behind prodng's back) is still answered while one refresh
    runs, so a busy host never makes every poll wait for a listing of its own."""

    MAX_AGE = 1.0

    def __init__(self, paths: Paths) -> None:
        self.journal = events.journal(paths)
        self.key: tuple[int, int, int] | None = None
        self.made = 0.0
        self.body = b""
        self.pending: dict[tuple[int, int, int], asyncio.Future[bytes]] = {}

    def journal_key(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.journal)
            return st.st_ino, st.st_size, st.st_mtime_ns
        except FileNotFoundError:
            return 0, 0, 0

    async def get(self, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        key = self.journal_key()
        if self.key == key and self.body:
            if time.monotonic() - self.made >= self.MAX_AGE:
                self._refresh(key, compute)  # answered from the copy; the next polls get the new one
            return self.body
        return await asyncio.shield(self._refresh(key, compute))

    def _refresh(self, key: tuple[int, int, int], compute: Callable[[], Awaitable[bytes]]) -> asyncio.Future[bytes]:
        """One computation per journal state, started after that state was seen."""
        if key not in self.pending:
            future = asyncio.ensure_future(self._compute(key, compute))
            future.add_done_callback(
                lambda f: f.cancelled() or f.exception()
            )  # a background refresh's error is logged by the next poll
            self.pending[key] = future
        return self.pending[key]

    async def _compute(self, key: tuple[int, int, int], compute: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            body = await compute()
            if self.key != key or not self.body or time.monotonic() - self.made >= self.MAX_AGE:
                self.key, self.made, self.body = key, time.monotonic(), body
            return body
        finally:
            del self.pending[key]


LISTING = web.AppKey("listing", ListingCache)


class Lane:
    """A bounded pool of threads for one class of verbs. Reads (ls, info) never wait behind
    slow verbs (exec, run, upgrade): each class has its own threads, and a class whose
    threads and queue are full answers 503 at once instead of queueing without end."""

    def __init__(self, name: str, workers: int, queue: int) -> None:
        self.name, self.limit, self.pending = name, workers + queue, 0
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"prodng-{name}")

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.pending >= self.limit:  # only the event loop's thread counts: no lock needed
            raise SystemFailure(f"the agent is busy: {self.pending} {self.name} requests in progress", hint="retry")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)
        finally:
            self.pending -= 1


LANES = web.AppKey("lanes", dict)
LANE_SIZES = {"read": (8, 64), "change": (8, 64), "slow": (16, 64)}  # threads, queued requests beyond them


def lane_of(verb: verbs.Verb) -> str:
    return "slow" if verb.slow else "read" if verb.method == "GET" else "change"


def _json(data: object) -> str:
    return json.dumps(data, default=str)


def _view(verb: verbs.Verb) -> Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        values = await request_values(verb, request)
        paths = request.app[PATHS]
        # Long verbs (template build) report progress on the events stream; the answer is the result.
        transport = request.transport

        def cancelled() -> bool:
            """A stopping agent, or a client gone: its exec ends instead of holding a thread to its deadline.
            (Read from the verb's thread: two flags the event loop sets.)"""
            return request.app[CLOSING].is_set() or transport is None or transport.is_closing()

        ctx = verbs.Context(
            paths, progress=lambda line: events.emit(paths, "progress", verb.name, line=line), cancelled=cancelled
        )

        async def call() -> Any:
            return await request.app[LANES][lane_of(verb)].run(verbs.call, verb, ctx, values)

        if verb.cacheable and not request.query:

            async def listing() -> bytes:
                return _json(await call()).encode()

            body = await request.app[LISTING].get(listing)
            return web.Response(body=body, content_type="application/json")
        result = await call()
        if isinstance(result, Iterator):
            return await _stream(request, verb, result)
        return web.json_response(result, dumps=_json)

    return view


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


async def _streams(app: web.Application) -> Any:
    # Followers (logs -f, events) block a thread each; keep them off the default pool.
    app[STREAMS] = ThreadPoolExecutor(max_workers=64, thread_name_prefix="prodng-stream")
    app[LANES] = {name: Lane(name, *sizes) for name, sizes in LANE_SIZES.items()}
    app[CLOSING] = asyncio.Event()
    yield
    app[CLOSING].set()
    app[STREAMS].shutdown(wait=False, cancel_futures=True)
    for lane in app[LANES].values():
        lane.pool.shutdown(wait=False, cancel_futures=True)


async def _stop_streams(app: web.Application) -> None:
    app[CLOSING].set()  # before the drain: followers end instead of holding it up


def create_app(paths: Paths, names: tuple[str, ...] = LOOPBACK) -> web.Application:
    """The app answering to these host names (the server's certificate carries the same)."""
    app = web.Application(middlewares=[metrics.middleware, errors, same_origin], client_max_size=MAX_BODY)
    app[PATHS] = paths
    app[LISTING] = ListingCache(paths)
    app[ALLOWED_HOSTS] = frozenset(f"[{n}]" if ":" in n else n for n in names)  # as in a Host header
    app.cleanup_ctx.append(_streams)
    app.on_shutdown.append(_stop_streams)
    for verb in verbs.VERBS:
        app.router.add_route(verb.method, verb.route, _view(verb))
    app.router.add_get(openapi.PATH, _openapi)
    metrics.install(app, paths)
    return app
