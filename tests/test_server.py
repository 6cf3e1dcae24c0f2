"""The `serve` JSON API through Starlette's TestClient, on untrained tiny models.

Good requests must return well-formed stroke-3 sketches that match the library called
directly; every kind of bad request must get a 400 with a one-line JSON error naming
the field, never a 500.
"""
from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx still works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from sketch_rnn.generation.completion import complete  # noqa: E402
from sketch_rnn.core.hparams import preset  # noqa: E402
from sketch_rnn.serving.server import MAX_N, create_app  # noqa: E402

N_MAX = 32
SCALE = 10.0
PREFIX = [[0.0, 12.0, 0.0], [15.0, 3.0, 0.0], [4.0, -20.0, 1.0], [-30.0, 5.0, 0.0],
          [10.0, 10.0, 1.0]]


def fake_run(conditional: bool, cell: str = "lstm"):
    """What checkpoint.load_run returns, with an untrained tiny model."""
    from sketch_rnn.model.vae import SketchRNN

    hps = preset("tiny").replace(max_seq_len=N_MAX, conditional=conditional, dec_model=cell)
    m = SketchRNN(hps, seed=1)
    ckpt = types.SimpleNamespace(name="ckpt-00000007", step=7)
    return types.SimpleNamespace(model=m, hps=hps, scale_factor=SCALE, checkpoint=ckpt, step=7)


@pytest.fixture(scope="module")
def cond_run():
    return fake_run(True)


def local_client(app) -> TestClient:
    """A TestClient that names the server as a browser on this machine does (Host header)."""
    return TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(cond_run):
    with local_client(create_app(cond_run, "runs/tiny", log_requests=True)) as c:
        yield c


@pytest.fixture(scope="module")
def uncond_client():
    with local_client(create_app(fake_run(False, "layer_norm"))) as c:
        yield c


def well_formed(sketches, n: int) -> None:
    assert isinstance(sketches, list) and len(sketches) == n
    for s in sketches:
        a = np.asarray(s, dtype=np.float64).reshape(-1, 3)
        assert len(a) == len(s) and np.all(np.isfinite(a)) and set(a[:, 2]) <= {0.0, 1.0}


# --------------------------------------------------------------------------- good requests
def test_info(client):
    info = client.get("/api/info").json()
    assert info == {"run_dir": "runs/tiny", "checkpoint": "ckpt-00000007", "step": 7,
                    "conditional": True, "cell": "lstm", "max_seq_len": N_MAX,
                    "scale_factor": SCALE, "max_n": MAX_N, "max_temperature": 2.0}


def test_complete_matches_the_library(client, cond_run):
    r = client.post("/api/complete", json={"strokes": PREFIX, "n": 5, "temperature": 0.7,
                                           "seed": 3})
    assert r.status_code == 200, r.text
    a = r.json()
    well_formed(a["endings"], 5)
    assert (a["n"], a["temperature"], a["seed"], a["z_mode"]) == (5, 0.7, 3, "prior")
    ref = complete(cond_run.model, np.array(PREFIX), 5, 0.7, 3, scale_factor=SCALE)
    for got, want in zip(a["endings"], ref.endings):
        np.testing.assert_allclose(np.reshape(got, (-1, 3)), want, atol=1e-3)
    assert any(len(e) for e in a["endings"])


def test_complete_encode_mode_and_random_seed(client):
    a = client.post("/api/complete", json={"strokes": PREFIX, "z_mode": "encode"}).json()
    assert a["z_mode"] == "encode" and a["n"] == 8 and isinstance(a["seed"], int)
    again = client.post("/api/complete", json={"strokes": PREFIX, "z_mode": "encode",
                                               "seed": a["seed"]}).json()
    assert again["endings"] == a["endings"]  # the returned seed reproduces the answer


def test_sample_and_reconstruct(client):
    s = client.post("/api/sample", json={"n": 3, "temperature": 1.0, "seed": 1}).json()
    well_formed(s["sketches"], 3)
    assert any(len(x) for x in s["sketches"])
    r = client.post("/api/reconstruct", json={"strokes": PREFIX, "n": 4, "temperature": 0.5,
                                              "seed": 1}).json()
    well_formed(r["sketches"], 4)


def test_decoder_only_model(uncond_client):
    assert uncond_client.get("/api/info").json()["conditional"] is False
    a = uncond_client.post("/api/complete", json={"strokes": PREFIX, "n": 2, "seed": 0})
    assert a.status_code == 200
    well_formed(a.json()["endings"], 2)
    for path, body in (("/api/reconstruct", {"strokes": PREFIX}),
                       ("/api/complete", {"strokes": PREFIX, "z_mode": "encode"})):
        r = uncond_client.post(path, json=body)
        assert r.status_code == 400 and "decoder-only" in r.json()["error"]


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "//cdn" not in page.text and "https://" not in client.get("/static/app.js").text


def test_request_log_only_when_asked(client, uncond_client):
    client.post("/api/sample", json={"n": 1, "temperature": 0.3, "seed": 9})
    assert client.get("/api/log").json()[-1] == {
        "path": "/api/sample", "body": {"n": 1, "temperature": 0.3, "seed": 9}}
    uncond_client.post("/api/sample", json={"n": 1, "seed": 9})  # served without the log
    r = uncond_client.get("/api/log")
    assert r.status_code == 404 and r.json() == {"error": "/api/log: Not Found"}
    assert len(uncond_client.app.state.log) == 0  # nothing kept either


# --------------------------------------------------------------------------- bad requests
LONG = [[1.0, 1.0, 0.0]] * (N_MAX + 1)
BAD = [
    ("/api/complete", b"{not json", "body: malformed JSON"),
    ("/api/complete", b"\xff\xfe", "body: malformed JSON"),
    ("/api/complete", b"[1, 2]", "body: expected a JSON object"),
    ("/api/complete", b"[" * 100000 + b"]" * 100000, "body: malformed JSON"),
    ("/api/complete", b'{"strokes": [[1' + b"0" * 400 + b', 0, 0]]}', "number too large"),
    ("/api/complete", {"n": 2}, "strokes: expected a list"),
    ("/api/complete", {"strokes": []}, "strokes: is empty"),
    ("/api/complete", {"strokes": "0,0,1"}, "strokes: expected a list"),
    ("/api/complete", {"strokes": LONG}, f"at most {N_MAX}"),
    ("/api/complete", {"strokes": [[1, 2]]}, r"strokes[0]: expected [dx, dy, pen]"),
    ("/api/complete", {"strokes": [[1, 2, 0], 5]}, "strokes[1]: expected"),
    ("/api/complete", {"strokes": [[1, "2", 0]]}, "strokes[0]: expected a number"),
    ("/api/complete", {"strokes": [[1, True, 0]]}, "strokes[0]: expected a number, got bool"),
    ("/api/complete", {"strokes": [[1, None, 0]]}, "strokes[0]: expected a number"),
    ("/api/complete", b'{"strokes": [[1, NaN, 0]]}', "strokes[0]: must be finite"),
    ("/api/complete", b'{"strokes": [[1, Infinity, 0]]}', "strokes[0]: must be finite"),
    ("/api/complete", {"strokes": [[1e300, 0, 0]]}, "strokes: values beyond +-1e+06"),
    ("/api/complete", {"strokes": PREFIX, "n": 0}, "n=0: must be in 1..16"),
    ("/api/complete", {"strokes": PREFIX, "n": 17}, "n=17: must be in 1..16"),
    ("/api/complete", {"strokes": PREFIX, "n": 2.5}, "n: expected an integer"),
    ("/api/complete", {"strokes": PREFIX, "n": "8"}, "n: expected an integer"),
    ("/api/complete", {"strokes": PREFIX, "temperature": 0}, "temperature=0.0: must be in"),
    ("/api/complete", {"strokes": PREFIX, "temperature": 2.5}, "temperature=2.5: must be in"),
    ("/api/complete", {"strokes": PREFIX, "temperature": -1}, "temperature=-1.0"),
    ("/api/complete", {"strokes": PREFIX, "temperature": "hot"}, "temperature: expected a"),
    ("/api/complete", b'{"strokes": [[1, 0, 1]], "temperature": NaN}', "temperature: must be"),
    ("/api/complete", {"strokes": PREFIX, "seed": -1}, "seed=-1: must be in"),
    ("/api/complete", {"strokes": PREFIX, "seed": "x"}, "seed: expected an integer"),
    ("/api/complete", {"strokes": PREFIX, "z_mode": "both"}, "z_mode='both'"),
    ("/api/sample", {"n": 100}, "n=100"),
    ("/api/sample", {"temperature": [1]}, "temperature: expected a number"),
    ("/api/reconstruct", {"strokes": LONG}, f"at most {N_MAX}"),
    ("/api/reconstruct", {"strokes": [[0, 0, 1]], "n": -3}, "n=-3"),
]


@pytest.mark.parametrize("path,body,message", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_requests_are_one_line_400s(client, path, body, message):
    if isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in r.text


def test_wrong_methods_and_paths_are_one_line_4xx(client):
    for r, status in ((client.get("/api/complete"), 405),
                      (client.post("/api/nothing", json={}), 404),
                      (client.get("/static/../server.py"), 404),
                      (client.get("/static/nothing.js"), 404)):
        assert r.status_code == status and list(r.json()) == ["error"], r.text
        assert "\n" not in r.json()["error"]


def test_bad_body_does_not_break_the_next_request(client):
    client.post("/api/complete", content=b"\x00" * 10)
    ok = client.post("/api/complete", json={"strokes": PREFIX, "n": 1, "seed": 0})
    assert ok.status_code == 200 and json.loads(ok.text)["n"] == 1


# --------------------------------------------------------------------------- the command
@pytest.mark.parametrize("argv,match", [
    (["--port", "70000"], "--port 70000: must be in 0..65535"),
    ([], "no such run directory"),
])
def test_serve_command_errors_are_one_line(tmp_path, capsys, argv, match):
    from sketch_rnn import cli

    assert cli.run(["serve", "--run-dir", str(tmp_path / "none"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err
