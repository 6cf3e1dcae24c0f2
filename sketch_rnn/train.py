"""`python -m sketch_rnn.train ...` is `sketch-rnn train ...`."""
import sys

from .cli import console

if __name__ == "__main__":
    raise SystemExit(console(["train", *sys.argv[1:]]))
