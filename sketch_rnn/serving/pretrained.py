"""`download --pretrained`: Magenta's published Sketch-RNN models, fetched and imported.

Where they are published (read from the sources, not guessed):

- the TensorFlow 1 checkpoints: one archive, `PRETRAINED_MODELS_URL` of Magenta's
  `magenta/models/sketch_rnn/sketch_rnn_train.py`, holding the model directories its README
  lists (`aaron_sheep/lstm`, ..., `elephantpig/lstm`);
- the magenta.js models: `<category>.gen.json` under `.../sketchRNN/models/` (LSTM of 512
  units) and `.../sketchRNN/large_models/` (@magenta/sketch README), `<category>.vae.json`
  beside them (tensorflow/magenta-demos sketch-rnn-js README). The categories are the
  @magenta/sketch README's table.

Names: `aaron_sheep/lstm` (archive), `cat.gen` / `cat.vae` (models/), `large/cat.gen`
(large_models/). `--base-url B` puts all of them under B: `B/sketch_rnn.zip`,
`B/models/<file>`, `B/large_models/<file>` (tests serve such a tree on 127.0.0.1).

Every file goes through the hidden-temporary-then-rename of `quickdraw.download`, a short
body is an error, the archive must be a zip holding the model, and the import then checks
the model itself. No TensorFlow is imported here until an import runs.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..core.errors import SketchRNNError
from ..core.files import atomic_file
from ..quickdraw.download import fetch_body
from .archive import extract_model

ARCHIVE_URL = "http://download.magenta.tensorflow.org/models/sketch_rnn.zip"
JS_BASE_URL = "https://storage.googleapis.com/quickdraw-models/sketchRNN/"
ARCHIVE_MODELS = ("aaron_sheep/lstm", "aaron_sheep/lstm_uncond", "aaron_sheep/layer_norm",
                  "aaron_sheep/layer_norm_uncond", "owl/lstm", "flamingo/lstm_uncond",
                  "catbus/lstm", "elephantpig/lstm")
JS_CATEGORIES = tuple("""
alarm_clock ambulance angel ant antyoga backpack barn basket bear bee beeflower bicycle bird
book brain bridge bulldozer bus butterfly cactus calendar castle cat catbus catpig chair couch
crab crabchair crabrabbitfacepig cruise_ship diving_board dog dogbunny dolphin duck elephant
elephantpig eye face fan fire_hydrant firetruck flamingo flower floweryoga frog frogsofa garden
hand hedgeberry hedgehog helicopter kangaroo key lantern lighthouse lion lionsheep lobster map
mermaid monapassport monkey mosquito octopus owl paintbrush palm_tree parrot passport peas
penguin pig pigsheep pineapple pool postcard power_outlet rabbit rabbitturtle radio radioface
rain rhinoceros rifle roller_coaster sandwich scorpion sea_turtle sheep skull snail snowflake
speedboat spider squirrel steak stove strawberry swan swing_set the_mona_lisa tiger toothbrush
toothpaste tractor trombone truck whale windmill yoga yogabicycle everything""".split())
DOWNLOADS = "downloads"


def names() -> list[str]:
    """Every name `--pretrained` takes (`--pretrained --list`)."""
    js = [f"{c}.{kind}" for c in JS_CATEGORIES for kind in ("gen", "vae")]
    return list(ARCHIVE_MODELS) + js + [f"large/{n}" for n in js]


def resolve(name: str, base_url: str | None) -> dict[str, str]:
    """{"kind": "magenta"|"magenta-js", "url", "file", "run"} for a published name."""
    if name in ARCHIVE_MODELS:
        url = base_url.rstrip("/") + "/sketch_rnn.zip" if base_url else ARCHIVE_URL
        return {"kind": "magenta", "url": url, "file": "sketch_rnn.zip",
                "run": name.replace("/", "-"), "model": name}
    folder, _, tail = name.rpartition("/")
    category, _, kind = tail.rpartition(".")
    if folder in ("", "large") and kind in ("gen", "vae") and category in JS_CATEGORIES:
        sub = "large_models" if folder else "models"
        root = base_url.rstrip("/") + "/" if base_url else JS_BASE_URL
        file = f"{category}.{kind}.json"
        prefix = "large-" if folder else ""
        return {"kind": "magenta-js", "url": f"{root}{sub}/{file}",
                "file": prefix + file, "run": f"{prefix}{category}.{kind}"}
    raise SketchRNNError(f"unknown pretrained model {name!r} (`sketch-rnn download "
                         "--pretrained --list` shows the names)")


def _download(url: str, dest: Path, show_progress: bool) -> None:
    """url -> dest, whole or not at all; an existing dest is reused."""
    if dest.is_file():
        return
    with atomic_file(dest, "part") as f:
        fetch_body(url, f, show_progress, 60.0)
        f.flush()
        if dest.suffix == ".zip" and not zipfile.is_zipfile(f.name):
            raise SketchRNNError(f"{url}: the downloaded file is not a zip archive")


def fetch_and_import(name: str, to_dir: str | Path, base_url: str | None = None,
                     data: list[str] | None = None, scale_factor: float | None = None,
                     force: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Download NAME's files into TO/downloads and import them as the run TO/<run>."""
    spec = resolve(name, base_url)
    to_dir = Path(to_dir)
    run_dir = to_dir / spec["run"]
    if run_dir.exists() and not force:
        return {"run_dir": str(run_dir), "skipped": True}
    downloads = to_dir / DOWNLOADS
    try:
        downloads.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SketchRNNError(f"--to {to_dir}: cannot create the folder ({e.strerror})") from None
    file = downloads / spec["file"]
    _download(spec["url"], file, show_progress)
    if spec["kind"] == "magenta-js":
        from .magenta_js_import import import_magenta_js

        return import_magenta_js(file, run_dir, data, scale_factor, force)
    model_dir = extract_model(file, spec["model"], downloads / spec["run"], spec["url"])
    if not data and scale_factor is None and spec["model"].startswith("aaron_sheep/"):
        from ..data import DEFAULT_DATA

        bundled = [Path(DEFAULT_DATA), Path(__file__).resolve().parents[2] / DEFAULT_DATA]
        found = [p for p in bundled if p.is_file()]
        if found:  # the bundled sheep: the data these were trained on
            data = [str(found[0])]
    from .magenta_import import import_magenta

    return import_magenta(model_dir, run_dir, None, data, scale_factor, force)
