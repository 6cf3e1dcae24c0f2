"""`sketch-rnn download --pretrained` against a local HTTP server on 127.0.0.1 only.

The server holds the published layout (`sketch_rnn.zip` with model folders inside, and
`models/<category>.gen.json`), filled with a Magenta fixture checkpoint and a synthetic
magenta.js model; `/cut/` closes each body half way, `/garbage/` serves junk, anything
else is a 404.
"""
from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from test_magenta_js_import import make_model_json

from sketch_rnn import cli
from sketch_rnn.serving import pretrained
from sketch_rnn.training.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "magenta"


def _archive(models: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, folder in models.items():
            for f in sorted(folder.iterdir()):
                if f.name != "outputs.npz":
                    z.write(f, f"sketch_rnn/{name}/{f.name}")
    return buf.getvalue()


class _Published(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        mode, _, rest = self.path.lstrip("/").partition("/")
        body = self.files.get(rest)
        if mode not in ("ok", "cut", "garbage") or body is None:
            self.send_error(404, "Not Found")
            return
        if mode == "garbage":
            body = b"<html>an error page</html>" * 40
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if mode == "cut" else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    _Published.files = {
        "sketch_rnn.zip": _archive({"aaron_sheep/lstm": FIXTURES / "lstm",
                                    "owl/lstm": FIXTURES / "hyper"}),
        "models/cat.gen.json": json.dumps(make_model_json("gen")).encode(),
        "large_models/cat.vae.json": json.dumps(make_model_json("vae")).encode(),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Published)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _pretrained(*argv: str) -> int:
    return cli.main(["download", "--pretrained", *argv, "--no-progress"])


def test_list_and_published_urls(capsys):
    assert _pretrained("--list") == 0
    listed = capsys.readouterr().out.split()
    assert {"aaron_sheep/lstm", "elephantpig/lstm", "cat.gen", "cat.vae", "large/cat.gen"} <= set(listed)
    assert pretrained.resolve("owl/lstm", None)["url"] == \
        "http://download.magenta.tensorflow.org/models/sketch_rnn.zip"
    assert pretrained.resolve("large/spider.gen", None)["url"] == \
        "https://storage.googleapis.com/quickdraw-models/sketchRNN/large_models/spider.gen.json"


def test_download_and_import(server, tmp_path, capsys):
    to = tmp_path / "models"
    assert _pretrained("aaron_sheep/lstm", "cat.gen", "large/cat.vae", "--to", str(to),
                       "--base-url", server + "/ok") == 0
    sheep = load_run(to / "aaron_sheep-lstm")
    fx = np.load(FIXTURES / "lstm" / "outputs.npz")
    assert sheep.step == 4 and sheep.scale_factor == pytest.approx(float(fx["scale_factor"]))
    cat = load_run(to / "cat.gen")
    assert not cat.hps.conditional and cat.scale_factor == 37.5
    assert load_run(to / "large-cat.vae").hps.conditional
    capsys.readouterr()
    before = len(_Published.requests)
    assert _pretrained("cat.gen", "--to", str(to), "--base-url", server + "/ok") == 0
    assert "already there" in capsys.readouterr().out and len(_Published.requests) == before
    # a checkpoint of another data set needs its scale factor
    assert _pretrained("owl/lstm", "--to", str(to), "--base-url", server + "/ok") == 2
    assert "--scale-factor" in capsys.readouterr().err
    assert _pretrained("owl/lstm", "--to", str(to), "--base-url", server + "/ok",
                       "--scale-factor", "50") == 0
    assert load_run(to / "owl-lstm").hps.dec_model == "hyper"


def _left(to: Path) -> list[str]:
    return sorted(str(p.relative_to(to)) for p in to.rglob("*")) if to.exists() else []


@pytest.mark.parametrize("name,mode,message", [
    ("unicorn.gen", "ok", "unknown pretrained model 'unicorn.gen'"),
    ("cat.vae", "ok", "HTTP 404"),
    ("aaron_sheep/lstm", "missing", "HTTP 404"),
    ("aaron_sheep/lstm", "cut", "download cut off after"),
    ("cat.gen", "cut", "download cut off after"),
    ("aaron_sheep/lstm", "garbage", "not a zip archive"),
    ("cat.gen", "garbage", "not JSON"),
    ("catbus/lstm", "ok", "holds no catbus/lstm/model_config.json"),
])
def test_failures_are_one_line_and_leave_no_run(server, tmp_path, capsys, name, mode, message):
    to = tmp_path / "models"
    assert _pretrained(name, "--to", str(to), "--base-url", f"{server}/{mode}") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    left = _left(to)
    assert not [p for p in left if not p.startswith("downloads")], left  # no run directory
    assert not [p for p in left if "/." in p or p.startswith(".")], left  # no partial file


def test_download_command_imports_no_tensorflow():
    code = ("import sys, sketch_rnn.cli.main, sketch_rnn.serving.pretrained; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


def test_import_takes_the_archive_itself(tmp_path):
    archive = tmp_path / "sketch_rnn.zip"
    archive.write_bytes(_archive({"aaron_sheep/layer_norm_uncond": FIXTURES / "layer_norm_uncond"}))
    out = tmp_path / "run"
    assert cli.main(["import", "--from", "magenta", str(archive), "-o", str(out),
                     "--scale-factor", "2"]) == 2
    assert cli.main(["import", "--from", "magenta", str(archive), "--model",
                     "aaron_sheep/layer_norm_uncond", "-o", str(out), "--scale-factor", "2"]) == 0
    assert load_run(out).hps.dec_model == "layer_norm"

