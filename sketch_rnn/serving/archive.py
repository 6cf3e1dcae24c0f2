"""One model folder out of Magenta's `sketch_rnn.zip` (used by `import` and `download
--pretrained`): only that folder's own files, unpacked beside the destination and renamed into
place, so a half-unpacked model never appears.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from ..core.errors import SketchRNNError
from ..core.files import temp_dir_for


def extract_model(archive: Path, model: str, dest: Path, url: str) -> Path:
    """Copy the archive's `<...>/<model>/` files (model_config.json, vector-*) to dest."""
    if dest.is_dir():
        return dest
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            configs = [m.filename for m in members
                       if m.filename.endswith(f"{model}/model_config.json")]
            if not configs:
                raise SketchRNNError(f"{url}: the archive holds no {model}/model_config.json")
            folder = configs[0][: -len("model_config.json")]
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_dir_for(dest)
            try:
                for m in members:
                    if not m.filename.startswith(folder):
                        continue
                    rel = PurePosixPath(m.filename[len(folder):])
                    if len(rel.parts) != 1:  # only the model's own files, no sub-folders
                        continue
                    with z.open(m) as src, open(tmp / rel.name, "wb") as out:
                        shutil.copyfileobj(src, out)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise SketchRNNError(f"{archive}: cannot read the archive ({e})") from None
    return dest
