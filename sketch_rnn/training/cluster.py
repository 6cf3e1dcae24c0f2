"""The multi-worker cluster as TF_CONFIG describes it, read without importing TensorFlow.

The CLI needs to know whether this process is the chief (the one that writes checkpoints and
holds the run directory's lock) before TensorFlow starts, so that a second trainer on a locked
run is refused in a second, not after TensorFlow's start-up.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..core.errors import SketchRNNError


def tf_config() -> dict[str, Any]:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise SketchRNNError("--distribute multi-worker needs TF_CONFIG: a JSON object with "
                             "\"cluster\" (host:port lists per job) and \"task\" (this process's "
                             "type and index); see docs/distributed.md")
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise SketchRNNError(f"TF_CONFIG is not a valid cluster description ({e})") from None
    return config


def read_tf_config() -> tuple[str, int, int]:
    """(task type, task index, number of workers incl. the chief) from TF_CONFIG."""
    config = tf_config()
    cluster, task = config["cluster"], config["task"]
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if task["type"] not in ("chief", "worker") or workers == 0:
        raise SketchRNNError(f"TF_CONFIG: task type {task['type']!r} with jobs "
                             f"{sorted(cluster)}: this command runs chief and worker tasks")
    return str(task["type"]), int(task["index"]), workers


def _has_chief() -> bool:
    return bool(tf_config()["cluster"].get("chief"))


def is_chief() -> bool:
    """Whether this process is the multi-worker job's chief: the `chief` task, or worker 0
    when the cluster has no chief task."""
    task_type, task_id, _ = read_tf_config()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not _has_chief())
