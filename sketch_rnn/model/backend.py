"""The one seam between the model's math and the Keras backend, and the `FastPath` switches.

Every place where the project does something different on TensorFlow and on JAX is a
function of this module; the rest of the package calls these and asks no backend
questions of its own (`keras.backend.backend()` appears here only):

- `scan`: the time loop (a tf.while_loop over TensorArrays; jax.lax.scan);
- `custom_vjp`: a function with a hand-written backward (tf.custom_gradient; jax.custom_vjp);
- `xla_cluster`: one XLA cluster of a loop or a step's element-wise part on TensorFlow
  (on JAX the whole train step is jitted already, so nothing is wrapped);
- `matmul_tn`: a^T @ b without a materialised transpose;
- `compile_fn`: one compiled graph of a model's function (the sampler's: XLA; jax.jit),
  and `compiled`, the per-model cache of them (the sampler's, validation's);
- `stateless_iterations`: the optimizer's step count inside JAX's stateless train step;
- `replica_slot`: which rows of a global batch this tf.distribute replica holds;
- `accelerators`: the GPUs (or TPUs) the backend trains on, for the machine a run records;
- `FastPath.cudnn`: whether a GPU serves keras.layers.LSTM with cuDNN.

`FastPath` holds the switches of the fast paths (speed and memory only, never the numbers
beyond float32 rounding, so not hparams and not saved with a run). They are passed to the
model and its cells explicitly (`SketchRNN(hps, options=...)`, `make_cell(..., options=)`),
never read from a module global. `FastPath.plain()` turns every one off: the cells then run
their plain equations under the backend's own autodiff, the reference the tests compare the
fused kernel with (tests/test_backend.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
from keras import ops

# a tensor of the running Keras backend (tf.Tensor, jax.Array; NumPy arrays are accepted
# where ops converts them): the model code is written once for all backends
Tensor = Any


def name() -> str:
    """The Keras backend this process runs on ("tensorflow", "jax", ...)."""
    return keras.backend.backend()


def is_tensorflow() -> bool:
    return name() == "tensorflow"


def accelerators() -> list[str]:
    """The names of the accelerators this backend computes on ([] on a CPU-only machine).

    Why: a run may move between a laptop CPU and a cloud GPU (a checkpoint resumes on either
    backend), and a model card's wall time means little without the device it was spent on;
    /proc/cpuinfo (`core.machine`) cannot see a GPU.
    """
    if is_tensorflow():
        import tensorflow as tf

        return [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    if name() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    return []


@dataclass(frozen=True)
class FastPath:
    """How the recurrent loops run.

    fused: the LSTM lanes (`lanes.lstm_lanes`: the decoder LSTM, both encoder directions)
        run with their hand-written backward (`custom_vjp`); False: the same forward loop
        under the backend's autodiff (slower, more memory; the reference for the tests),
        never XLA-compiled whatever `xla_loops` says (TensorFlow cannot differentiate a
        loop's TensorArrays across an XLA cluster's boundary).
    xla_loops: compile the fused LSTM loops with XLA on TensorFlow (element-wise ops of a
        step fused into a few kernels; the big weight-gradient matmuls stay on oneDNN).
    encoder_recompute: rebuild the encoder's gates in its backward pass instead of keeping
        them through the decoder's backward (one more recurrent matmul per direction and
        step, ~200 MB less at `paper`); only the fused backward reads it. Off by default:
        storing them made a `paper` step on real sheep batches about 6% shorter on 2 AMX
        cores (bf16) for that memory; float32 gives the same numbers bit for bit either way,
        bf16 differs by float32 rounding (the rebuilt gates are summed outside XLA).
    use_cudnn: run a dropout-free decoder LSTM as `keras.layers.LSTM` (cuDNN on a
        TensorFlow GPU); None decides by backend and devices, True/False force it.
    """

    xla_loops: bool = True
    encoder_recompute: bool = False
    use_cudnn: bool | None = None
    fused: bool = True

    @classmethod
    def plain(cls) -> "FastPath":
        """Every fast path off: plain autodiff through the cells' loops, no XLA, no cuDNN."""
        return cls(xla_loops=False, encoder_recompute=False, use_cudnn=False, fused=False)

    def cudnn(self) -> bool:
        """Whether the decoder LSTM without dropout runs as keras.layers.LSTM."""
        if self.use_cudnn is not None:
            return self.use_cudnn
        if not is_tensorflow():
            return False
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))


DEFAULT = FastPath()


def scan(fn: Callable, carry: tuple, xs: tuple, y_shapes: Sequence, reverse: bool = False
         ) -> tuple[tuple, tuple]:
    """carry, ys = loop of fn(carry, x_t) -> (carry, y_t) over the leading axis of xs.

    Like jax.lax.scan (used on JAX); on TensorFlow a tf.while_loop over TensorArrays,
    whose per-step outputs need not look like the carry (Keras' TF scan insists they do).
    `y_shapes` are the per-step output shapes (TensorArray element shapes).
    """
    backend = name()
    if backend == "jax":
        import jax
        return jax.lax.scan(fn, carry, xs, reverse=reverse)
    if backend == "tensorflow":
        n = ops.shape(xs[0])[0]  # an int, or a scalar tensor in a graph traced for any T
        import tensorflow as tf
        xs_ta = [tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x)
                 for x in xs]
        ys_ta = [tf.TensorArray("float32", size=n, element_shape=shape) for shape in y_shapes]

        def body(i, carry, ys_ta):
            t = n - 1 - i if reverse else i
            carry, ys = fn(carry, tuple(ta.read(t) for ta in xs_ta))
            return i + 1, carry, [ta.write(t, y) for ta, y in zip(ys_ta, ys)]

        _, carry, ys_ta = tf.while_loop(lambda i, *_: i < n, body, (0, carry, ys_ta),
                                        maximum_iterations=n, parallel_iterations=1)
        return carry, tuple(ta.stack() for ta in ys_ta)
    n = xs[0].shape[0]
    order = range(n - 1, -1, -1) if reverse else range(n)
    ys = [None] * n
    for t in order:
        carry, ys[t] = fn(carry, tuple(x[t] for x in xs))
    return carry, tuple(ops.stack(y) for y in zip(*ys))


def custom_vjp(forward: Callable, backward: Callable) -> Callable:
    """f(*args) with a hand-written backward, on TF or JAX (Keras' custom_gradient differs
    between the two in how tuple outputs receive their upstream gradients).

    forward(*args) -> (outputs, loop residuals); backward((args, loop residuals), *douts).
    Other backends: autodiff through the forward.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def f(*args):
            args = [tf.convert_to_tensor(a) for a in args]
            # stop_gradient: no tape may record the (XLA-compiled) forward itself
            outs, res = forward(*[tf.stop_gradient(a) if a.dtype.is_floating else a
                                  for a in args])
            return outs, lambda *douts: backward((tuple(args), res), *douts)
        return f
    if backend == "jax":
        import jax

        def fwd(*args):
            outs, res = forward(*args)
            return outs, (args, res)

        f = jax.custom_vjp(lambda *args: forward(*args)[0])
        f.defvjp(fwd, lambda res, douts: backward(res, *douts))
        return f
    return lambda *args: forward(*args)[0]


def xla_cluster(fn: Callable) -> Callable:
    """fn as one XLA cluster on TensorFlow (a jit-compiled tf.function, no autograph);
    unchanged elsewhere (JAX jits the whole train step)."""
    if not is_tensorflow():
        return fn
    import tensorflow as tf

    return tf.function(fn, jit_compile=True, autograph=False)


def matmul_tn(a: Tensor, b: Tensor) -> Tensor:
    """a^T @ b for 2-D a (r, p), b (r, q) -> (p, q), without a materialised transpose
    (the weight gradient of all rows at once)."""
    if is_tensorflow():
        import tensorflow as tf

        return tf.linalg.matmul(a, b, transpose_a=True)  # (p, q)
    return ops.einsum("rp,rq->pq", a, b)


def compile_fn(model: Any, fn: Callable, xla: bool = True) -> Callable:
    """One compiled graph of fn, a function of `model`: XLA-compiled tf.function on TF
    (a plain one with xla=False), jax.jit on JAX.

    XLA fuses each step's element-wise LSTM and sampling ops: on 2 CPU cores the paper-size
    sampler ran about twice as fast as with a plain tf.function. A plain tf.function runs the
    eager kernels (oneDNN), so it gives the eager numbers; XLA's bf16 matmuls round
    differently (Keras runs the training step as a plain tf.function on CPU, its XLA parts
    only the element-wise `xla_cluster`s). No autograph: these functions loop with
    keras.ops.while_loop, never a Python `for` over a tensor, so autograph's source rewrite
    (of every function they call) bought nothing and cost each trace time: `sketch-rnn sample`
    of 25 sheep went from 6.0 s to 5.2-5.5 s on a Zen 5, the same bytes. On JAX the weights are
    passed in as arguments (Keras StatelessScope), so a jitted function never holds stale
    copies of weights that were loaded or trained later.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=xla, reduce_retracing=True, autograph=False)
    if backend == "jax":
        import jax

        variables = list(model.variables)

        def pure(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        jitted = jax.jit(pure)
        return lambda *args: jitted([v.value for v in variables], *args)
    return fn


_CACHE_ATTR = "_sketch_rnn_sampling_compiled"


def compiled(model: Any, key: tuple, build: Callable[[], Callable], xla: bool = True
             ) -> Callable:
    """The compiled variant `key` of this model, built on first use and kept on the model
    (`compile_fn`: XLA, or with xla=False a plain graph giving the eager numbers).

    Kept as a plain attribute (set past Keras' attribute tracking, so it is never saved):
    a weak-keyed global cache would keep every model alive, since its functions refer to it.
    """
    cache = model.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE_ATTR, cache)
    if key not in cache:
        cache[key] = compile_fn(model, build(), xla)
    return cache[key]


TRACE_NAMES_BASE = 2**20  # where align_trace_names moves TensorFlow's name counter


def align_trace_names() -> None:
    """Move TensorFlow's process-wide counter for the names of traced functions to a fixed
    value (the next multiple of TRACE_NAMES_BASE), so that what is traced next gets the
    same names in every process that traces the same functions from here, however much
    each traced before (a resume restores more than a new run builds). The names enter
    each XLA program's persistent-cache key (`core.compile_cache`). No-op off TensorFlow.
    """
    if not is_tensorflow():
        return
    from tensorflow.python.framework import ops as tf_ops  # the counter has no public API

    target = -(-tf_ops.uid() // TRACE_NAMES_BASE) * TRACE_NAMES_BASE
    while tf_ops.uid() < target:
        pass


def stateless_iterations(optimizer: Any, step_args: tuple) -> Any | None:
    """The optimizer's iteration count as the train step being traced sees it, or None.

    JAX's train step is stateless: it is given the optimizer's variables in its state
    argument (trainable, non-trainable, optimizer variables, metrics), and the Python-side
    `optimizer.iterations` is stale inside it, so the count is that argument's entry (a
    tracer). TensorFlow's step reads the variable itself: None.
    """
    if name() != "jax":
        return None
    index = next(i for i, v in enumerate(optimizer.variables) if v is optimizer.iterations)
    return step_args[0][2][index]


def replica_slot() -> tuple[Any, int]:
    """(index, count) of this replica in its tf.distribute sync group; (0, 1) outside
    tf.distribute, in cross-replica code (evaluation) and on other backends."""
    if not is_tensorflow():
        return 0, 1
    import tensorflow as tf

    count = tf.distribute.get_strategy().num_replicas_in_sync
    context = tf.distribute.get_replica_context()
    if count == 1 or context is None:  # one device, or cross-replica code (evaluation)
        return 0, 1
    return context.replica_id_in_sync_group, count
