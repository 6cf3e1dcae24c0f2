"""`sketch_rnn.load(path)`: a trained run as one object that samples, encodes, completes.

The methods are the commands' (`sketch-rnn sample`, `interpolate`, `complete`, `evaluate`)
with the same defaults, so a notebook and the command line give the same sketches for the
same seed; the CLI's handlers call these methods. They wrap `generation.sampling`,
`generation.completion` and `evaluation.report` and return `Sketches` (draw inline, save as
SVG, PNG, GIF or .npz) or arrays. Sketches going in are stroke-3 in data units: one array
(n, 3), a list of them, the `Sketches` a call returned, or `from_data="x.npz", index=...`
(a split of a data file, as the commands' `--from` and `--index`).

    >>> import sketch_rnn
    >>> model = sketch_rnn.load("checkpoints/sheep")          # doctest: +SKIP
    >>> model.sample(8, temperature=0.25).save("sheep.svg")   # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..data import read_sketches
from .sketches import Completion, Sketches, as_sketch_list

PathLike = str | os.PathLike
Index = int | Sequence[int]


def load(path: PathLike) -> Model:
    """The newest complete checkpoint of a run directory as a `Model`.

    `path`: a directory made by `sketch_rnn.train` / `sketch-rnn train`, a shipped one
    (`checkpoints/sheep`), or one made by `sketch-rnn import` (Magenta's or magenta.js's
    models). A checkpoint that fails its manifest is skipped for the one before it.

    >>> import sketch_rnn
    >>> model = sketch_rnn.load("checkpoints/sheep")                  # doctest: +SKIP
    >>> model.sample(8, temperature=0.25, seed=1)                     # doctest: +SKIP
    >>> model.reconstruct(from_data="data/aaron_sheep.npz", index=[0, 1]).save("rec.png")  # doctest: +SKIP
    >>> model.complete([[0, 0, 0], [30, 0, 0], [0, 25, 1]], n=4).save("endings.svg")  # doctest: +SKIP
    """
    from ..core.compile_cache import enable as enable_compile_cache

    enable_compile_cache()  # before TensorFlow starts: the next load reuses the programs
    from ..training.runs import load_run  # Keras: only now

    return Model(load_run(path), path)


class Model:
    """A trained Sketch-RNN and what its run knows (hparams, step, the data's scale factor).

    `keras_model` is the Keras model itself; `hps` its hyperparameters. Every method is
    deterministic for its `seed`.
    """

    def __init__(self, run: Any, path: PathLike | None = None) -> None:
        """`run`: a loaded run (`training.runs.load_run`): `.model`, `.hps`, `.scale_factor`."""
        self.run = run
        self.path = None if path is None else Path(path)
        self._name = str(path) if path is not None else "model"

    def __repr__(self) -> str:
        hps = self.hps
        kind = "VAE" if hps.conditional else "decoder-only"
        return (f"<sketch_rnn.Model {self._name}: {kind}, {hps.dec_model} {hps.dec_rnn_size}, "
                f"step {getattr(self.run, 'step', '?')}>")

    @property
    def keras_model(self) -> Any:
        """The Keras model (`sketch_rnn.model.vae.SketchRNN`) with the checkpoint's weights."""
        return self.run.model

    @property
    def hps(self) -> Any:
        """The run's hyperparameters (`HParams`: z_size, max_seq_len = N_max, dec_model, ...)."""
        return self.run.hps

    @property
    def step(self) -> int:
        """The training step of the checkpoint loaded."""
        return int(self.run.step)

    @property
    def scale_factor(self) -> float:
        """The data's scale factor: sketches in data units are divided by it for the model."""
        return float(self.run.scale_factor)

    @property
    def conditional(self) -> bool:
        """Whether the model has an encoder (a VAE), so that encode and interpolate apply."""
        return bool(self.hps.conditional)

    def info(self) -> dict[str, Any]:
        """What `sketch-rnn info --json` prints for the run (step, checkpoints, fingerprint, ...)."""
        from ..training.runs import info

        return info(self._need_path())

    # ----------------------------------------------------------------- inputs
    def _need_path(self) -> Path:
        if self.path is None:
            raise SketchRNNError("this model was not loaded from a run directory")
        return self.path

    def read(self, data: PathLike, index: Index, split: str = "test") -> Sketches:
        """Sketches `index` (one int or several) of a data file's split, in data units, as
        this model takes them (longer than its N_max: an error naming the index)."""
        indices = [index] if isinstance(index, (int, np.integer)) else list(index)
        return Sketches(read_sketches(data, split, indices, int(self.hps.max_seq_len), "index"))

    def _inputs(self, sketches: Any, from_data: PathLike | None, index: Index | None,
                split: str, name: str) -> list[np.ndarray]:
        if from_data is None:
            if sketches is None:
                raise SketchRNNError(f"{name}: give sketches, or from_data= and index=")
            return as_sketch_list(sketches, name)
        if sketches is not None or index is None:
            raise SketchRNNError(f"{name}: from_data= goes with index= (and no sketches)")
        return list(self.read(from_data, index, split))

    def _latent(self, what: str) -> None:
        if not self.conditional:
            raise SketchRNNError(f"{self._name}: a decoder-only model has no latent space "
                                 f"({what} needs an encoder)")

    # ----------------------------------------------------------------- generation
    def sample(self, n: int = 16, *, temperature: float = 0.5, greedy: bool = False,
               seed: int = 0, z: np.ndarray | None = None, max_len: int | None = None,
               discrete_temperature: float | None = None) -> Sketches:
        """n sketches with z from the prior N(0, I) (or the given z: (n, z_size) or one
        (z_size,) code), as `sketch-rnn sample`. temperature tau follows the paper (logits
        / tau, covariance * tau); greedy=True takes the most likely component and its mean.
        discrete_temperature: magenta.js's split temperature for the logits."""
        from ..generation.sampling import prior_z, sample

        if self.conditional and z is None:
            from ..generation.sampling import check_n

            z = prior_z(check_n(n), int(self.hps.z_size), seed)  # the codes sample() draws
        out = sample(self.keras_model, n, temperature=temperature, greedy=greedy, seed=seed,
                     z=z, scale_factor=self.scale_factor, max_len=max_len,
                     discrete_temperature=discrete_temperature)
        return Sketches(out, z=None if z is None else np.asarray(z, np.float32))

    def encode(self, sketches: Any = None, *, from_data: PathLike | None = None,
               index: Index | None = None, split: str = "test", sample_z: bool = False,
               seed: int = 0) -> np.ndarray:
        """Latent codes (B, z_size) of sketches: the posterior mean mu, or with sample_z=True
        a draw mu + exp(sigma_hat / 2) * eps as in training."""
        from ..generation.sampling import encode

        self._latent("encode")
        items = self._inputs(sketches, from_data, index, split, "sketches")
        return encode(self.keras_model, items, scale_factor=self.scale_factor,
                      sample_z=sample_z, seed=seed)

    def decode(self, z: np.ndarray | None, *, n: int | None = None, temperature: float = 0.5,
               greedy: bool = False, seed: int = 0, max_len: int | None = None) -> Sketches:
        """One sketch per code z (B, z_size); a decoder-only model takes z=None and n."""
        from ..generation.sampling import decode

        out = decode(self.keras_model, z, n=n, temperature=temperature, greedy=greedy,
                     seed=seed, scale_factor=self.scale_factor, max_len=max_len)
        return Sketches(out, z=None if z is None else np.asarray(z, np.float32))

    def reconstruct(self, sketches: Any = None, *, from_data: PathLike | None = None,
                    index: Index | None = None, split: str = "test", temperature: float = 0.5,
                    greedy: bool = False, seed: int = 0, sample_z: bool = False,
                    discrete_temperature: float | None = None) -> Sketches:
        """Each sketch encoded and decoded again: one new sketch per input (`sketch-rnn
        sample --from`)."""
        from ..generation.sampling import reconstruct

        self._latent("reconstruct")
        items = self._inputs(sketches, from_data, index, split, "sketches")
        out = reconstruct(self.keras_model, items, temperature=temperature, greedy=greedy,
                          seed=seed, scale_factor=self.scale_factor, sample_z=sample_z,
                          discrete_temperature=discrete_temperature)
        return Sketches(out)

    def interpolate(self, a: Any = None, b: Any = None, *, from_data: PathLike | None = None,
                    index: Sequence[int] | None = None, split: str = "test", steps: int = 10,
                    method: str = "slerp", temperature: float = 0.1, greedy: bool = False,
                    seed: int = 0) -> Sketches:
        """`steps` sketches decoded along a path from a's code to b's, both ends included
        (`sketch-rnn interpolate`). a and b: two sketches, two codes (z_size,), or neither
        (two codes from the prior, by `seed`); or from_data= with index=(i, j). slerp follows
        the great circle, lerp the straight line. Drawn as one row."""
        from ..generation.sampling import decode, interpolate, prior_z

        self._latent("interpolate")
        if from_data is not None:
            if a is not None or b is not None or index is None or len(list(index)) != 2:
                raise SketchRNNError("a, b: from_data= goes with index=(i, j) (and no a, b)")
            z0, z1 = self.encode(from_data=from_data, index=list(index), split=split)
        elif a is None and b is None:
            z0, z1 = prior_z(2, int(self.hps.z_size), seed)
        elif a is None or b is None:
            raise SketchRNNError("a, b: give both ends (or neither, for two codes from the prior)")
        else:
            z0, z1 = self._codes(a, b)
        zs = interpolate(z0, z1, steps, method)
        out = decode(self.keras_model, zs, temperature=temperature, greedy=greedy, seed=seed,
                     scale_factor=self.scale_factor)
        return Sketches(out, cols=len(out), z=zs)

    def _codes(self, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        """The two ends' codes: a (z_size,) code as it is, a sketch encoded to its posterior
        mean (two sketches in one batch, as `sketch-rnn interpolate` encodes them)."""
        ends = [np.asarray(v, dtype=np.float32) for v in (a, b)]
        sketches = [e for e in ends if e.ndim != 1]
        codes = iter(self.encode(sketches) if sketches else ())
        return tuple(e if e.ndim == 1 else next(codes) for e in ends)

    def complete(self, prefix: Any = None, n: int = 8, *, from_data: PathLike | None = None,
                 index: int | None = None, split: str = "test", keep: float | None = None,
                 temperature: float = 0.25, seed: int = 0, z_mode: str = "prior",
                 greedy: bool = False) -> Completion:
        """n endings of a partial sketch (`sketch-rnn complete`). The prefix: a stroke-3
        sketch, or from_data= and index= (then its first half, `keep` = 0.5 by default).
        `keep` cuts the prefix to its first round(keep * L) points. Conditional models take
        one z per ending from the prior (z_mode="prior") or the prefix's code ("encode")."""
        from ..generation.completion import check_prefix, complete

        if from_data is not None:
            if prefix is not None or not isinstance(index, (int, np.integer)):
                raise SketchRNNError("prefix: from_data= goes with one index= (and no prefix)")
            prefix, keep = self.read(from_data, index, split)[0], 0.5 if keep is None else keep
        elif prefix is None:
            raise SketchRNNError("prefix: give a sketch, or from_data= and index=")
        if keep is not None:
            prefix = cut(check_prefix(prefix, len(prefix), "prefix"), keep)
        prefix = check_prefix(prefix, int(self.hps.max_seq_len), "prefix")
        result = complete(self.keras_model, prefix, n, temperature, seed, greedy=greedy,
                          z_mode=z_mode, scale_factor=self.scale_factor)
        return Completion(result.prefix, result.endings, result.z)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, data: PathLike | Sequence[PathLike] | None = None, *, split: str = "test",
                 teacher_forced: int = 100, samples: bool = True,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """What `sketch-rnn evaluate` prints, as a dict: the losses over the split (L_R, L_s,
        L_p, KL, cost), the code's retrieval (conditional models) and, with samples=True,
        the prior samples' precision and recall. `data`: the run's own data by default.
        `log` gets a line before each long part."""
        from ..evaluation.report import evaluate_loaded, load_split

        if split not in ("valid", "test"):
            raise SketchRNNError(f"split={split!r}: use 'valid' or 'test'")
        if teacher_forced < 0:
            raise SketchRNNError(f"teacher_forced={teacher_forced}: must be >= 0")
        paths = None if data is None else [str(p) for p in (
            [data] if isinstance(data, (str, os.PathLike)) else data)]
        sketches, _ = load_split(self.run, self._need_path(), paths, split)
        return evaluate_loaded(self.run, sketches, split, teacher_forced, samples, log)


def cut(sketch: np.ndarray, keep: float) -> np.ndarray:
    """The first round(keep * n) points (at least one) of a stroke-3 sketch."""
    if not 0 < keep <= 1:
        raise SketchRNNError(f"keep={keep}: must be in (0, 1]")
    return sketch[:max(1, int(round(keep * len(sketch))))]
