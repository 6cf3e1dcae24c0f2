"""`sketch-rnn download` against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from sketch_rnn import quickdraw as qd
from sketch_rnn.cli import data_commands as data_cmds
from sketch_rnn.cli import build_parser
from sketch_rnn.data import load_npz
from sketch_rnn.core.errors import SketchRNNError

ROOT = Path(__file__).resolve().parents[1]
SIMPLIFIED = ROOT / "data" / "quickdraw_simplified_344x25.ndjson"


def _sketch_npz(tmp_dir: Path) -> bytes:
    """A small valid sketch-rnn .npz, as served by the fake storage."""
    rng = np.random.default_rng(0)
    sketches = [np.column_stack([rng.integers(-9, 9, (n, 2)), np.eye(n, dtype=int)[-1]])
                for n in (5, 7, 3, 4)]
    path = tmp_dir / "served.npz"
    qd.write_npz(str(path), {"train": sketches[:2], "valid": sketches[2:3], "test": sketches[3:]})
    return path.read_bytes()


class _Storage(http.server.BaseHTTPRequestHandler):
    """/ok/* serves the file, /cut/* closes half way, /garbage/* serves junk, else 404."""

    body = b""
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        mode = self.path.split("/")[1]
        if mode not in ("ok", "cut", "garbage"):
            self.send_error(404, "Not Found")
            return
        body = b"not a zip file at all" * 50 if mode == "garbage" else self.body
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if mode == "cut" else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _Storage.body = _sketch_npz(tmp_path_factory.mktemp("served"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Storage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _download(*argv: str) -> int:
    return data_cmds.cmd_download(build_parser().parse_args(["download", *argv, "--no-progress"]))


def test_category_list_is_the_345_names(capsys):
    words = {json.loads(line)["word"] for line in SIMPLIFIED.open()}
    assert len(words) == 344 and "zigzag" not in words
    assert set(qd.CATEGORIES) == words | {"zigzag"}
    assert len(qd.CATEGORIES) == len(set(qd.CATEGORIES)) == 345
    assert _download("--list") == 0
    assert capsys.readouterr().out.splitlines() == list(qd.CATEGORIES)


def test_url_quotes_spaces():
    assert qd.category_url("hot air balloon") == qd.DEFAULT_BASE_URL + "hot%20air%20balloon.npz"
    assert qd.category_url("cat", "http://h/x") == "http://h/x/cat.npz"


def test_download_success(server, tmp_path, capsys):
    dest = tmp_path / "data"
    ok = server + "/ok/"
    assert _download("cat", "hot air balloon", "--to", str(dest), "--base-url", ok) == 0
    assert "/ok/hot%20air%20balloon.npz" in _Storage.requests
    assert sorted(os.listdir(dest)) == ["cat.npz", "hot air balloon.npz"]
    assert (dest / "cat.npz").read_bytes() == _Storage.body
    assert [len(v) for v in load_npz(dest / "cat.npz").values()] == [2, 1, 1]
    assert "cat.npz: train 2, valid 1, test 1" in capsys.readouterr().out
    # A file already there is complete by construction: not fetched again.
    before = len(_Storage.requests)
    assert _download("cat", "--to", str(dest), "--base-url", server + "/ok/") == 0
    assert len(_Storage.requests) == before and "already there" in capsys.readouterr().out


@pytest.mark.parametrize("mode, message", [
    ("missing", "HTTP 404"),
    ("cut", "download cut off after"),
    ("garbage", "not a valid sketch-rnn .npz"),
])
def test_failed_download_leaves_no_file(server, tmp_path, mode, message):
    with pytest.raises(SketchRNNError, match=message) as err:
        _download("cat", "--to", str(tmp_path), "--base-url", f"{server}/{mode}/")
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


def test_unknown_category_is_refused_before_any_request(tmp_path):
    with pytest.raises(SketchRNNError, match="unknown category 'unicorn'"):
        _download("unicorn", "--to", str(tmp_path))
    assert qd.canonical_category("the eiffel tower") == "The Eiffel Tower"


def test_cli_404_is_one_line_exit_2(server, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "sketch_rnn", "download", "cat", "--to", str(tmp_path),
         "--base-url", server + "/missing/", "--no-progress"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sketch-rnn download: error: {server}/missing/cat.npz: HTTP 404 Not Found"]
    assert os.listdir(tmp_path) == []
