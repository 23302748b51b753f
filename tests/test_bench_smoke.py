"""Every benchmark still runs (at toy sizes): a bench that crashes only shows up on `make bench`.

The figures mean nothing at these sizes; what is checked is that each prints its table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUNS = {
    "compose": ["deliver.py", "--only", "compose", "--subscribers", "300", "--articles", "20",
                "--sample", "50"],
    "phrases": ["deliver.py", "--only", "phrases", "--subscribers", "300", "--articles", "20"],
    "ingest": ["ingest.py", "--records", "40"],
    "search": ["search.py", "--articles", "300"],
    "lanes": ["lanes.py", "--only", "beside", "--only", "fanout", "--emails", "30", "--readers", "60",
              "--rounds", "1"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_benchmark_runs_and_prints_its_table(name):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / RUNS[name][0]), *RUNS[name][1:]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    table = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(table) >= 3, done.stdout
