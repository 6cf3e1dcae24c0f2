"""The model card as Markdown (`card.md` beside `index.html`): the same blocks as the page,
for a shipped checkpoint's README or any repository page that renders Markdown but not HTML
files. Pictures are linked by relative file names, as on the page."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .card_content import Block, blocks, number

HEADINGS = {"h1": "#", "h2": "##", "h3": "###"}


def _cell(value: Any) -> str:
    return number(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _block(b: Block) -> str:
    kind = b[0]
    if kind == "table":
        return _table(b[1], b[2])
    if kind == "img":
        return f"![{b[2]}]({b[1]})\n*{b[2]}*"
    if kind == "note":
        return f"*{b[1]}*"
    if kind in HEADINGS:
        return f"{HEADINGS[kind]} {b[1]}"
    return str(b[1])


def render(run_dir: str, state: Mapping[str, Any], data_paths: Sequence[str],
           evaluate: Mapping[str, Any], pictures: Mapping[str, str],
           timing: Mapping[str, Any]) -> str:
    """The whole card as one Markdown string."""
    return "\n\n".join(_block(b) for b in
                       blocks(run_dir, state, data_paths, evaluate, pictures, timing)) + "\n"
