"""Unpickling with an allow-list, for files that come from outside.

`pickle.load` runs whatever callable a file names (`os.system`, say). Both
kinds of pickle we read (the object arrays inside sketch `.npz` files and a
checkpoint's `callbacks.pkl`) only ever need a few known globals, so anything
else is refused before it can run, with an error naming the file and global.
"""
from __future__ import annotations

import io
import pickle
from typing import IO, Any, Iterable

from .errors import SketchRNNError


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: frozenset[tuple[str, str]], source: str,
                 **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise SketchRNNError(
                f"{self._source}: refused to unpickle {module}.{name} (not an allowed type)")
        return super().find_class(module, name)


def restricted_loads(data: bytes, allowed: Iterable[tuple[str, str]], source: str,
                     **kwargs: Any) -> Any:
    """`pickle.loads` that only resolves the (module, name) pairs in `allowed`."""
    unpickler = _AllowListUnpickler(io.BytesIO(data), frozenset(allowed), source, **kwargs)
    try:
        return unpickler.load()
    except SketchRNNError:
        raise
    except Exception as e:  # truncated or garbled pickle data
        raise SketchRNNError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None
