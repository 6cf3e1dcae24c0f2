"""`download`: the published sketch-rnn `.npz` files of QuickDraw categories.

Each file is streamed into a hidden temporary file, checked to load as a sketch-rnn
`.npz`, and only then renamed into place, so `<category>.npz` is always whole.
"""
from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO

from ..core.errors import SketchRNNError
from ..core.files import atomic_file
from .categories import CATEGORIES

DEFAULT_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/sketchrnn/"


def category_url(category: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """URL of a category's .npz; spaces and other characters are percent-quoted."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(category) + ".npz"


def canonical_category(name: str) -> str:
    """The official spelling of a category name (matched case-insensitively)."""
    lookup = {c.lower(): c for c in CATEGORIES}
    found = lookup.get(name.strip().lower())
    if found is None:
        raise SketchRNNError(f"unknown category {name!r} (`sketch-rnn download --list` shows "
                             f"the {len(CATEGORIES)} names)")
    return found


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _open_url(url: str, timeout: float) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise SketchRNNError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise SketchRNNError(f"{url}: {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise SketchRNNError(f"{url}: {e}") from None


def fetch_body(url: str, out: BinaryIO, show_progress: bool, timeout: float) -> int:
    """Copy url's body into out with a progress bar; a short body is an error. -> bytes."""
    from tqdm.auto import tqdm

    got = 0
    with _open_url(url, timeout) as response:
        expected = _content_length(response)
        with tqdm(total=expected, unit="B", unit_scale=True, desc=os.path.basename(url),
                  file=sys.stderr, disable=None if show_progress else True, leave=False) as bar:
            while True:
                try:
                    chunk = response.read(1 << 16)
                except (http.client.HTTPException, OSError):
                    chunk = None
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
            if chunk is None or (expected is not None and got != expected):
                raise SketchRNNError(f"{url}: download cut off after {got} of "
                                     f"{expected if expected is not None else '?'} bytes")
    return got


def _verify_npz(path: str, url: str) -> dict:
    """Load the downloaded file with our safe loader; anything wrong is a one-line error."""
    from ..data import load_npz

    try:
        return load_npz(path)
    except Exception as e:  # an untrusted file may fail in any way; report, never crash
        raise SketchRNNError(f"{url}: the downloaded file is not a valid sketch-rnn .npz "
                             f"({e})") from None


def download_category(category: str, to_dir: str, base_url: str = DEFAULT_BASE_URL,
                      show_progress: bool = True, timeout: float = 60.0) -> str:
    """Fetch one category's .npz into to_dir -> its path.

    The body goes to a hidden temporary file that is renamed only once it is complete and
    loads; on any failure it is removed, so a file named <category>.npz is always whole.
    """
    dest = os.path.join(to_dir, category + ".npz")
    url = category_url(category, base_url)
    with atomic_file(dest, "part") as f:
        fetch_body(url, f, show_progress, timeout)
        f.flush()
        _verify_npz(f.name, url)
    return dest
