"""Benchmarks: what a user waits for at the command line, each command in a fresh process.

Run on their own (the default test run skips them)::

    python -m pytest tests/benchmarks/test_bench_cli.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds

Listing and describing read only the light cards (target: <= 1 s each).
``python -c pass`` and ``neuroharness --version`` are the floors beside them:
the interpreter alone, and the interpreter plus the ``neuroharness`` package.
The peak resident memory of each command (GNU ``/usr/bin/time -f %M``, KB;
included in the timing, about 1 ms) goes into ``extra_info`` where GNU time exists.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("neuroharness")

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "neuroharness --version": [str(EXE), "--version"],
    "neuroharness --help": [str(EXE), "--help"],
    "neuroharness tasks list": [str(EXE), "tasks", "list"],
    "neuroharness tasks info": [str(EXE), "tasks", "info", "celegans-structure-function"],
    "neuroharness datasets list": [str(EXE), "datasets", "list"],
}


TIME = Path("/usr/bin/time")  # GNU time: the child's own peak RSS (rusage of a forked child starts at pytest's size)


def _run(argv: list[str], peaks: list[int], tmp: Path) -> None:
    """Run ``argv`` to completion; append its peak RSS in KB to ``peaks`` where GNU time is installed."""
    report = tmp / "rss"
    prefix = [str(TIME), "-f", "%M", "-o", str(report)] if TIME.exists() else []
    out = subprocess.run(prefix + argv, capture_output=True, text=True, env={**os.environ, "CI": "true"})
    assert out.returncode == 0, out.stderr
    if prefix:
        peaks.append(int(report.read_text().split()[-1]))


@pytest.mark.skipif(not EXE.exists(), reason=f"no neuroharness console script beside {sys.executable}")
@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_in_a_fresh_process(benchmark, name, tmp_path):
    peaks: list[int] = []
    benchmark.pedantic(_run, args=(COMMANDS[name], peaks, tmp_path), rounds=5, iterations=1, warmup_rounds=1)
    if peaks:
        benchmark.extra_info["maxrss_kb"] = max(peaks)
