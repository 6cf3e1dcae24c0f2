"""The HTTP fuzz targets (`fuzz/target_http.py`) under a short deterministic profile.

The same targets run for minutes or hours in the fuzz campaign (`python fuzz/campaign.py
--target http`); here each runs a few dozen derandomized inputs, so that a regression of
the property (a valid answer or a one-line 4xx; never a 5xx nor a hang) fails the suite.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from hypothesis import HealthCheck, settings  # noqa: E402

PATH = Path(__file__).resolve().parents[1] / "fuzz" / "target_http.py"


@pytest.fixture(scope="module")
def targets():
    spec = importlib.util.spec_from_file_location("_fuzz_target_http", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["bytes", "json", "fields", "host"])
def test_http_target_short_profile(targets, name):
    fn = targets.TARGETS[name]
    settings(max_examples=targets.CI_EXAMPLES[name], derandomize=True, database=None,
             deadline=None, suppress_health_check=list(HealthCheck))(fn)()
