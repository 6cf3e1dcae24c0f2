"""What keeps `serve` standing when its clients are careless or hostile.

The server is a single model behind one lock, meant for one person on this machine. Four
limits make every request end quickly with a clear answer, whatever the client does:

- the body is streamed and reading stops past `max_body` bytes (413), whatever
  Content-Length claims: a chunked body has none;
- a request has `timeout_s` seconds for its body to arrive (408) and for its turn at the
  model to come (503);
- `ModelQueue`: one request at the model and at most `size` waiting; one more is answered
  503 with Retry-After at once, so a burst of a hundred gets quick answers instead of
  minutes in a queue without end;
- the Host header must name what the server binds (`allowed_hosts`, checked by Starlette's
  `TrustedHostMiddleware`): a page on another site that rebinds its DNS name to 127.0.0.1
  still sends its own name and is refused.

uvicorn's own `limit_concurrency` caps open connections on top of these (memory: at most
that many bodies of `max_body` bytes in flight); it answers 503 without Retry-After and
counts idle keep-alive connections too, which is why the model's queue is ours. uvicorn
sets no time bound on a request's headers: a client that sends them a byte a second holds
its connection until it stops, and only that cap bounds how many such clients there are.
"""
from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import socket
import time
from typing import Any, AsyncIterator, Iterable

# asyncio is imported where it is used: the CLI imports this module for its defaults

MAX_BODY = 256 * 1024  # bytes: ~5000 points of [dx, dy, pen] at full double precision
TIMEOUT_S = 20.0  # for the body to arrive and for a turn at the model
QUEUE_SIZE = 4  # requests waiting for the model, beyond the one it runs
MAX_CONNECTIONS = 64  # uvicorn's limit_concurrency
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
_HOST_NAME = re.compile(r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?")


class HTTPError(Exception):
    """A request refused with `status` and a one-line message (and extra headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


# --------------------------------------------------------------------------- the Host header
def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    address = _address(host)
    return host.strip("[]").lower() == "localhost" or bool(address and address.is_loopback)


def is_host_name(name: str) -> bool:
    """A name `allowed_hosts` takes as extra: a host name, '*.domain', an address, or '*'."""
    return name == "*" or bool(_HOST_NAME.fullmatch(name)) or _address(name) is not None


def _as_host_header(name: str) -> str:
    """How a name or address appears in a Host header: IPv6 literals in brackets."""
    name = name.strip("[]").lower()
    return f"[{name}]" if ":" in name else name


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host header values (without port) that a server bound to `bind` accepts.

    Loopback: 127.0.0.1, localhost, [::1]. A wildcard (0.0.0.0, ::) also: this machine's
    name, its fully qualified name and the addresses the name resolves to. Any other
    address or name: itself, and the machine's names. `extra` (`--allowed-host`) adds
    names, e.g. a reverse proxy's; "*" turns the check off.
    """
    hosts = list(LOOPBACK_NAMES) if is_loopback(bind) or bind in WILDCARDS else []
    if not is_loopback(bind):
        if bind not in WILDCARDS:
            hosts.append(_as_host_header(bind))
        names = {socket.gethostname(), socket.getfqdn()}
        for name in sorted(names):
            hosts.append(_as_host_header(name))
            with contextlib.suppress(OSError):
                hosts += [_as_host_header(a[4][0]) for a in socket.getaddrinfo(name, None)]
    hosts += [_as_host_header(h) if h != "*" else h for h in extra]
    return list(dict.fromkeys(h for h in hosts if h))


# --------------------------------------------------------------------------- the body
async def read_body(request: Any, limit: int, deadline: float) -> bytes:
    """The request body, streamed; 413 past `limit` bytes, 408 past `deadline` (monotonic).

    A Content-Length over the limit is refused before reading anything; the count of
    bytes actually received is what decides, so a chunked body cannot slip past.
    """
    import asyncio

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"body: {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPError(413, f"body: over {limit} bytes; the limit is {limit}")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPError(408, "body: not received in time") from None
    return b"".join(chunks)


# --------------------------------------------------------------------------- the queue
class ModelQueue:
    """One request at the model, at most `size` waiting; beyond that, 503 at once.

    A request also gives up (503) when its turn has not come by its deadline. Retry-After
    is the time the queue ahead should take, from the last model call's duration.
    """

    def __init__(self, size: int = QUEUE_SIZE):
        self.size = size
        self.inside = 0  # running + waiting
        self.last_s = 1.0  # the duration of the last model call
        self._lock: asyncio.Lock | None = None  # made in the event loop that uses it

    def _busy(self, why: str) -> HTTPError:
        retry = max(1, math.ceil(self.inside * self.last_s))
        return HTTPError(503, f"busy: {why}; retry in {retry} s",
                         {"Retry-After": str(retry)})

    @contextlib.asynccontextmanager
    async def turn(self, deadline: float) -> AsyncIterator[None]:
        """Wait for the model (bounded), hold it for the body of the `async with`."""
        import asyncio

        if self.inside > self.size:
            raise self._busy(f"{self.size} requests already wait for the model")
        self._lock = self._lock or asyncio.Lock()
        self.inside += 1
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._lock.acquire()
            except TimeoutError:
                raise self._busy("the model did not come free in time") from None
            start = time.monotonic()
            try:
                yield
            finally:
                self.last_s = time.monotonic() - start
                self._lock.release()
        finally:
            self.inside -= 1
