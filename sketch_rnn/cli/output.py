"""JSON output: the one place that prints the `--json` contract's one line."""
from __future__ import annotations

import json


def print_json(obj: object) -> None:
    """One JSON object on one line, keys sorted (the `--json` contract)."""
    print(json.dumps(obj, sort_keys=True))
