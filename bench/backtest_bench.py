"""Time `listener backtest --series` on long series.

    python bench/backtest_bench.py [--buckets 20000] [--width 5m]

Writes a seasonal Poisson series with one storm (timestamp,value CSV, like a user's export) and
runs the real command in a subprocess, three times; prints wall seconds and alerts written.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from listener.config import parse_duration


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def write_series(path: Path, buckets: int, width: timedelta) -> None:
    rng = random.Random(1)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    onset = int(buckets * 0.8)
    with path.open("w", encoding="utf-8") as out:
        out.write("timestamp,value\n")
        for i in range(buckets):
            t = start + i * width
            lam = 2.0 * (1 + 0.6 * math.sin((t.hour - 6) / 24 * 2 * math.pi))
            lam *= 0.5 if t.weekday() >= 5 else 1.0
            value = poisson(rng, lam) + (5 * (i - onset + 1) if onset <= i < onset + 24 else 0)
            out.write(f"{t:%Y-%m-%dT%H:%M:%SZ},{value}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buckets", type=int, default=20_000)
    parser.add_argument("--width", default="5m")
    args = parser.parse_args()
    width = timedelta(seconds=parse_duration(args.width))
    with tempfile.TemporaryDirectory() as tmp:
        series, output = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        write_series(series, args.buckets, width)
        command = [sys.executable, "-m", "listener", "backtest", "--series", str(series)]
        for run in range(3):
            began = time.perf_counter()
            subprocess.run([*command, "--output", str(output)], check=True, capture_output=True)
            seconds = time.perf_counter() - began
            alerts = len(output.read_text(encoding="utf-8").splitlines()) - 1
            print(
                f"run {run + 1}: {args.buckets} buckets of {args.width}: {seconds:.2f} s wall "
                f"(process start included), {alerts} alerts"
            )


if __name__ == "__main__":
    main()
