"""`import zlab` vs `import zmq`, each in fresh interpreters, in one run (median of 7).

    python bench/import_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys


def import_seconds(module: str, runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout))
    return statistics.median(times)


def main() -> float:
    zmq_s = import_seconds("zmq")
    zlab_s = import_seconds("zlab")  # includes zmq
    ratio = zlab_s / zmq_s
    print(f"{'module':<8}{'median ms':>10}")
    print(f"{'zmq':<8}{zmq_s * 1000:>10.1f}")
    print(f"{'zlab':<8}{zlab_s * 1000:>10.1f}")
    print(f"SUMMARY import zlab / import zmq = {ratio:.2f} (target < 2): {'OK' if ratio < 2 else 'TOO SLOW'}")
    return ratio


if __name__ == "__main__":
    main()
