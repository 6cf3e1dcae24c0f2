"""The documentation stays true to the code: links resolve, commands parse, pages are current.

- Every relative link and `#anchor` in README.md, docs/, ARCHITECTURE.md and the shipped
  checkpoints' READMEs points at a file that exists and a heading it has, with anchors made
  the way GitHub makes them (the reference: GitHub's rendering, restated in `github_slug`).
- Every `sketch-rnn ...` command in their fenced code blocks is accepted by the real parser.
- README.md stays within 200 lines, and its test command is the one CI runs.
- The generated pages (docs/generate.py) equal what their sources make now.

None of this imports TensorFlow: the parser and the hparams are TensorFlow-free.
"""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from conftest import frameworks_imported_by

from sketch_rnn.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
CHECKED = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("*.md"),
                  *(ROOT / "checkpoints").glob("*/README.md")])
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MAX_README_LINES = 200


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


# --------------------------------------------------------------------------- Markdown reading
def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of every fenced code block."""
    blocks, current, lang = [], None, ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and current is None:
            lang, current = line.strip()[3:].strip().lower(), []
        elif m:
            blocks.append((lang, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def github_slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: markup and link targets dropped, lower case,
    every character that is not a letter, digit, space, hyphen or underscore removed, each
    space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines_keep_code(path.read_text(encoding="utf-8")):
        m = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        found.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return found


def prose_lines_keep_code(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code kept (headings use it)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return out


# --------------------------------------------------------------------------- the slug rule
@pytest.mark.parametrize("heading, slug", [
    # anchors GitHub made for headings of this repository, copied from its rendered pages
    ("Against the temperature (`lift_sweep.py`)", "against-the-temperature-lift_sweeppy"),
    ("On to 31316, and shipped again (2026-12-05, evening)",
     "on-to-31316-and-shipped-again-2026-12-05-evening"),
    ("Float32 on a second real CPU: AMD Zen 5 (2026-12-06)",
     "float32-on-a-second-real-cpu-amd-zen-5-2026-12-06"),
    ("The shipped checkpoints' histories", "the-shipped-checkpoints-histories"),
])
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# How it was made\n\n## How it was made\n\n```\n# not a heading\n```\n")
    assert anchors(page) == {"how-it-was-made", "how-it-was-made-1"}


# --------------------------------------------------------------------------- links
def broken_links(path: Path) -> list[str]:
    problems = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problems.append(f"{target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", CHECKED, ids=_ids(CHECKED))
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    # the control: the check fails where it must
    (tmp_path / "a.md").write_text("# Top\n\n## Part two\n")
    page = tmp_path / "p.md"
    page.write_text("[ok](a.md#part-two) [no file](b.md) [no anchor](a.md#part-three) "
                    "[self](#here)\n\n# Here\n\n`[in code](c.md)`\n")
    assert broken_links(page) == ["b.md: no such file",
                                  "a.md#part-three: no heading with anchor #part-three"]


# --------------------------------------------------------------------------- commands
def documented_commands(path: Path) -> list[list[str]]:
    """The argv after `sketch-rnn` of every command in the file's shell code blocks
    (continuation lines joined, comments dropped, `a && b` split, VAR=value prefixes skipped)."""
    commands = []
    for lang, lines in code_blocks(path.read_text(encoding="utf-8")):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        joined = re.sub(r"\\\n", " ", "\n".join(lines))
        for line in joined.splitlines():
            if "sketch-rnn" not in line:
                continue
            tokens = shlex.split(line, comments=True)
            segment: list[str] = []
            for token in tokens + ["&&"]:
                if token in ("&&", "||", ";", "|"):
                    words = [t for t in segment]
                    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                        words.pop(0)
                    if words and words[0] == "sketch-rnn":
                        commands.append(words[1:])
                    segment = []
                else:
                    segment.append(token)
    return commands


COMMAND_PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                        *(ROOT / "checkpoints").glob("*/README.md")])


@pytest.mark.parametrize("path", COMMAND_PAGES, ids=_ids(COMMAND_PAGES))
def test_documented_commands_parse(path: Path) -> None:
    parser = build_parser()
    for argv in documented_commands(path):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.relative_to(ROOT)}: `sketch-rnn {shlex.join(argv)}` is not "
                        "accepted by the parser")


def test_the_readme_documents_commands() -> None:
    # the extraction itself works: the README's main job is found, whole
    commands = documented_commands(ROOT / "README.md")
    assert ["train", "--data", "data/aaron_sheep.npz", "--run-dir", "runs/sheep", "--preset",
            "small"] in commands
    assert len(commands) >= 8


def test_a_wrong_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("```bash\nX=1 sketch-rnn sample --run-dir r --colour red   # no such option\n"
                    "cd sketch-rnn && sketch-rnn info r\n```\n")
    argvs = documented_commands(page)
    assert argvs == [["sample", "--run-dir", "r", "--colour", "red"], ["info", "r"]]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argvs[0])


# --------------------------------------------------------------------------- the README
def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_ci_runs_the_readmes_install_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("-e '.[test]'", "python -m pytest -q -n 2 tests --durations=15"):
        assert command in readme and command in ci, command


# --------------------------------------------------------------------------- generated pages
def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_generated_pages_are_current() -> None:
    assert _generator().stale_pages() == [], "run: python docs/generate.py"


def test_every_option_is_on_the_cli_page() -> None:
    # an independent look at the parser: every subcommand and option string appears
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        assert f"## {name}\n" in page
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help", "--verbose"):
                    assert f"`{option}" in page or f", {option}" in page, (name, option)


def test_the_generator_imports_no_tensorflow() -> None:
    code = ("import runpy; g = runpy.run_path('docs/generate.py'); "
            "[make() for make in g['PAGES'].values()]")
    assert frameworks_imported_by(code) == []
