"""The model card's HTML: one page, inline style, pictures linked by relative file names.

Pure string building: `card_content` decides what the card says, this renders its blocks.
Every value that comes from a file is escaped.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from .card_content import Block, blocks, number

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
figure { display: inline-block; margin: 0.4em 1em 0.4em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th{' class=l' if i == 0 else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        f"<td class=l>{_e(c)}</td>" if i == 0 else f"<td>{_e(number(c))}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _block(b: Block) -> str:
    kind = b[0]
    if kind == "table":
        return _table(b[1], b[2])
    if kind == "img":
        name, caption = _e(b[1]), _e(b[2])
        return (f'<figure><img src="{name}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>")
    if kind == "note":
        return f"<p class=note>{_e(b[1])}</p>"
    return f"<{kind}>{_e(b[1])}</{kind}>"


def render(run_dir: str, state: Mapping[str, Any], data_paths: Sequence[str],
           evaluate: Mapping[str, Any], pictures: Mapping[str, str],
           timing: Mapping[str, Any]) -> str:
    """The whole page as one string."""
    parts = ["<!doctype html><html><head><meta charset=utf-8>",
             f"<title>Model card: {_e(run_dir)}</title><style>{STYLE}</style></head><body>",
             *(_block(b) for b in blocks(run_dir, state, data_paths, evaluate, pictures, timing)),
             "</body></html>"]
    return "\n".join(parts)
