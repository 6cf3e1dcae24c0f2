"""`python -m sketch_rnn.train ...` is `sketch-rnn train ...`."""
import sys

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
