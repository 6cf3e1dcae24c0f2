"""`python -m sketch_rnn ...` is the `sketch-rnn` command."""
from .cli import console

raise SystemExit(console())
