"""The image objects every drawing function returns: shown inline by Jupyter, saved atomically.

Kept apart from `drawing` (which makes them) because they are the one thing the notebook
helpers and the CLI need to know about a drawing: what it is and how it is shown or saved.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ..core.files import atomic_write


@dataclass(frozen=True)
class SVGImage:
    """SVG text; shown inline by Jupyter."""

    text: str = field(repr=False)

    def _repr_svg_(self) -> str:
        return self.text

    def save(self, path: str) -> None:
        write_bytes(path, self.text.encode("utf-8"))


@dataclass(frozen=True)
class PNGImage:
    """PNG bytes; shown inline by Jupyter."""

    data: bytes = field(repr=False)

    def _repr_png_(self) -> bytes:
        return self.data

    def save(self, path: str) -> None:
        write_bytes(path, self.data)


@dataclass(frozen=True)
class GIFImage:
    """Animated GIF bytes; Jupyter has no GIF repr, so it is shown as an HTML <img>."""

    data: bytes = field(repr=False)

    def _repr_html_(self) -> str:
        return f'<img src="data:image/gif;base64,{base64.b64encode(self.data).decode()}"/>'

    def save(self, path: str) -> None:
        write_bytes(path, self.data)


def write_bytes(path: str, data: bytes) -> None:
    """Every drawing is written atomically: a viewer never sees half a file."""
    atomic_write(path, data)
