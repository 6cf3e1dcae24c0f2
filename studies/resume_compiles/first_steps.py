"""Where a length bucket's first training step spends its seconds: Python tracing against
the rest (grappler, XLA's compile, the run), with and without the compile cache.

    python studies/resume_compiles/first_steps.py 0,3,7 tiny               # no cache
    CACHE=/tmp/c python studies/resume_compiles/first_steps.py 0,3,7 tiny  # twice: cold, warm

Runs the trainer's own per-bucket train function (`per_shape_train_function`) on one batch
of each named bucket of data/aaron_sheep.npz, in that order, then the first bucket again
(the steady step); cProfile splits each call into TensorFlow's Python tracing
(`func_graph_from_py_func`) and the call into the runtime (`quick_execute`).
"""
import cProfile
import os
import pstats
import sys
import tempfile
import time

order = [int(x) for x in sys.argv[1].split(",")]
preset_name = sys.argv[2]
from sketch_rnn.core import compile_cache  # noqa: E402

if os.environ.get("CACHE"):
    compile_cache.enable(os.environ["CACHE"])  # before TensorFlow starts
from sketch_rnn.data.batches import _bucket_table, batch_from_indices  # noqa: E402
from sketch_rnn.training.run_state import plan_run  # noqa: E402
from sketch_rnn.training.trainer import Trainer, per_shape_train_function  # noqa: E402

config = plan_run(tempfile.mkdtemp(), ["data/aaron_sheep.npz"], preset_name, None, 100, 1)
trainer = Trainer(config, progress=False)
model, split, hps = trainer.model, trainer.data.train, trainer.hps
buckets, pads = _bucket_table(split, hps.batch_size, hps.max_seq_len)
step = per_shape_train_function(model)
model.make_train_function()  # builds the optimizer's variables as fit does
for j in order + order[:1]:
    strokes, lengths = batch_from_indices(split, buckets[j][:hps.batch_size], pads[j])
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    step(iter([{"strokes": strokes, "lengths": lengths}]))
    profile.disable()
    seconds = time.perf_counter() - t0
    stats = pstats.Stats(profile).stats
    trace = max((v[3] for k, v in stats.items() if k[2] == "func_graph_from_py_func"), default=0)
    run = sum(v[3] for k, v in stats.items() if k[2] == "quick_execute")
    print(f"bucket {j} T={pads[j]}: {seconds:.2f} s, python tracing {trace:.2f} s, "
          f"runtime (grappler, XLA, run) {run:.2f} s", flush=True)
if os.environ.get("CACHE"):
    compile_cache.close()
