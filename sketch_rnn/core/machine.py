"""What CPU this is: its model name and instruction-set flags, read from /proc/cpuinfo.

One reader serves the precision default (native bf16 or not), the machine a checkpoint
records for its model card, and the benchmarks' headers: speed figures mean little without
the CPU they were measured on, and the CPU differs between the machines users train on.
"""
from __future__ import annotations

import os
import platform
from typing import Any

CPUINFO = "/proc/cpuinfo"


def cpuinfo_text() -> str:
    """/proc/cpuinfo's text; empty where there is none (macOS, Windows)."""
    try:
        with open(CPUINFO, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction-set flags (x86 `flags`, Arm `Features`) of `cpuinfo` (None: this CPU)."""
    flags: set[str] = set()
    for line in (cpuinfo_text() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return flags


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (`model name`), else what `platform` knows, else "unknown"."""
    for line in (cpuinfo_text() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


# The flags that decide which matmul kernels oneDNN picks (x86: AVX2, AVX-512, AVX512_BF16,
# AMX; Arm: NEON, SVE, BF16). Two CPUs that differ in them round the same step differently.
KERNEL_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve", "bf16"})


def kernel_isa(cpuinfo: str | None = None) -> list[str]:
    """The `KERNEL_FLAGS` this CPU (or `cpuinfo`) has, sorted: what a run's exact resume needs
    to be the same on the machine that resumes it."""
    return sorted(cpu_flags(cpuinfo) & KERNEL_FLAGS)


def describe() -> dict[str, Any]:
    """{"cpu", "cores", "os", "isa"}: the machine a run or a benchmark ran on."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "os": platform.system(),
            "isa": kernel_isa()}
