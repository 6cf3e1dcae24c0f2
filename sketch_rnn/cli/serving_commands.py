"""Handlers of the serving and export commands: export (and serve, complete)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import atomic_write
from ..data import read_sketches
from ..serving.export import (
    MAGENTA_JS_PACKAGE,
    MAGENTA_JS_VERSION,
    MAX_QUANTISATION_ERROR,
    NEEDS_Z,
    NO_Z,
    check_exportable,
    export_magenta_js,
)
from .model_commands import load_run


def _check_z_args(hps: Any, args: argparse.Namespace) -> None:
    """The z options against the model, before loading it (one line naming the option)."""
    if args.z_from is not None and args.z_prior:
        raise SketchRNNError("--z-from and --z-prior: give one of them")
    if args.index is not None and args.z_from is None:
        raise SketchRNNError("--index needs --z-from DATA.npz")
    if args.z_from is not None and args.index is None:
        raise SketchRNNError("--z-from needs --index I (which sketch to encode)")
    given = args.z_from is not None or args.z_prior
    if given and not hps.conditional:
        raise SketchRNNError(NO_Z)
    if hps.conditional and not given:
        raise SketchRNNError(NEEDS_Z)


def _choose_z(run: Any, args: argparse.Namespace) -> np.ndarray | None:
    """The z of --z-from/--index (the posterior mean) or --z-prior/--seed; None if neither."""
    from ..generation.sampling import encode, prior_z

    if args.z_from is not None:
        sketch = read_sketches(args.z_from, args.split, [args.index], run.hps.max_seq_len,
                               "--index")
        return encode(run.model, sketch, scale_factor=run.scale_factor)[0]
    if args.z_prior:
        return prior_z(1, int(run.hps.z_size), args.seed)[0]
    return None


def cmd_export(args: argparse.Namespace) -> int:
    """`sketch-rnn export`: write a run's decoder as a browser model JSON."""
    from ..training.checkpoint import require_checkpoint

    out = Path(args.output)
    if out.suffix != ".json":
        raise SketchRNNError(f"-o {out}: the model file must end in .json")
    hps = require_checkpoint(args.run_dir).hps
    check_exportable(hps)  # before loading TensorFlow
    _check_z_args(hps, args)
    run = load_run(args.run_dir)
    z = _choose_z(run, args)
    model_json = export_magenta_js(run, z, name=Path(args.run_dir).resolve().name)
    atomic_write(out, json.dumps(model_json, separators=(",", ":")))
    info = model_json[0]
    kind = "conditional, z fixed" if z is not None else "decoder-only"
    print(f"wrote {out} ({MAGENTA_JS_PACKAGE} {MAGENTA_JS_VERSION}, {kind}, "
          f"{info['max_seq_len']} steps max, step {info['step']}; largest quantisation "
          f"error {info['max_quantisation_error']:.4g} <= {MAX_QUANTISATION_ERROR:.4g})")
    return 0


def _check_serve_args(args: argparse.Namespace) -> None:
    """The limits, before loading anything (one line naming the option)."""
    from ..serving import guards

    if not 0 <= args.port <= 65535:
        raise SketchRNNError(f"--port {args.port}: must be in 0..65535")
    if args.max_body < 1024:
        raise SketchRNNError(f"--max-body {args.max_body}: must be at least 1024 bytes")
    if not 0 < args.timeout <= 3600:
        raise SketchRNNError(f"--timeout {args.timeout:g}: must be in (0, 3600] seconds")
    if not 0 <= args.queue <= 1000:
        raise SketchRNNError(f"--queue {args.queue}: must be in 0..1000")
    for name in args.allowed_host:
        if not guards.is_host_name(name):
            raise SketchRNNError(f"--allowed-host {name!r}: a host name or address without "
                                 "port, '*.domain' or '*'")


def cmd_serve(args: argparse.Namespace) -> int:
    """`sketch-rnn serve`: load the run, warm the compiled functions, serve until Ctrl-C."""
    import uvicorn

    from ..serving import guards

    _check_serve_args(args)
    run = load_run(args.run_dir)
    from ..serving.server import create_app, warm_up

    hosts = guards.allowed_hosts(args.host, args.allowed_host)
    app = create_app(run, str(args.run_dir), hosts=hosts, max_body=args.max_body,
                     timeout_s=args.timeout, queue_size=args.queue,
                     log_requests=args.log_requests)
    if not guards.is_loopback(args.host):
        print(f"warning: --host {args.host} makes this page and its API reachable from other "
              "machines, with no password: anyone who reaches it can use the model"
              + (" and read the request log" if args.log_requests else ""), file=sys.stderr)
    print("compiling the sampler (else the first requests would wait)...", flush=True)
    warm_up(app.state.engine)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {args.run_dir} (step {run.step}) at http://{host}:{args.port}/ "
          f"- Ctrl-C stops (Host header: {', '.join(hosts)}; bodies up to {args.max_body} "
          f"bytes; {args.queue} may wait)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                limit_concurrency=guards.MAX_CONNECTIONS, timeout_keep_alive=5)
    return 0
