"""The one exception type users see.

Every check on user input (files, hyperparameters, CLI arguments) raises
`SketchRNNError` with a message that names the thing and the problem; the CLI
prints it on one line and exits with status 2 instead of showing a traceback.
"""
from __future__ import annotations


class SketchRNNError(Exception):
    """A problem with the user's input, reported as one line by the CLI."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """The first line of another library's exception (TensorFlow's, Keras', h5py's), to
    quote inside our one-line message; its type's name when it says nothing."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
