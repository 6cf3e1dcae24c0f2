"""The command line: the parser, every command's handler, JSON output, one-line errors."""
from .main import build_parser, console, main, run
from .output import print_json

__all__ = ["build_parser", "console", "main", "print_json", "run"]
