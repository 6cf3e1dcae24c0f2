"""`train` names the devices and the backend it trains on, and the way to a GPU it missed."""
from __future__ import annotations

import keras

from sketch_rnn.model import backend
from sketch_rnn.training import distribute


def test_a_cpu_run_says_so(monkeypatch) -> None:
    monkeypatch.setattr(backend, "accelerators", lambda: [])
    monkeypatch.setattr(distribute.shutil, "which", lambda name: None)
    assert distribute.single_device().devices_line() == (
        f"training on the CPU with the {keras.backend.backend()} backend")


def test_gpus_are_named_once_and_counted(monkeypatch) -> None:
    monkeypatch.setattr(backend, "accelerators", lambda: ["NVIDIA H100", "NVIDIA H100"])
    line = distribute.single_device().devices_line()
    assert line.startswith("training on 2 GPUs (NVIDIA H100) with the ")
    assert "pip install" not in line


def test_a_gpu_left_unused_gets_the_way_to_it(monkeypatch) -> None:
    # a CPU-only TensorFlow on a machine with an NVIDIA driver: the line says what to install
    monkeypatch.setattr(backend, "accelerators", lambda: [])
    monkeypatch.setattr(distribute.shutil, "which",
                        lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    line = distribute.single_device().devices_line()
    assert line.startswith("training on the CPU")
    assert "pip install -e '.[gpu]'" in line and "KERAS_BACKEND=jax" in line
