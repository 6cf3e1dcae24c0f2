"""Unpickling with an allow-list, for files that come from outside.

`pickle.load` runs whatever callable a file names (`os.system`, say). Both
kinds of pickle we read (the object arrays inside sketch `.npz` files and a
checkpoint's `callbacks.pkl`) only ever need a few known globals, so anything
else is refused before it can run, with an error naming the file and global.
"""
from __future__ import annotations

import io
import pickle
from typing import IO, Any, Iterable, Mapping, Union

import numpy as np

from .errors import SketchRNNError

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

# (module, name) pairs a pickle may name; a Mapping also gives the object each one resolves to.
AllowList = Union[Iterable[tuple[str, str]], Mapping[tuple[str, str], Any]]

# The only globals pickled NumPy arrays and scalars need, mapped straight to the installed
# objects: numpy.core.* is the NumPy 1 spelling found in old (Python 2) files, and resolving
# it here means NumPy 2 never imports its deprecated numpy.core shim.
NUMPY_ARRAYS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_ARRAYS[(_mod, "_reconstruct")] = _multiarray._reconstruct
    NUMPY_ARRAYS[(_mod, "scalar")] = _multiarray.scalar


class PickleRefused(SketchRNNError):
    """The pickle named a global outside the allow-list (nothing of it ran)."""


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: AllowList, source: str, why: str,
                 **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._source = source
        self._why = why

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise PickleRefused(
                f"{self._source}: refused to unpickle {module}.{name} ({self._why})")
        if isinstance(self._allowed, Mapping):  # resolved by the caller: nothing is imported
            return self._allowed[(module, name)]
        return super().find_class(module, name)


def restricted_loads(data: bytes, allowed: AllowList, source: str,
                     why: str = "not an allowed type", **kwargs: Any) -> Any:
    """`pickle.loads` that only resolves the (module, name) pairs in `allowed`.

    `allowed` may map each pair to the object to use, so that old spellings (NumPy 1's
    `numpy.core.multiarray`) resolve without importing a deprecated module. A refused
    global raises PickleRefused; unreadable data raises SketchRNNError.
    """
    table = allowed if isinstance(allowed, Mapping) else frozenset(allowed)
    unpickler = _AllowListUnpickler(io.BytesIO(data), table, source, why, **kwargs)
    try:
        return unpickler.load()
    except SketchRNNError:
        raise
    except Exception as e:  # truncated or garbled pickle data
        raise SketchRNNError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None
