"""`python -m sketch_rnn.sample ...` is `sketch-rnn sample ...`."""
import sys

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sample", *sys.argv[1:]]))
