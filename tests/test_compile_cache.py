"""The persistent compilation cache (`core.compile_cache`): only whole entries under their own
name and environment are used, dead processes' folders go, the size stays bounded, two
trainers share one cache, and training gives the same bits with and without it."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, fingerprint, train_cmd

from sketch_rnn.core import compile_cache as cc


# ------------------------------------------------------------- protobuf, written by hand
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(prefix: str, signature: int, cluster: int, device: str = "XLA_CPU_JIT",
           executable: bytes = b"\x7fELF compiled code") -> tuple[str, bytes]:
    """(file name, bytes) of an XlaSerializedCacheEntry as TensorFlow names and writes it
    (tensorflow/compiler/jit/xla_compilation_cache.proto: key = 1 {signature = 1,
    cluster = 2, device = 3, prefix = 4}, hlo_module = 2, executable = 3)."""
    key = (_field(1, signature) + _field(2, cluster) + _field(3, device.encode())
           + _field(4, prefix.encode()))
    data = _field(1, key) + _field(2, b"\x0a\x04main") + _field(3, executable)
    return f"{prefix}__{signature}__{cluster}__{device}.pb", data


def test_an_entry_counts_only_whole_and_under_its_own_name(tmp_path) -> None:
    name, data = _entry("kabc", 2**63 + 5, 42)
    good = tmp_path / name
    good.write_bytes(data)
    assert cc.entry_matches_name(good)
    other, _ = _entry("kabc", 7, 42)  # another program's name: TensorFlow would fail on it
    (tmp_path / other).write_bytes(data)
    assert not cc.entry_matches_name(tmp_path / other)
    for cut in (1, len(data) // 2, len(data) - 1):  # written half-way, or cut short
        (tmp_path / name).write_bytes(data[:cut])
        assert not cc.entry_matches_name(tmp_path / name), cut
    empty_name, empty = _entry("kabc", 1, 2, executable=b"")
    (tmp_path / empty_name).write_bytes(empty)
    assert not cc.entry_matches_name(tmp_path / empty_name)
    (tmp_path / "junk.pb").write_bytes(os.urandom(64))
    assert not cc.entry_matches_name(tmp_path / "junk.pb")


def _enable_in_subprocess(root: Path) -> dict:
    """enable(root) in a fresh process (no TensorFlow): its work folder, what it holds, and
    the TF_XLA_FLAGS it set."""
    code = ("import json, os; from sketch_rnn.core import compile_cache as c; w = c.enable(); "
            "print(json.dumps({'work': str(w), 'held': sorted(os.listdir(w)), "
            "'flags': os.environ['TF_XLA_FLAGS']}))")
    env = {**os.environ, cc.ROOT_ENV: str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_a_process_takes_its_environments_sound_entries_only(tmp_path) -> None:
    key = cc.environment_key()
    store = tmp_path / key
    store.mkdir(parents=True)
    good, data = _entry(f"k{key}", 11, 12)
    (store / good).write_bytes(data)
    renamed, _ = _entry(f"k{key}", 13, 12)
    (store / renamed).write_bytes(data)
    cut, cut_data = _entry(f"k{key}", 21, 22)
    (store / cut).write_bytes(cut_data[:-3])
    foreign_key = "0" * 16  # another TensorFlow, CPU or XLA_FLAGS
    (tmp_path / foreign_key).mkdir()
    foreign, foreign_data = _entry(f"k{foreign_key}", 31, 32)
    (tmp_path / foreign_key / foreign).write_bytes(foreign_data)
    seen = _enable_in_subprocess(tmp_path)
    assert [h for h in seen["held"] if h.endswith(".pb")] == [good]
    assert f"{cc.DIR_FLAG}={seen['work']}" in seen["flags"]
    assert f"{cc.PREFIX_FLAG}=k{key}" in seen["flags"]  # TF's own names carry the key too
    assert not Path(seen["work"]).exists()  # removed when that process ended


def test_dead_processes_folders_go_and_live_ones_stay(tmp_path) -> None:
    work = tmp_path / "work"
    for name in ("dead", "live"):
        (work / name).mkdir(parents=True)
        (work / name / "x.pb").write_bytes(b"partial")
    (work / "dead" / ".owner").touch()
    with open(work / "live" / ".owner", "w") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # a running trainer holds its folder's lock
        _enable_in_subprocess(tmp_path)
        assert not (work / "dead").exists()
        assert (work / "live" / "x.pb").exists()


def test_the_cache_stays_under_its_bound_least_recently_used_first(tmp_path) -> None:
    now = time.time()
    for i in range(5):  # two environments' folders, 1000 bytes an entry, i the newest last
        entry = tmp_path / f"env{i % 2}" / f"e{i}.pb"
        entry.parent.mkdir(exist_ok=True)
        entry.write_bytes(b"x" * 1000)
        os.utime(entry, (now - 100 + i, now - 100 + i))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "w.pb").write_bytes(b"x" * 5000)  # a live process's: not counted
    removed = cc.prune(tmp_path, 2500)
    assert sorted(p.name for p in removed) == ["e0.pb", "e1.pb", "e2.pb"]
    assert sorted(p.name for p in tmp_path.glob("env*/*.pb")) == ["e3.pb", "e4.pb"]
    assert (tmp_path / "work" / "w.pb").exists()


@pytest.mark.slow  # four tiny training processes, two of them at once
def test_two_trainers_share_one_cache_and_training_gives_the_same_bits(
        tmp_path, ten_step_run) -> None:
    """Two `sketch-rnn train` processes fill one cache at once; a third loads every program
    from it (it adds none); one with the cache off trains too: all four end with the same
    fingerprint as the session's in-process run."""
    root = tmp_path / "cache"
    env = {**os.environ, cc.ROOT_ENV: str(root)}
    pair = [subprocess.Popen(train_cmd(tmp_path / name, 10), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for name in ("a", "b")]
    for proc in pair:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    store = root / cc.environment_key()
    entries = sorted(p.name for p in store.glob("*.pb"))
    assert entries and all(cc.entry_matches_name(store / e) for e in entries)
    assert list((root / "work").iterdir()) == []  # both published and cleaned up
    warm = subprocess.run(train_cmd(tmp_path / "c", 10), cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert sorted(p.name for p in store.glob("*.pb")) == entries  # nothing compiled anew
    off = subprocess.run(train_cmd(tmp_path / "d", 10), cwd=ROOT,
                         env={**env, cc.ROOT_ENV: "off"}, capture_output=True, text=True)
    assert off.returncode == 0, off.stderr[-3000:]
    expected = fingerprint(ten_step_run)
    assert [fingerprint(tmp_path / n) for n in "abcd"] == [expected] * 4
