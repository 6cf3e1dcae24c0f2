"""HParams: the original's defaults, presets, JSON round trip and checked overrides."""
from __future__ import annotations

import json

import pytest

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import HParams, describe, field_names, parse_overrides, preset


def test_paper_defaults():
    h = preset("paper")
    assert h == HParams()
    assert (h.enc_rnn_size, h.dec_rnn_size, h.z_size, h.num_mixture) == (256, 512, 128, 20)
    assert (h.batch_size, h.max_seq_len, h.save_every) == (100, 250, 500)
    assert (h.learning_rate, h.decay_rate, h.min_learning_rate) == (1e-3, 0.9999, 1e-5)
    assert (h.kl_weight, h.kl_weight_start, h.kl_decay_rate, h.kl_tolerance) == \
        (0.5, 0.01, 0.99995, 0.2)
    assert (h.use_recurrent_dropout, h.recurrent_dropout_prob) == (True, 0.90)
    assert (h.random_scale_factor, h.augment_stroke_prob, h.grad_clip) == (0.15, 0.10, 1.0)
    assert h.conditional is True and h.enc_model == h.dec_model == "lstm"
    assert set(describe()) == set(field_names()) and all(describe().values())


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_json_round_trip(name):
    h = preset(name).replace(dec_model="layer_norm", conditional=False, kl_weight=0.25)
    text = h.to_json()
    assert json.loads(text)["dec_model"] == "layer_norm"
    back = HParams.from_json(text)
    assert back == h and back.to_dict() == h.to_dict()


def test_presets_differ_in_size():
    tiny, small, paper = preset("tiny"), preset("small"), preset("paper")
    assert tiny.dec_rnn_size < small.dec_rnn_size < paper.dec_rnn_size
    with pytest.raises(SketchRNNError, match="unknown preset 'huge'"):
        preset("huge")


def test_overrides_are_typed():
    h = HParams().with_overrides("batch_size=32, learning_rate=5e-4,conditional=false,"
                                 "dec_model=hyper")
    assert h.batch_size == 32 and isinstance(h.batch_size, int)
    assert h.learning_rate == 5e-4 and h.conditional is False and h.dec_model == "hyper"
    assert parse_overrides("") == {} and parse_overrides(None) == {}
    assert parse_overrides("use_input_dropout=yes") == {"use_input_dropout": True}


@pytest.mark.parametrize("text, message", [
    ("batch_szie=3", "unknown hparam 'batch_szie'"),
    ("batch_size=3.5", "batch_size='3.5': expected int"),
    ("conditional=maybe", "conditional='maybe': expected bool"),
    ("learning_rate=fast", "learning_rate='fast': expected float"),
    ("dec_model=gru", "dec_model='gru': must be one of"),
    ("batch_size=0", "batch_size=0: must be > 0"),
    ("recurrent_dropout_prob=1.5", "recurrent_dropout_prob=1.5: must be in (0, 1]"),
    ("z_size", "expected key=value"),
])
def test_override_errors_name_the_key(text, message):
    with pytest.raises(SketchRNNError) as err:
        HParams().with_overrides(text)
    assert message in str(err.value)


def test_json_errors():
    with pytest.raises(SketchRNNError, match="unknown hparam"):
        HParams.from_json('{"not_a_field": 1}')
    with pytest.raises(SketchRNNError, match="not valid"):
        HParams.from_json("{broken")
    with pytest.raises(SketchRNNError, match="must be an object"):
        HParams.from_json("[1, 2]")
    with pytest.raises(SketchRNNError, match="expected int"):
        HParams.from_json('{"batch_size": true}')
