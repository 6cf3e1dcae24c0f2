"""Every fuzz target (`fuzz/target_*.py`) under the campaign's short deterministic profile
(`python fuzz/campaign.py --profile ci`): the same inputs on every run, none may fail.

The targets whose every input loads TensorFlow models (imports, commands on a damaged run)
are `slow`; the corrupted-run targets start from the session's `twenty_step_run`. Each
target's properties are in its module; the controls below plant a bug a target must find.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # fuzz/ sits beside the package, outside it
    sys.path.insert(0, str(ROOT))

from fuzz import campaign  # noqa: E402

TARGETS = campaign.load_targets()


@pytest.fixture
def fuzz_run(twenty_step_run, monkeypatch):
    """The corrupted-run targets start from the session's 20-step run (never modified)."""
    monkeypatch.setenv("SKETCH_RNN_FUZZ_RUN", str(twenty_step_run))
    import fuzz.target_runs as runs

    runs.base_run.cache_clear()
    runs.original.cache_clear()
    yield twenty_step_run
    runs.base_run.cache_clear()
    runs.original.cache_clear()


def run_ci(name: str) -> dict:
    out = io.StringIO()
    result = campaign.campaign({name: TARGETS[name]}, "ci", None, None, 0, out=out)[name]
    assert result["failures"] == 0, out.getvalue()
    assert result["inputs"] >= TARGETS[name].ci_examples  # every planned input ran
    return result


def test_every_reader_has_a_target():
    """The inputs issue 54 lists, each fuzzed (HTTP bodies live in target_http, server's)."""
    assert {"strokes.complete_strokes", "quickdraw.ndjson", "quickdraw.bin", "quickdraw.convert",
            "npz.load", "magenta.magenta_js", "magenta.magenta_config", "magenta.magenta_folder",
            "hparams.overrides", "runs.verify", "runs.load", "runs.sample", "runs.evaluate",
            "runs.export", "runs.serve", "runs.resume", "strokes.stroke5_round_trip",
            "quickdraw.convert_round_trip", "magenta.int16_codes"} <= set(TARGETS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if t.slow else n
                                  for n, t in TARGETS.items()
                                  if not n.startswith("http.")])  # tests/test_server_fuzz.py
def test_target(name, request):
    if name.startswith("runs."):  # the damaged runs start from the session's tiny run
        request.getfixturevalue("fuzz_run")
    run_ci(name)


def test_the_ci_profile_is_deterministic():
    """Two ci runs of a target try the same number of inputs (derandomized)."""
    assert run_ci("npz.load")["inputs"] == run_ci("npz.load")["inputs"]


# --------------------------------------------------------------------------- controls
def test_a_planted_bug_in_npz_validation_is_found(monkeypatch):
    """Control: with the value checks of the .npz reader switched off, the npz target fails
    (a NaN offset or a pen of 2 is then accepted)."""
    from sketch_rnn.data import npz

    monkeypatch.setattr(npz, "_check_values", lambda *a: None)
    out = io.StringIO()
    result = campaign.campaign({"npz.load": TARGETS["npz.load"]}, "ci", None, 200, 0, out=out)
    assert result["npz.load"]["failures"] == 1, out.getvalue()
    assert "accepted" in out.getvalue()


def test_a_planted_bug_in_checkpoint_verification_is_found(fuzz_run, monkeypatch):
    """Control: a verify that trusts every checkpoint (no sha256) lets a damaged one be
    taken, and the corrupted-run target says so."""
    import json

    from sketch_rnn.training import checkpoint

    def trusting(path):
        return checkpoint.Checkpoint(path, json.loads((path / "state.json").read_text()))

    monkeypatch.setattr(checkpoint, "verify", trusting)
    out = io.StringIO()
    result = campaign.campaign({"runs.verify": TARGETS["runs.verify"]}, "ci", None, 100, 0,
                               out=out)
    assert result["runs.verify"]["failures"] >= 1, out.getvalue()
