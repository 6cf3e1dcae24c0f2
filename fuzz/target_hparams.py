"""`--hparams k=v,...` strings and hparams JSON (a run's state.json, an import's config):
a valid, finite HParams that survives its own JSON round trip, or one line of our error."""
from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fuzz.common import PropertyViolation, ours
from sketch_rnn.core.hparams import HParams, field_names, parse_overrides, preset

_ODD = ["nan", "NaN", "inf", "-inf", "1e999", "-0", "0", "1", "-1", "0.5", "1e-300", "true",
        "False", "yes", "", " ", "1_000", "0x10", "\u0661", "\uff11", "lstm", "hyper",
        "bfloat16", "float32", "9" * 30, "1.0", "2.5", "\x00", "a=b", "=", ","]
_VALUE = st.one_of(st.sampled_from(_ODD), st.text(max_size=6),
                   st.floats(allow_nan=True).map(repr), st.integers(-2**70, 2**70).map(str))
_KEY = st.one_of(st.sampled_from(field_names()), st.text(max_size=6))
_ITEM = st.one_of(st.builds(lambda k, v: f"{k}={v}", _KEY, _VALUE), st.text(max_size=8))
OVERRIDES = st.one_of(st.lists(_ITEM, max_size=5).map(",".join), st.text(max_size=40))


def check(h: HParams) -> None:
    """What any accepted HParams must be: finite numbers, and equal to its JSON round trip."""
    for name, value in h.to_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise PropertyViolation(f"hparam {name}={value!r} accepted")
    again = HParams.from_json(h.to_json())
    if again != h:
        raise PropertyViolation(f"JSON round trip changed the hparams: {h} -> {again}")


@given(OVERRIDES, st.sampled_from(["tiny", "small", "paper"]))
def overrides(text: str, name: str) -> None:
    """`--hparams TEXT` on a preset."""
    if ours(parse_overrides, text) is None:
        return
    h = ours(preset(name).with_overrides, text)
    if h is not None:
        check(h)


_JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True), st.text(max_size=5), st.sampled_from(_ODD),
                        st.lists(st.integers(), max_size=2))


@given(st.dictionaries(_KEY, _JSON_VALUE, max_size=6), st.booleans())
def from_json(values: dict, on_preset: bool) -> None:
    """An hparams JSON object (what state.json and an import's config hold)."""
    import json

    base = preset("tiny").to_dict() if on_preset else {}
    h = ours(HParams.from_json, json.dumps({**base, **values}))
    if h is not None:
        check(h)


TARGETS = {"overrides": overrides, "from_json": from_json}
