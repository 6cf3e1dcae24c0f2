"""Every HTTP body `serve` reads, generated (Hypothesis), against the app in process.

The property, for any request: a valid answer (200 with n well-formed stroke-3 sketches and
the request's settings echoed back), or a 4xx with one line of our own JSON error; never a
5xx, never an answer later than BOUND_S. Four targets:

- `bytes`: any bytes, mutated good bodies, bodies around the size limit (413 exactly past it);
- `json`: any JSON document, and objects whose fields take odd values (NaN, huge integers,
  booleans, nested lists...);
- `fields`: good bodies by construction (must be 200, answering what was asked) and the same
  with each field made bad in turn (must be 400 naming that field), the ranges being the API's own
  documentation, not the server's code;
- `host`: the Host header (DNS rebinding): 200 only for the names of 127.0.0.1.

The app serves an untrained tiny conditional model (N_max = 24): what is fuzzed is the HTTP
layer and the checks, not the model. Built once per process, its compiled sampler warmed,
inside a strategy, so that the one-time build is not counted against a campaign's per-input
deadline. Follows the campaign's protocol (`fuzz/campaign.py`): TARGETS of @given functions.
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import random
import types
import warnings
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

N_MAX = 24
MAX_N = 16  # the API's documented range of n
MAX_BODY = 8192  # small, so that the boundary is cheap to reach
TIMEOUT_S = 5.0
BOUND_S = 30.0  # a request answered later than this is a hang
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
PATHS = ("/api/complete", "/api/sample", "/api/reconstruct")
CI_EXAMPLES = {"bytes": 25, "json": 25, "fields": 20, "host": 15}

# the app survives the campaign's reload of this module (one build per process)
_STATE: dict[str, Any] = globals().get("_STATE", {})


def _client() -> Any:
    """A TestClient on the app (built and warmed on first use)."""
    if "client" not in _STATE:
        state = random.getstate()  # building a model seeds Python's random: leave it as found
        with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx still works
            warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
            from starlette.testclient import TestClient

        from sketch_rnn.core.hparams import preset
        from sketch_rnn.model.vae import SketchRNN
        from sketch_rnn.serving.server import create_app, warm_up

        hps = preset("tiny").replace(max_seq_len=N_MAX, conditional=True)
        run = types.SimpleNamespace(model=SketchRNN(hps, seed=1), hps=hps, scale_factor=10.0,
                                    checkpoint=None, step=0)
        app = create_app(run, "fuzz", max_body=MAX_BODY, timeout_s=TIMEOUT_S)
        warm_up(app.state.engine)
        for path in ("/api/sample", "/api/reconstruct"):  # the second batch bucket (9..16)
            app.state.engine.prepare(path.rsplit("/", 1)[1],
                                     {"strokes": [[1.0, 0.0, 1.0]], "n": MAX_N, "seed": 0})()
        _STATE["client"] = TestClient(app, base_url="http://127.0.0.1:8000",
                                      raise_server_exceptions=False)
        _STATE["pool"] = concurrent.futures.ThreadPoolExecutor(1)
        random.setstate(state)
    return _STATE["client"]


CLIENT = st.builds(_client)  # drawn: the build is not timed as part of an input


def _send(client: Any, method: str, path: str, **kw: Any) -> Any:
    """The response, or a failure if it does not come within BOUND_S."""
    future = _STATE["pool"].submit(client.request, method, path, **kw)
    try:
        return future.result(timeout=BOUND_S)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"{method} {path}: no answer within {BOUND_S:g} s") from None


def _post(client: Any, path: str, body: bytes) -> Any:
    return _send(client, "POST", path, content=body,
                 headers={"content-type": "application/json"})


# --------------------------------------------------------------------------- the property
def _well_formed(sketches: Any, n: int) -> None:
    assert isinstance(sketches, list) and len(sketches) == n, sketches
    for s in sketches:
        assert isinstance(s, list), s
        for p in s:
            assert isinstance(p, list) and len(p) == 3, p
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in p), p
            assert p[2] in (0, 1), p


def check(r: Any, path: str, body: Any = None) -> dict | None:
    """A valid answer (returned) or a one-line JSON 4xx (None); anything else fails."""
    assert r.status_code < 500, f"{path}: {r.status_code} {r.text[:200]!r}"
    if r.status_code != 200:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        error = r.json()["error"]
        assert list(r.json()) == ["error"] and isinstance(error, str) and error.strip()
        assert "\n" not in error and "\r" not in error and "Traceback" not in error, error
        return None
    answer = r.json()
    n = answer["n"]
    _well_formed(answer["endings" if path == "/api/complete" else "sketches"], n)
    assert 1 <= n <= MAX_N and 0 < answer["temperature"] <= 2 and answer["ms"] >= 0
    if isinstance(body, dict):  # what was asked is what was answered
        assert n == body.get("n", 8), (n, body)
        assert answer["temperature"] == float(body.get("temperature", 0.5)), body
        if body.get("seed") is not None:
            assert answer["seed"] == body["seed"], body
    return answer


# --------------------------------------------------------------------------- strategies
FINITE = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
POINT = st.tuples(FINITE, FINITE, st.sampled_from([0, 1, 0.0, 1.0])).map(list)
ODD = st.one_of(
    st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 2, 16, 17, 2 ** 31, 2 ** 31 - 1, 1e308, 10 ** 400]),
    st.booleans(), st.none(), st.text(max_size=4), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
FIELDS = ("strokes", "n", "temperature", "seed", "z_mode")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def good_bodies(draw: Any, path: str) -> dict:
    """A body the API documents as valid for `path` (fields optional where defaulted)."""
    body: dict[str, Any] = {}
    if path != "/api/sample":
        body["strokes"] = draw(st.lists(POINT, min_size=1, max_size=N_MAX))
    if draw(st.booleans()):
        body["n"] = draw(st.integers(1, MAX_N))
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0.01, 2.0))
    if draw(st.booleans()):
        body["seed"] = draw(st.one_of(st.none(), st.integers(0, 2 ** 31 - 1)))
    if path == "/api/complete" and draw(st.booleans()):
        body["z_mode"] = draw(st.sampled_from(["prior", "encode"]))
    return body


BAD_VALUES = {  # per field: values outside the documented ranges or of the wrong type,
    # the boundaries first (a short profile draws them), then anything of the kind
    "strokes": st.one_of(
        st.sampled_from([[], [[1.0, math.nan, 0]], [[math.inf, 0, 1]], [[2e6, 0.0, 1.0]],
                         [[1, 2]], [[1, 2, 0, 0]], [[1, True, 0]], [[1, "2", 0]],
                         [[1, None, 0]], [[0, 0, 1]] * (N_MAX + 1), "0,0,1", {"0": 1}]),
        st.text(max_size=5), st.integers(),
        st.lists(POINT, min_size=N_MAX + 1, max_size=N_MAX + 4),
        st.lists(st.lists(FINITE, max_size=4).filter(lambda p: len(p) != 3), min_size=1,
                 max_size=3),
        st.lists(st.tuples(ODD, FINITE, FINITE).map(list), min_size=1, max_size=3).filter(
            lambda ps: any(isinstance(p[0], bool) or not isinstance(p[0], (int, float))
                           or not math.isfinite(p[0]) or abs(p[0]) > 1e6 for p in ps))),
    "n": st.one_of(st.sampled_from([0, MAX_N + 1, -1, True, 2.5, 8.0, "8", None, [8]]),
                   st.integers(max_value=0), st.integers(min_value=MAX_N + 1),
                   st.floats(), st.text(max_size=3)),
    "temperature": st.one_of(
        st.sampled_from([0, 0.0, -0.0, 2.0001, -1, math.nan, math.inf, True, "0.5", None]),
        st.floats(max_value=0.0), st.floats(min_value=2.0001), st.text(max_size=3),
        st.lists(st.integers(), max_size=1)),
    "seed": st.one_of(st.sampled_from([-1, 2 ** 31, 2 ** 63, 1.0, math.nan, True, "1", [1]]),
                      st.integers(max_value=-1), st.integers(min_value=2 ** 31),
                      st.floats(), st.text(max_size=3)),
    "z_mode": st.one_of(st.sampled_from(["", "Prior", "both", 0, None, ["prior"]]),
                        st.text(max_size=8).filter(lambda t: t not in ("prior", "encode")),
                        st.integers()),
}
READS = {"/api/complete": FIELDS, "/api/sample": ("n", "temperature", "seed"),
         "/api/reconstruct": ("strokes", "n", "temperature", "seed")}


# --------------------------------------------------------------------------- the targets
@given(CLIENT, st.sampled_from(PATHS), st.data())
def bytes_bodies(client: Any, path: str, data: Any) -> None:
    """Any bytes; 413 exactly when longer than the limit."""
    good = _json(data.draw(good_bodies(path)))
    body = data.draw(st.one_of(
        st.binary(max_size=200),
        st.tuples(st.integers(0, len(good)), st.integers(0, len(good)),
                  st.binary(max_size=8)).map(lambda t: good[:t[0]] + t[2] + good[t[1]:]),
        st.integers(MAX_BODY - 2, MAX_BODY + 2).map(lambda k: good + b" " * (k - len(good))),
        st.integers(MAX_BODY + 1, 4 * MAX_BODY).map(lambda k: b"[" * k)))
    r = _post(client, path, body)
    check(r, path)
    assert (r.status_code == 413) == (len(body) > MAX_BODY), (len(body), r.status_code)


@given(CLIENT, st.sampled_from(PATHS), st.one_of(
    st.recursive(ODD, lambda c: st.one_of(st.lists(c, max_size=4),
                                          st.dictionaries(st.sampled_from(FIELDS), c,
                                                          max_size=5)),
                 max_leaves=20),
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(ODD, st.lists(
        st.lists(ODD, max_size=4), max_size=N_MAX + 2)), max_size=5)))
def json_bodies(client: Any, path: str, doc: Any) -> None:
    """Any JSON document: a valid answer or a one-line 4xx."""
    check(_post(client, path, _json(doc)), path, doc)


@given(CLIENT, st.sampled_from(PATHS), st.data())
def fields(client: Any, path: str, data: Any) -> None:
    """A good body answered as asked; each field made bad in turn -> 400 naming it."""
    body = data.draw(good_bodies(path), label="good")
    r = _post(client, path, _json(body))
    assert r.status_code == 200, (body, r.text[:200])
    check(r, path, body)
    for field in READS[path]:
        bad = {**body, field: data.draw(BAD_VALUES[field], label=f"bad {field}")}
        r = _post(client, path, _json(bad))
        assert r.status_code == 400, (bad, r.status_code, r.text[:200])
        assert check(r, path) is None and r.json()["error"].startswith(field), r.json()


HOSTS = st.one_of(
    st.sampled_from([*LOOPBACK, "LOCALHOST", "127.0.0.2", "[::2]", "0.0.0.0", "localhost.",
                     "attacker.example", "127.0.0.1.attacker.example", ""]),
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True),
    st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
            max_size=12))  # a colon would start a port: the name is what is judged


@given(CLIENT, HOSTS, st.one_of(st.none(), st.integers(0, 65535)), st.sampled_from(
    ["/api/info", "/api/sample", "/"]))
def host(client: Any, name: str, port: int | None, path: str) -> None:
    """Only the names of 127.0.0.1 are served: a rebound DNS name is refused (400)."""
    header = name if port is None else f"{name}:{port}"
    method = "POST" if path == "/api/sample" else "GET"
    r = _send(client, method, path, headers={"host": header},
              **({"json": {"n": 1, "seed": 0}} if method == "POST" else {}))
    if name.lower() in LOOPBACK:
        assert r.status_code == 200, (header, r.status_code, r.text[:200])
    else:
        assert (r.status_code, r.text) == (400, "Invalid host header"), (header, r.text[:200])


TARGETS = {"bytes": bytes_bodies, "json": json_bodies, "fields": fields, "host": host}
