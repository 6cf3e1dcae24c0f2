"""`serve` against careless or hostile clients: Host check, body limit, time bound, queue.

The model is a stub here (these limits act before it or around it), so no TensorFlow
runs: a request that reaches the model gets one fixed sketch back. Chunked and slow
bodies go to a real uvicorn on 127.0.0.1 over raw sockets, since an in-process client
cannot send a body that never ends.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx still works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from sketch_rnn.core.hparams import preset  # noqa: E402
from sketch_rnn.serving import guards  # noqa: E402
from sketch_rnn.serving.server import create_app  # noqa: E402

SKETCH = np.array([[1.0, 2.0, 0.0], [3.0, -4.0, 1.0]], np.float32)
GOOD = {"strokes": [[1.0, 0.0, 1.0]], "n": 1, "seed": 0}


def stub_app(**limits):
    """The app on a stub run whose model call returns SKETCH (no TensorFlow)."""
    hps = preset("tiny").replace(max_seq_len=16, conditional=False)
    run = types.SimpleNamespace(model=None, hps=hps, scale_factor=1.0, checkpoint=None, step=0)
    app = create_app(run, "runs/stub", **limits)
    engine = app.state.engine
    check = engine._complete  # the real checks of the body; the model call replaced

    def stub(body):
        key, _, echo = check(body)
        return key, lambda: [SKETCH], echo

    engine._complete = stub
    return app


def local(app, **kw) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False, **kw)


def one_line_error(r, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words in error and "\n" not in error, error


# --------------------------------------------------------------------------- Host header
def test_loopback_and_the_hosts_each_address_accepts():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert guards.is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.7", "example.org", "localhost.example.org"):
        assert not guards.is_loopback(host), host
    loop = ["localhost", "127.0.0.1", "[::1]"]
    assert guards.allowed_hosts("127.0.0.1") == loop == guards.allowed_hosts("::1")
    assert guards.allowed_hosts("localhost", ["Box.Example", "fe80::1"]) == [
        *loop, "box.example", "[fe80::1]"]
    one = guards.allowed_hosts("192.0.2.7")  # one address: itself and the machine's names
    assert one[0] == "192.0.2.7" and socket.gethostname().lower() in one
    assert not {"*", "192.0.2.8", "example.org"} & set(one)
    anywhere = guards.allowed_hosts("0.0.0.0")  # loopback names too: they reach it
    assert anywhere[:3] == loop and socket.gethostname().lower() in anywhere
    for name in ("*", "*.example.org", "box", "box.example.", "fe80::1", "[::1]", "10.0.0.2"):
        assert guards.is_host_name(name), name
    for name in ("", "box:80", "a*.example", "*example", "http://box", "box/x", "a b"):
        assert not guards.is_host_name(name), name


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
    ("LocalHost", True), ("127.0.0.1", True),
    ("rebind.attacker.example:8000", False),  # DNS rebinding: the page's own name
    ("127.0.0.1.attacker.example", False), ("localhost.", False), ("[::2]:8000", False),
    ("127.0.0.2:8000", False), ("", False), ("a b", False)])
def test_host_header_must_name_the_bound_address(host, ok):
    with local(stub_app(hosts=guards.allowed_hosts("127.0.0.1"))) as c:
        for r in (c.get("/api/info", headers={"host": host}),
                  c.post("/api/complete", json=GOOD, headers={"host": host})):
            if ok:
                assert r.status_code == 200, (host, r.text)
            else:
                assert (r.status_code, r.text) == (400, "Invalid host header"), host


# --------------------------------------------------------------------------- body limit
def test_body_over_the_limit_is_413_and_at_the_limit_is_read():
    with local(stub_app(max_body=2048)) as c:
        head = json.dumps(GOOD).encode()[:-1] + b', "pad": "'
        exact = head + b"x" * (2048 - len(head) - 2) + b'"}'  # valid JSON of 2048 bytes
        assert len(exact) == 2048
        r = c.post("/api/complete", content=exact)
        assert r.status_code == 200 and r.json()["endings"] == [SKETCH.tolist()], r.text
        one_line_error(c.post("/api/complete", content=exact + b" "), 413,
                       "body: 2049 bytes; the limit is 2048")
        one_line_error(c.post("/api/sample", content=b"{" * 10 ** 6), 413, "the limit is 2048")


@pytest.fixture
def real_server():
    """Start stub apps under uvicorn on 127.0.0.1 (a free port); yields a starter."""
    started = []

    def start(**limits) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(stub_app(**limits), host="127.0.0.1", port=port,
                                               log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return port

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


def _status_and_body(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def test_a_chunked_body_without_end_is_cut_off_at_the_limit(real_server):
    port = real_server(max_body=4096)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/complete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"1000\r\n" + b"[" * 4096 + b"\r\n"  # 4 KiB chunks, never a last chunk
        try:
            while sent < 64 * 2 ** 20:  # the server answers long before: it stops reading
                sock.sendall(chunk)
                sent += 4096
                sock.settimeout(0.0)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.settimeout(10)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = _status_and_body(sock)
    assert status == 413 and body == {"error": "body: over 4096 bytes; the limit is 4096"}
    assert sent < 64 * 2 ** 20


def test_a_body_that_does_not_arrive_is_408_in_time(real_server):
    port = real_server(timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /api/complete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 100\r\n\r\n{\"strokes\"")
        status, body = _status_and_body(sock)
        waited = time.monotonic() - t0
    assert status == 408 and body == {"error": "body: not received in time"}
    assert 0.45 < waited < 5, waited


# --------------------------------------------------------------------------- the queue
def in_process(app) -> httpx.AsyncClient:
    """Concurrent requests to `app` in this event loop (the model's thread blocks apart)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://127.0.0.1")


def held_model(**limits):
    """A stub app whose model is busy (its lock held by the test) until released."""
    app = stub_app(**limits)
    app.state.engine.lock.acquire()
    return app, app.state.engine.lock


def test_a_full_queue_answers_503_with_retry_after_at_once():
    app, hold = held_model(queue_size=3)  # the first request takes the model's turn, 3 wait

    async def burst(count: int):
        async with in_process(app) as c:
            tasks = [asyncio.create_task(c.post("/api/complete", json=GOOD))
                     for _ in range(count)]
            t0 = time.monotonic()
            while sum(t.done() for t in tasks) < count - 4 or app.state.queue.inside < 4:
                assert time.monotonic() - t0 < 10, "the burst did not settle"
                await asyncio.sleep(0.01)
            early = [t.result() for t in tasks if t.done()]  # while the model was held
            hold.release()
            return early, await asyncio.gather(*tasks)

    early, answers = asyncio.run(burst(20))
    assert len(early) == 20 - 4
    for r in early:
        one_line_error(r, 503, "busy: 3 requests already wait for the model; retry in")
        assert int(r.headers["retry-after"]) >= 1
    ok = [r for r in answers if r.status_code == 200]
    assert len(ok) == 4 and all(r.json()["endings"] == [SKETCH.tolist()] for r in ok)
    assert app.state.queue.inside == 0


def test_a_request_waits_for_the_model_only_until_its_deadline():
    app, hold = held_model(timeout_s=0.3, queue_size=2)

    async def two():
        async with in_process(app) as c:
            first = asyncio.create_task(c.post("/api/complete", json=GOOD))
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            second = await c.post("/api/complete", json=GOOD)
            waited = time.monotonic() - t0
            hold.release()
            return await first, second, waited

    first, second, waited = asyncio.run(two())
    assert first.status_code == 200  # the one at the model finishes: its call is not cut
    one_line_error(second, 503, "busy: the model did not come free in time")
    assert second.headers["retry-after"] and 0.2 < waited < 3, waited


def test_bad_bodies_do_not_wait_in_the_queue():
    app, hold = held_model(queue_size=0)

    async def three():
        async with in_process(app) as c:
            busy = asyncio.create_task(c.post("/api/complete", json=GOOD))
            while app.state.queue.inside < 1:
                await asyncio.sleep(0.01)
            bad = await c.post("/api/complete", json={"strokes": []})  # checked first: 400
            full = await c.post("/api/complete", json=GOOD)
            hold.release()
            return bad, full, await busy

    bad, full, busy = asyncio.run(three())
    one_line_error(bad, 400, "strokes: is empty")
    one_line_error(full, 503, "busy: 0 requests already wait")
    assert busy.status_code == 200


# --------------------------------------------------------------------------- the command
def _serve_without_serving(monkeypatch, argv) -> dict:
    """Run `sketch-rnn serve argv` up to uvicorn.run, which records its arguments."""
    from sketch_rnn import cli
    from sketch_rnn.cli import serving_commands
    from sketch_rnn.serving import server

    hps = preset("tiny").replace(max_seq_len=16, conditional=False)
    run = types.SimpleNamespace(model=None, hps=hps, scale_factor=1.0, checkpoint=None, step=3)
    monkeypatch.setattr(serving_commands, "load_run", lambda run_dir: run)
    monkeypatch.setattr(server, "warm_up", lambda engine: None)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert cli.run(["serve", "--run-dir", "runs/x", *argv]) == 0
    return seen


def test_serve_warns_off_loopback_and_passes_its_limits(monkeypatch, capsys):
    seen = _serve_without_serving(monkeypatch, [])
    out, err = capsys.readouterr()
    assert err == "" and seen["host"] == "127.0.0.1"
    assert seen["limit_concurrency"] == guards.MAX_CONNECTIONS and seen["timeout_keep_alive"]
    assert "Host header: localhost, 127.0.0.1, [::1]" in out
    with local(seen["app"]) as c:  # no log unless asked
        assert c.get("/api/log").status_code == 404

    seen = _serve_without_serving(monkeypatch, ["--host", "0.0.0.0", "--log-requests",
                                                "--allowed-host", "sketch.example",
                                                "--max-body", "5000", "--queue", "1"])
    out, err = capsys.readouterr()
    assert err.startswith("warning: --host 0.0.0.0 makes this page and its API reachable "
                          "from other machines") and "request log" in err
    assert len(err.splitlines()) == 1
    with TestClient(seen["app"], base_url="http://sketch.example") as c:
        assert c.get("/api/log").json() == []
        one_line_error(c.post("/api/complete", content=b" " * 5001), 413, "limit is 5000")
    assert seen["app"].state.queue.size == 1


@pytest.mark.parametrize("argv,match", [
    (["--max-body", "10"], "--max-body 10: must be at least 1024 bytes"),
    (["--timeout", "0"], "--timeout 0: must be in (0, 3600] seconds"),
    (["--queue", "-1"], "--queue -1: must be in 0..1000"),
    (["--allowed-host", "evil.example:80"], "--allowed-host 'evil.example:80': a host name"),
    (["--allowed-host", "a*.example"], "--allowed-host 'a*.example'"),
])
def test_serve_limit_errors_are_one_line(tmp_path, capsys, argv, match):
    from sketch_rnn import cli

    assert cli.run(["serve", "--run-dir", str(tmp_path / "none"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err
