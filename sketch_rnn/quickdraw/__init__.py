"""QuickDraw in: readers, Google's simplification, `convert` to sketch-rnn `.npz`, `download`.

Pure NumPy: nothing here imports TensorFlow or Keras, so `convert` and `download` start fast.
"""
from .categories import CATEGORIES
from .convert import (
                      ConvertOptions,
                      collect_sketches,
                      drawing_to_stroke3,
                      parse_split,
                      split_sizes,
                      write_npz,
)
from .download import (
                      DEFAULT_BASE_URL,
                      canonical_category,
                      category_url,
                      download_category,
)
from .readers import Drawing, file_kind, read_bin, read_drawings, read_ndjson
from .simplify import (
                      SIMPLIFY_EPSILON,
                      drawing_lines,
                      fit_to_length,
                      lines_to_stroke3,
                      simplify_drawing,
                      simplify_lines,
)

__all__ = ["CATEGORIES", "ConvertOptions", "DEFAULT_BASE_URL", "Drawing", "SIMPLIFY_EPSILON",
           "canonical_category", "category_url", "drawing_lines", "fit_to_length", "parse_split",
           "split_sizes",
           "collect_sketches", "download_category", "drawing_to_stroke3", "file_kind",
           "lines_to_stroke3", "read_bin", "read_drawings", "read_ndjson", "simplify_drawing",
           "simplify_lines", "write_npz"]
