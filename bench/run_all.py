"""`make bench`: run every benchmark in turn (the soak test is separate: `python bench/soak.py`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["ingest.py", "deliver.py", "lanes.py", "search.py"]


def main() -> int:
    env = dict(os.environ)
    # Benches compare SQLite with the production store when PostgreSQL is reachable.
    env.setdefault("CLAPPER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    failed = 0
    for name in BENCHES:
        print(f"\n=== bench/{name} ===", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / name)], env=env, cwd=HERE.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
