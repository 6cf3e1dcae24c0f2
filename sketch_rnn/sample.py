"""`python -m sketch_rnn.sample ...` is `sketch-rnn sample ...`."""
import sys

from .cli import console

if __name__ == "__main__":
    raise SystemExit(console(["sample", *sys.argv[1:]]))
