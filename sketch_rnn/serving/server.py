"""`sketch-rnn serve`: a local web page where a person draws and the model finishes the drawing.

Starlette app, served by uvicorn on 127.0.0.1 by default. The page (HTML/JS/CSS in
`sketch_rnn/serving/static`, no CDN) sends stroke-3 points in data units to a JSON API;
inference runs server-side in the batched compiled sampler, so every model `train`
makes (all cells, conditional or not) works unchanged.

Why a lock and a thread: the model and its compiled functions are not thread-safe, and
a compiled call takes tens to hundreds of milliseconds; running it in a worker thread
keeps the event loop answering (static files, /api/info) while one call runs at a time.
Requests wait for that one call in a short bounded queue (`guards`: body limit, time
bound, Host check, 503 with Retry-After when full).

Every bad request (malformed JSON, wrong types, out-of-range values, too many points)
is answered 400 with a one-line JSON {"error": ...} naming the field, and every other
refusal (404, 405, 408, 413, 503) with the same one-line JSON; never a traceback. The one
exception is a wrong Host header: Starlette's middleware answers 400 "Invalid host header".
"""
from __future__ import annotations

import collections
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..generation.completion import batch_bucket
from .guards import LOOPBACK_NAMES, MAX_BODY, QUEUE_SIZE, TIMEOUT_S, HTTPError, ModelQueue, \
    read_body

STATIC = Path(__file__).resolve().parent / "static"
MAX_N = 16
MAX_TEMPERATURE = 2.0
MAX_SEED = 2 ** 31 - 1
MAX_OFFSET = 1e6  # data units; the data sets' offsets are clipped to 1000
LOG_SIZE = 64  # recent request bodies kept when asked (serve --log-requests)


class BadRequest(HTTPError):
    """A client error: answered 400 with its one-line message."""

    def __init__(self, message: str):
        super().__init__(400, message)


# --------------------------------------------------------------------------- validation
def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{field}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any float
        raise BadRequest(f"{field}: number too large") from None
    if not math.isfinite(number):
        raise BadRequest(f"{field}: must be finite")
    return number


def _int_field(body: dict, field: str, default: int | None, lo: int, hi: int) -> int:
    value = body.get(field, default)
    if value is None:
        raise BadRequest(f"{field}: required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BadRequest(f"{field}={value}: must be in {lo}..{hi}")
    return value


def _temperature(body: dict) -> float:
    t = _number(body.get("temperature", 0.5), "temperature")
    if not 0 < t <= MAX_TEMPERATURE:
        raise BadRequest(f"temperature={t}: must be in (0, {MAX_TEMPERATURE}]")
    return t


def _seed(body: dict) -> int:
    if body.get("seed") is None:
        return secrets.randbelow(MAX_SEED)  # returned in the answer: reproducible anyway
    return _int_field(body, "seed", None, 0, MAX_SEED)


def _strokes(body: dict, n_max: int) -> np.ndarray:
    """`strokes`: a list of [dx, dy, pen] in data units, 1..N_max points -> (L, 3) float32."""
    points = body.get("strokes")
    if not isinstance(points, list):
        raise BadRequest("strokes: expected a list of [dx, dy, pen] points")
    if not points:
        raise BadRequest("strokes: is empty; draw something first")
    if len(points) > n_max:
        raise BadRequest(f"strokes: {len(points)} points; the model takes at most {n_max}")
    out = np.empty((len(points), 3), np.float64)
    for i, p in enumerate(points):
        if not isinstance(p, list) or len(p) != 3:
            raise BadRequest(f"strokes[{i}]: expected [dx, dy, pen]")
        out[i] = [_number(v, f"strokes[{i}]") for v in p]
    if np.abs(out).max() > MAX_OFFSET:
        raise BadRequest(f"strokes: values beyond +-{MAX_OFFSET:g} data units")
    return out.astype(np.float32)


def _z_mode(body: dict, conditional: bool) -> str:
    mode = body.get("z_mode", "prior")
    if mode not in ("prior", "encode"):
        raise BadRequest(f"z_mode={mode!r}: use 'prior' or 'encode'")
    if mode == "encode" and not conditional:
        raise BadRequest("z_mode='encode': this model is decoder-only (no encoder)")
    return mode


def _as_lists(sketches: list[np.ndarray]) -> list[list[list[float]]]:
    """float32 stroke-3 -> JSON lists, rounded to 1e-3 data units (sub-pixel)."""
    return [np.round(s.astype(np.float64), 3).tolist() for s in sketches]


# --------------------------------------------------------------------------- inference
class Engine:
    """The loaded run behind one lock: the model answers one request at a time."""

    def __init__(self, run: Any, run_dir: str | None = None):
        self.run, self.run_dir = run, run_dir
        self.model = run.model
        self.scale = float(run.scale_factor)
        self.n_max = int(run.hps.max_seq_len)
        self.conditional = bool(run.hps.conditional)
        self.lock = threading.Lock()

    def info(self) -> dict:
        hps = self.run.hps
        checkpoint = getattr(self.run, "checkpoint", None)
        return {"run_dir": self.run_dir,
                "checkpoint": checkpoint.name if checkpoint else None,
                "step": int(self.run.step) if checkpoint else None,
                "conditional": self.conditional, "cell": hps.dec_model,
                "max_seq_len": self.n_max, "scale_factor": self.scale,
                "max_n": MAX_N, "max_temperature": MAX_TEMPERATURE}

    # Each request is checked first (BadRequest, before it waits for the model); what
    # comes back is the model call to make when its turn comes. A kind's checker returns
    # the answer's key, the call (-> sketches) and the fields echoed back.
    def prepare(self, kind: str, body: dict) -> Callable[[], dict]:
        """`body` of `kind` (complete, sample, reconstruct) checked: the call to make."""
        key, run, echo = {"complete": self._complete, "sample": self._sample,
                          "reconstruct": self._reconstruct}[kind](body)

        def call() -> dict:
            with self.lock:
                start = time.perf_counter()
                sketches = run()
            ms = round(1000 * (time.perf_counter() - start), 1)
            return {key: _as_lists(sketches), **echo, "ms": ms}

        return call

    def complete(self, body: dict) -> dict:
        return self.prepare("complete", body)()

    def sample(self, body: dict) -> dict:
        return self.prepare("sample", body)()

    def reconstruct(self, body: dict) -> dict:
        return self.prepare("reconstruct", body)()

    def _complete(self, body: dict) -> tuple[str, Callable[[], list], dict]:
        from ..generation.completion import complete

        prefix, n = _strokes(body, self.n_max), _int_field(body, "n", 8, 1, MAX_N)
        t, seed, mode = _temperature(body), _seed(body), _z_mode(body, self.conditional)
        return "endings", lambda: complete(self.model, prefix, n, t, seed, z_mode=mode,
                                           scale_factor=self.scale).endings, \
            {"n": n, "temperature": t, "seed": seed, "z_mode": mode}

    # sample and reconstruct decode batch_bucket(n) sketches and keep n: a few compiled
    # batch sizes serve every n (the answer is still a function of seed and n)
    def _sample(self, body: dict) -> tuple[str, Callable[[], list], dict]:
        from ..generation.sampling import sample

        n, t, seed = _int_field(body, "n", 8, 1, MAX_N), _temperature(body), _seed(body)
        return "sketches", lambda: sample(self.model, batch_bucket(n), t, seed=seed,
                                          scale_factor=self.scale)[:n], \
            {"n": n, "temperature": t, "seed": seed}

    def _reconstruct(self, body: dict) -> tuple[str, Callable[[], list], dict]:
        from ..generation.sampling import decode, encode

        if not self.conditional:
            raise BadRequest("reconstruct: this model is decoder-only (no encoder)")
        sketch, n = _strokes(body, self.n_max), _int_field(body, "n", 8, 1, MAX_N)
        t, seed = _temperature(body), _seed(body)

        def run() -> list:
            z = encode(self.model, [sketch], scale_factor=self.scale)  # (1, z_size)
            return decode(self.model, np.repeat(z, batch_bucket(n), axis=0), temperature=t,
                          seed=seed, scale_factor=self.scale)[:n]

        return "sketches", run, {"n": n, "temperature": t, "seed": seed}


# --------------------------------------------------------------------------- the app
def create_app(run: Any, run_dir: str | None = None, *,
               hosts: Sequence[str] | None = LOOPBACK_NAMES, max_body: int = MAX_BODY,
               timeout_s: float = TIMEOUT_S, queue_size: int = QUEUE_SIZE,
               log_requests: bool = False) -> Any:
    """The Starlette app serving `run` (a LoadedRun: model, hps, scale_factor, checkpoint).

    run_dir: what the page and /api/info say is being served. hosts: the Host header
    values accepted (`guards.allowed_hosts`; default loopback's, None checks nothing).
    max_body, timeout_s, queue_size: the limits of `guards`. log_requests: keep the last
    LOG_SIZE API request bodies in app.state.log and serve them at GET /api/log (other
    people's drawings: off unless asked).
    """
    import json

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    engine, queue = Engine(run, run_dir), ModelQueue(queue_size)
    log: collections.deque = collections.deque(maxlen=LOG_SIZE if log_requests else 0)

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message.splitlines()[0] if message else str(status)},
                            status_code=status, headers=headers)

    async def answer(request: Request, kind: str) -> dict:
        deadline = time.monotonic() + timeout_s
        try:
            body = json.loads(await read_body(request, max_body, deadline))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest("body: malformed JSON") from None
        log.append({"path": request.url.path, "body": body})
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        call = engine.prepare(kind, body)
        async with queue.turn(deadline):
            return await run_in_threadpool(call)

    def api(kind: str) -> Callable:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return JSONResponse(await answer(request, kind))
            except SketchRNNError as e:
                return error(400, str(e))
            except HTTPError as e:  # BadRequest (400), 408, 413, 503
                return error(e.status, str(e), e.headers)

        return endpoint

    async def http_error(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, HTTPException)  # 404, 405: one line of JSON like the others
        return error(e.status_code, f"{request.url.path}: {e.detail}", e.headers)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(engine.info())

    async def recent(request: Request) -> JSONResponse:
        return JSONResponse(list(log))

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    routes = [Route("/", index), Route("/api/info", info),
              *[Route(f"/api/{kind}", api(kind), methods=["POST"])
                for kind in ("complete", "sample", "reconstruct")],
              *([Route("/api/log", recent)] if log_requests else []),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    middleware = [] if hosts is None else [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts), www_redirect=False)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error})
    app.state.engine, app.state.log, app.state.queue = engine, log, queue
    return app


# --------------------------------------------------------------------------- CLI
def warm_up(engine: Engine) -> None:
    """Compile what the page asks for first: 1..16 endings (two batch buckets), 1..8
    samples and reconstructions. Larger sample batches compile on first use."""
    dot = {"strokes": [[10.0, 0.0, 1.0]], "seed": 0}
    for n in (8, 16):
        engine.complete({**dot, "n": n})
    engine.sample({"n": 8, "seed": 0})
    if engine.conditional:
        engine.reconstruct({**dot, "n": 8})
