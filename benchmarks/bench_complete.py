"""Completion latency: n endings of a short prefix, in process and through the HTTP API.

The model is the `small` preset, untrained (timing does not depend on the weights), with
its end-of-sketch pen logit pushed to -1e4 so that no ending stops early: every ending
runs to N_max in total (prefix + ending = 250 decoder steps), the worst case.

- in process: `completion.complete` (teacher-forced prefix + batched sampler, two
  compiled calls);
- end to end: POST /api/complete to `sketch-rnn serve`'s app under a real uvicorn on
  127.0.0.1, timed in the client (httpx), JSON encoding and decoding included.

Median and best over --repeats calls (each with another seed) after one compiling call;
the last line is one JSON object. Target: median <= 300 ms on 2 CPU cores.

    python benchmarks/bench_complete.py [--preset small] [--n 8] [--prefix 10] [--repeats 10]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _stats(seconds: list[float]) -> dict:
    return {"median_ms": round(1000 * statistics.median(seconds), 1),
            "best_ms": round(1000 * min(seconds), 1)}


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i + 1)
        out.append(time.perf_counter() - t0)
    return out


def _serve(app) -> tuple[str, object, threading.Thread]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--n", type=int, default=8, help="endings per request")
    ap.add_argument("--prefix", type=int, default=10, help="points in the prefix")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)

    import httpx
    import keras
    import numpy as np

    from sketch_rnn.generation.completion import complete
    from sketch_rnn.core.hparams import preset
    from sketch_rnn.serving.server import create_app
    from sketch_rnn.model.build import build_model

    hps = preset(args.preset)
    model = build_model(hps, 0)
    bias = keras.ops.convert_to_numpy(model.head.bias).copy()
    bias[2] = -1e4  # p3 (end of sketch) never drawn: full-length endings
    model.head.bias.assign(bias)
    rng = np.random.default_rng(0)
    prefix = np.column_stack([rng.normal(0, 10, (args.prefix, 2)), np.zeros(args.prefix)])
    prefix[-1, 2] = 1
    steps = hps.max_seq_len - args.prefix
    print(f"backend {keras.backend.backend()}, preset {args.preset}: dec {hps.dec_model} "
          f"{hps.dec_rnn_size}, M={hps.num_mixture}, {args.n} endings of {steps} steps after "
          f"a {args.prefix}-point prefix, cpus {os.cpu_count()}", flush=True)

    def in_process(seed: int) -> None:
        c = complete(model, prefix, args.n, 0.5, seed)
        assert all(len(e) == steps for e in c.endings), [len(e) for e in c.endings]

    t0 = time.perf_counter()
    in_process(0)
    compile_s = time.perf_counter() - t0
    print(f"first call (compiles): {compile_s:.1f} s", flush=True)
    local = _timed(in_process, args.repeats)
    print(f"in process : {_stats(local)}", flush=True)

    run = type("Run", (), {"model": model, "hps": hps, "scale_factor": 1.0})()
    url, server, thread = _serve(create_app(run, "(benchmark)"))
    body = {"strokes": prefix.tolist(), "n": args.n, "temperature": 0.5}
    server_ms: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        def over_http(seed: int) -> None:
            r = client.post("/api/complete", json={**body, "seed": seed})
            r.raise_for_status()
            answer = r.json()
            assert all(len(e) == steps for e in answer["endings"])
            server_ms.append(answer["ms"])

        over_http(0)  # connection set-up
        server_ms.clear()
        remote = _timed(over_http, args.repeats)
    server.should_exit = True
    thread.join(timeout=10)
    print(f"over HTTP  : {_stats(remote)} (model time inside: median "
          f"{statistics.median(server_ms):.1f} ms)", flush=True)
    print(json.dumps({"preset": args.preset, "n": args.n, "prefix_points": args.prefix,
                      "ending_steps": steps, "repeats": args.repeats,
                      "compile_s": round(compile_s, 1), "in_process": _stats(local),
                      "http": _stats(remote), "target_median_ms": 300,
                      "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
