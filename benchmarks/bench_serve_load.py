"""`sketch-rnn serve` under load: good clients and hostile ones at once, for a fixed time.

Starts `python -m sketch_rnn serve` on 127.0.0.1 (a free port; nothing else is ever
targeted) and runs, for --seconds, --good clients that each ask for endings of a real
prefix in a loop (honouring Retry-After after a 503), beside hostile clients that each
repeat one attack: a declared 64 MiB body, a chunked body without end, a wrong Host
header (DNS rebinding), malformed or out-of-range JSON, a body sent one byte a second,
and headers sent one byte a second. Every client stops at the deadline; every upload is
capped; the server is stopped at the end.

Reports: the p50/p95/max latency of the good requests answered 200 (each attempt timed
from its send; beside it the model's own time, the rest being the wait in the queue), the
answers by status for each kind of client ("None": no answer before the run's end: an
attempt in flight at the deadline, or headers that never end, which uvicorn does not time
out), the count of 5xx other
than the queue's 503 (must be 0), the server's RSS before the load, at its peak (sampled
every 50 ms) and after, and a final check: the server is alive and answers a fixed-seed
request exactly as it did before the load. Ends with one JSON line.

    python benchmarks/bench_serve_load.py --run-dir checkpoints/sheep --seconds 60
    python benchmarks/bench_serve_load.py --run-dir RUN --seconds 5 --good 4     # smoke
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch_rnn.core.machine import describe  # noqa: E402  (no TF import)

HOST = "127.0.0.1"  # the only address this script ever connects to
UPLOAD_CAP = 64 * 2 ** 20  # bytes a hostile upload sends at most
CHUNK = 64 * 1024
BAD_BODIES = [b"{not json", b"\xff\xfe", b"[" * 200_000, b'{"strokes": [[1, NaN, 0]]}',
              b'{"strokes": [[1, 2, 0]], "n": 1000}', b'{"strokes": "x"}', b"[1, 2]",
              b'{"strokes": [[1' + b"0" * 4000 + b', 0, 0]]}', b""]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _prefix() -> list[list[float]]:
    """The first 10 points of a real sheep (data/aaron_sheep.npz, test split)."""
    import numpy as np

    with np.load(ROOT / "data" / "aaron_sheep.npz", allow_pickle=True, encoding="latin1") as f:
        return f["test"][0][:10].astype(float).tolist()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- raw clients
async def _raw(head: bytes, body_chunks, pace_s: float, deadline: float) -> int | None:
    """Send `head`, then chunks (paced) until the server answers; its status or None."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    answer = asyncio.create_task(reader.readline())
    try:
        writer.write(head)
        for chunk in body_chunks:
            if answer.done() or time.monotonic() > deadline:
                break
            writer.write(chunk)
            await writer.drain()
            if pace_s:
                await asyncio.wait([answer], timeout=pace_s)
        await asyncio.wait([answer], timeout=max(0.1, deadline - time.monotonic()))
    except ConnectionError:  # the server answered and closed while we were sending
        await asyncio.wait([answer], timeout=5)
    finally:
        writer.close()
    if not answer.done():
        answer.cancel()
        return None
    line = b"" if answer.exception() else answer.result()
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None


def _head(extra: str) -> bytes:
    return (f"POST /api/complete HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


async def huge_declared(deadline: float) -> int | None:
    chunks = (b" " * CHUNK for _ in range(UPLOAD_CAP // CHUNK))
    return await _raw(_head(f"Content-Length: {UPLOAD_CAP}\r\n"), chunks, 0, deadline)


async def chunked_flood(deadline: float) -> int | None:
    chunks = (b"%x\r\n%s\r\n" % (CHUNK, b"[" * CHUNK) for _ in range(UPLOAD_CAP // CHUNK))
    return await _raw(_head("Transfer-Encoding: chunked\r\n"), chunks, 0, deadline)


async def slow_body(deadline: float) -> int | None:
    chunks = (b"{" for _ in range(100))  # one byte a second; 100 declared
    return await _raw(_head("Content-Length: 100\r\n"), chunks, 1.0, deadline)


async def slow_headers(deadline: float) -> int | None:
    """Headers one byte a second: uvicorn has no timeout for them (see the report)."""
    head = _head("Content-Length: 2\r\n") + b"{}"
    return await _raw(head[:1], (head[i:i + 1] for i in range(1, len(head))), 1.0, deadline)


# --------------------------------------------------------------------------- the load
async def load(args: argparse.Namespace, good_body: dict) -> dict:
    import httpx

    deadline = time.monotonic() + args.seconds
    stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    latencies: list[float] = []
    model_ms: list[float] = []  # the model's own time inside each good answer
    attempt_s: dict[str, list[float]] = collections.defaultdict(list)  # raw attacks
    limits = httpx.Limits(max_connections=args.good + 8)
    url = f"http://{HOST}:{PORT}"

    async def good(client: httpx.AsyncClient, i: int) -> None:
        k = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                r = await client.post("/api/complete", json={**good_body, "seed": i * 10007 + k},
                                      timeout=max(1.0, deadline - t0 + 30))
            except httpx.HTTPError as e:
                stats["good"][type(e).__name__] += 1
                continue
            k += 1
            stats["good"][str(r.status_code)] += 1
            if r.status_code == 200:
                latencies.append(time.monotonic() - t0)
                model_ms.append(r.json()["ms"])
                assert len(r.json()["endings"]) == good_body["n"]
            elif r.status_code == 503:
                told = "retry-after" in r.headers
                stats["good"]["retry_after" if told else "no_retry_after"] += 1
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 2.0))

    async def hostile_http(client: httpx.AsyncClient, kind: str) -> None:
        k = 0
        while time.monotonic() < deadline:
            try:
                if kind == "bad_host":
                    r = await client.post("/api/complete", json=good_body,
                                          headers={"host": "rebind.attacker.example"})
                else:
                    r = await client.post("/api/complete", content=BAD_BODIES[k % len(BAD_BODIES)],
                                          headers={"content-type": "application/json"})
                stats[kind][str(r.status_code)] += 1
            except httpx.HTTPError as e:
                stats[kind][type(e).__name__] += 1
            k += 1
            await asyncio.sleep(0.05)

    async def hostile_raw(attack, kind: str) -> None:
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                status = await attack(deadline)
            except OSError as e:
                status = type(e).__name__
            stats[kind][str(status)] += 1
            attempt_s[kind].append(time.monotonic() - t0)
            await asyncio.sleep(0.2)

    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        tasks = [good(client, i) for i in range(args.good)]
        for _ in range(args.hostile):
            tasks += [hostile_http(client, "bad_host"), hostile_http(client, "malformed"),
                      hostile_raw(huge_declared, "huge_declared"),
                      hostile_raw(chunked_flood, "chunked_flood"),
                      hostile_raw(slow_body, "slow_body"),
                      hostile_raw(slow_headers, "slow_headers")]
        await asyncio.gather(*tasks)
    return {"stats": {k: dict(v) for k, v in stats.items()}, "latencies": latencies,
            "model_ms": round(statistics.median(model_ms), 1) if model_ms else None,
            "attempt_s": {k: round(statistics.median(v), 2) for k, v in attempt_s.items()}}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    global PORT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=str(ROOT / "checkpoints" / "sheep"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--good", type=int, default=16, help="good clients")
    ap.add_argument("--hostile", type=int, default=2, help="clients of each hostile kind")
    ap.add_argument("--n", type=int, default=8, help="endings per good request")
    ap.add_argument("--timeout", type=float, default=5.0, help="serve --timeout")
    args = ap.parse_args(argv)
    if not 0 < args.seconds <= 600 or not 0 < args.good <= 64 or not 0 <= args.hostile <= 4:
        ap.error("--seconds in (0, 600], --good in 1..64, --hostile in 0..4")
    import httpx

    PORT = _free_port()
    machine = describe()
    print(f"cpu {machine['cpu']} ({machine['cores']} cores, {machine['os']}); serve "
          f"{args.run_dir} on {HOST}:{PORT}; {args.good} good clients, {args.hostile} of each "
          f"hostile kind, {args.seconds:g} s", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "sketch_rnn", "serve", "--run-dir", args.run_dir, "--host", HOST,
         "--port", str(PORT), "--timeout", str(args.timeout)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in server.stdout:  # up to "serving ... at": the sampler is compiled
            if line.startswith("serving "):
                print(line.strip(), flush=True)
                break
        else:
            raise SystemExit(f"serve exited ({server.wait()})")
        good_body = {"strokes": _prefix(), "n": args.n, "temperature": 0.5}
        probe = {**good_body, "seed": 12345}
        with httpx.Client(base_url=f"http://{HOST}:{PORT}", timeout=60) as c:
            before_answer = c.post("/api/complete", json=probe).json()["endings"]
        rss_before, peak = _rss(server.pid), [0]

        async def sample_rss(stop: asyncio.Event) -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss(server.pid))
                await asyncio.sleep(0.05)

        async def run() -> dict:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(stop))
            t0 = time.monotonic()
            out = await load(args, good_body)
            out["wall_s"] = time.monotonic() - t0
            stop.set()
            await sampler
            return out

        out = asyncio.run(run())
        time.sleep(2.0)
        rss_after = _rss(server.pid)
        with httpx.Client(base_url=f"http://{HOST}:{PORT}", timeout=60) as c:
            after = c.post("/api/complete", json=probe)
            info = c.get("/api/info").status_code
        alive = server.poll() is None
        correct = after.status_code == 200 and after.json()["endings"] == before_answer
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    stats, lat = out["stats"], out["latencies"]
    five = {kind: sum(v for k, v in c.items() if k.isdigit() and int(k) >= 500
                      and not (k == "503" and kind == "good"))
            for kind, c in stats.items()}
    busy_without_retry = stats.get("good", {}).get("no_retry_after", 0)
    ms = [1000 * x for x in lat]
    figures = {
        "good_ok": len(ms), "good_per_s": round(len(ms) / out["wall_s"], 2),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(_pct(ms, 0.95), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None, "model_ms_p50": out["model_ms"],
        "unexpected_5xx": sum(five.values()), "busy_503_without_retry_after": busy_without_retry,
        "rss_mb": {"before": round(rss_before / 2 ** 20, 1), "peak": round(peak[0] / 2 ** 20, 1),
                   "after": round(rss_after / 2 ** 20, 1)},
        "alive_after": alive, "info_after": info, "same_answer_after": correct,
    }
    for kind, counts in stats.items():
        took = out["attempt_s"].get(kind)
        print(f"{kind:>14}: {json.dumps(counts, sort_keys=True)}"
              + (f", median attempt {took} s" if took is not None else ""), flush=True)
    print(f"good 200s: {figures['good_ok']} ({figures['good_per_s']}/s), latency p50 "
          f"{figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms (the "
          f"model's own time: p50 {figures['model_ms_p50']} ms; the rest is the queue)",
          flush=True)
    print(f"5xx other than the queue's 503: {figures['unexpected_5xx']}; RSS MB before/peak/"
          f"after: {figures['rss_mb']}; alive {alive}, same fixed-seed answer {correct}",
          flush=True)
    print(json.dumps({"machine": machine, "seconds": args.seconds, "good_clients": args.good,
                      "hostile_per_kind": args.hostile, "n": args.n, **figures,
                      "by_kind": stats,
                      "attack_median_s": out["attempt_s"]}))
    ok = alive and correct and figures["unexpected_5xx"] == 0
    return 0 if ok else 1


PORT = 0

if __name__ == "__main__":
    raise SystemExit(main())
