"""Bench: memory of a `listener run` daemon with N sources, while its first round of polls runs
and then at rest (every source polled, the next round an interval away).

    python bench/daemon_rest.py [--feeds 1000] [--entries 50] [--match-share 0.1]
                                [--seconds 240] [--every 5]

The feeds are bench/feedserver.py's on loopback (the first polls are spread over the default
30 s jitter; the interval is 1 h, so no second round comes). Samples the resident memory of
the daemon's process tree (main process and parser workers) and of its main process
alone every --every seconds; prints the samples, the peak, and the figures of the last sample
(at rest). A parser worker pool ends after ``service.parse.IDLE_SECONDS`` without work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poll_cycle import BRANDS, HERE, tree_rss_mb


def own_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def descendants(pid: int) -> int:
    count, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    found = [int(c) for c in children.read().split()]
                    count += len(found)
                    todo.extend(found)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--match-share", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--every", type=float, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="listener-rest-"))
    port_file = work / "port"
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "feedserver.py"),
            "--feeds",
            str(args.feeds),
            "--entries",
            str(args.entries),
            "--match-share",
            str(args.match_share),
            "--port-file",
            str(port_file),
        ]
    )
    daemon = None
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        port = port_file.read_text()
        config = work / "listener.toml"
        lines = [
            f'[database]\nurl = "sqlite:///{work / "bench.db"}"\n[log]\nlevel = "warning"\n'
            '[polling]\ninterval = "1h"\n'
        ]
        lines += [f'[[brands]]\nname = "{b}"\nterms = ["{b}"]\n' for b in BRANDS]
        lines += [
            f'[[sources]]\nname = "feed-{i}"\n'
            f'url = "http://127.0.0.{i % 50 + 1}:{port}/feeds/{i}.xml"\n'
            for i in range(args.feeds)
        ]
        config.write_text("".join(lines))
        env = {**os.environ, "LISTENER_CONFIG": ""}
        listener = [sys.executable, "-m", "listener", "--config", str(config)]
        subprocess.run([*listener, "db", "upgrade"], check=True, capture_output=True, env=env)
        log = (work / "run.log").open("w")
        daemon = subprocess.Popen([*listener, "run"], stdout=log, stderr=log, env=env)
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < args.seconds:
            time.sleep(args.every)
            at = time.monotonic() - started
            sample = (at, tree_rss_mb(daemon.pid), own_rss_mb(daemon.pid), descendants(daemon.pid))
            samples.append(sample)
            print(f"t={at:4.0f}s tree {sample[1]:6.1f} MB, main {sample[2]:6.1f} MB, "
                  f"{sample[3]} child processes", flush=True)  # fmt: skip
        peak = max(s[1] for s in samples)
        _, tree, main_rss, children = samples[-1]
        print(
            f"daemon, {args.feeds} sources ({args.entries} entries, {args.match_share:.0%} "
            f"matching): peak tree RSS {peak:.1f} MB; at rest after {args.seconds:.0f} s: "
            f"tree {tree:.1f} MB, main process {main_rss:.1f} MB, {children} child processes"
        )
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
