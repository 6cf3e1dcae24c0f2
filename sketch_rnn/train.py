"""`python -m sketch_rnn.train ...` is `sketch-rnn train ...`.

Imported as a module (`import sketch_rnn.train`), Python binds the package's name `train` to
this module, hiding the function `sketch_rnn.train`; so the module calls that function.
"""
import sys
import types

from .cli import console


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # sketch_rnn.train(...) after `import sketch_rnn.train`
        from .api import train

        return train(*args, **kwargs)


if __name__ == "__main__":
    raise SystemExit(console(["train", *sys.argv[1:]]))
sys.modules[__name__].__class__ = _CallableModule
