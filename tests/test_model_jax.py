"""The model trains on the JAX backend (a fresh process: the backend is chosen at import)."""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # trains or executes in subprocesses for minutes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    sys.path.insert(0, {tests!r})
    from test_model import make_batch, tiny
    from sketch_rnn.model.vae import SketchRNN

    x = make_batch(4, 16)
    steps = 40
    xs = {{k: np.tile(v, (steps,) + (1,) * (v.ndim - 1)) for k, v in x.items()}}

    def train(seed, dec_model):
        keras.utils.set_random_seed(seed)
        m = SketchRNN(tiny(dec_model=dec_model, learning_rate=0.01, max_seq_len=16), seed=seed)
        m.compile_for_training()
        costs = []
        class Log(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                costs.append(float(logs["cost"]))
        m.fit(xs, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[Log()])
        return m, np.array(costs)

    m, costs = train(0, "lstm")
    assert np.all(np.isfinite(costs)), costs
    first, last = costs[:5].mean(), costs[-5:].mean()
    assert last < first - 0.5, (first, last)
    print("cost", first, "->", last)
    assert int(m.optimizer.iterations.numpy()) == steps

    # same seed: identical weights; the step-keyed dropout/z draws follow the iterations
    b, _ = train(0, "lstm")
    assert all(np.array_equal(p, q) for p, q in zip(m.get_weights(), b.get_weights()))
    m.optimizer.iterations.assign(3)
    t1 = m.loss_terms(x["strokes"], x["lengths"], training=True)["stroke"]
    t2 = m.loss_terms(x["strokes"], x["lengths"], training=True)["stroke"]
    m.optimizer.iterations.assign(4)
    t3 = m.loss_terms(x["strokes"], x["lengths"], training=True)["stroke"]
    assert np.array_equal(np.asarray(t1), np.asarray(t2))
    assert not np.array_equal(np.asarray(t1), np.asarray(t3))

    # the sampler's contract: stepping == teacher-forced decoding (here for the HyperLSTM)
    m = SketchRNN(tiny(dec_model="hyper", enc_model="layer_norm"), seed=1)
    z = np.asarray(m.encode(x["strokes"], x["lengths"])[0])
    seq = np.asarray(m.decode_sequence(x["strokes"][:, :6], z))
    states = m.initial_state(z, 4)
    for t in range(5):
        raw, states = m.decode_step(x["strokes"][:, t], z, states)
        np.testing.assert_allclose(np.asarray(raw), seq[:, t], rtol=1e-5, atol=1e-5)
    print("JAX OK")
""")


def test_trains_on_jax_backend():
    pytest.importorskip("jax")
    script = _SCRIPT.format(tests=os.path.join(REPO, "tests"))
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert "JAX OK" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
