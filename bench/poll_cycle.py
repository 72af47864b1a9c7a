"""Bench: one `listener poll --once` cycle over N synthetic feeds on loopback, cold and all-304,
against a naive pipeline (httpx + feedparser, one feed at a time) measured in the same run.

    python bench/poll_cycle.py [--feeds 1000] [--entries 50] [--naive-feeds N]
                               [--match-share 0.1 | --all-matching] [--no-naive]

--all-matching: every entry mentions a brand (search feeds, brand hashtags): the ingest
throughput case; the cold line then also says how many new mentions per second were stored.

Every measured step runs as its own process, so wall time includes start-up; the peak RSS is
its process tree's (sampled from /proc) and the CPU its own plus its waited-for children's
(os.wait4). Parser workers are the daemon's children since issue 16 part 2 and count; before,
they were a forkserver's and their CPU was missing from the figure. The workers' own CPU is
printed too (sampled from /proc every 20 ms, so up to 20 ms of each is missed). Prints one line per
measurement.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BRANDS = ["Velora", "Nordbahn", "Kryptonite", "Brightwave", "Kestrel Bikes"]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024 / 1024


def descendants_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of each descendant of ``pid`` (its parser workers),
    from /proc."""
    cpu: dict[int, float] = {}
    todo = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            if current != pid:
                with open(f"/proc/{current}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
                cpu[current] = (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return cpu


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run argv; return (wall s, peak RSS of its whole process tree in MB, stdout); also sets
    LAST_CPU to the CPU seconds (user + system) of the process and its children."""
    global LAST_CPU  # LAST_WORKER_CPU: [CPU s of the descendants (last sample), how many]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    peak = [0.0]
    done = threading.Event()

    workers: dict[int, float] = {}

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            workers.update(descendants_cpu(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    LAST_CPU = usage.ru_utime + usage.ru_stime
    LAST_WORKER_CPU[:] = [sum(workers.values()), len(workers)]
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[1:4])} failed ({proc.returncode}): {err.strip()[-800:]}")
    return wall, max(peak[0], usage.ru_maxrss / 1024), out


LAST_CPU = 0.0
LAST_WORKER_CPU: list[float] = [0.0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument(
        "--hosts",
        type=int,
        default=50,
        help="spread the feeds over this many loopback hosts (127.0.0.N)",
    )
    parser.add_argument(
        "--naive-feeds", type=int, default=None, help="feeds for the naive pipeline (default: all)"
    )
    parser.add_argument(
        "--match-share", type=float, default=0.1, help="share of entries that mention a brand"
    )
    parser.add_argument(
        "--all-matching", action="store_true", help="every entry mentions a brand (--match-share 1)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    args = parser.parse_args()
    if args.all_matching:
        args.match_share = 1.0
    naive_feeds = args.naive_feeds or args.feeds
    work = Path(tempfile.mkdtemp(prefix="listener-bench-"))
    port_file = work / "port"
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "feedserver.py"),
            "--feeds",
            str(args.feeds),
            "--entries",
            str(args.entries),
            "--hosts",
            str(args.hosts),
            "--match-share",
            str(args.match_share),
            "--port-file",
            str(port_file),
        ]
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        port = port_file.read_text()
        base = f"http://127.0.0.1:{port}"
        config = work / "listener.toml"
        # default http and polling settings: per_host_limit 2, 50 sources at a time
        lines = [f'[database]\nurl = "sqlite:///{work / "bench.db"}"\n[log]\nlevel = "error"\n']
        for brand in BRANDS:
            lines.append(f'[[brands]]\nname = "{brand}"\nterms = ["{brand}"]\n')
        for i in range(args.feeds):
            host = f"127.0.0.{i % args.hosts + 1}:{port}"
            lines.append(f'[[sources]]\nname = "feed-{i}"\nurl = "http://{host}/feeds/{i}.xml"\n')
        config.write_text("".join(lines))
        listener = [sys.executable, "-m", "listener", "--config", str(config)]
        env = {**os.environ, "LISTENER_CONFIG": ""}
        subprocess.run([*listener, "db", "upgrade"], check=True, capture_output=True, env=env)
        entries = args.feeds * args.entries
        print(
            f"bench: {args.feeds} feeds x {args.entries} entries = {entries} entries "
            f"on {args.hosts} loopback hosts, {args.match_share:.0%} mention a brand, "
            f"{os.cpu_count()} cores"
        )
        results = {}
        for label in ("cold", "all-304"):
            wall, rss, out = run_measured([*listener, "poll", "--once"], env=env)
            results[label] = wall
            cycle = float(re.search(r" in ([\d.]+) s:", out).group(1))  # type: ignore[union-attr]
            if " 0 failed" not in out:
                sys.exit(f"bench: polls failed: {out.strip()}")
            new = re.search(r"(\d+) new", out)
            stored = int(new.group(1)) if new else 0
            print(
                f"listener {label:8s}: {wall:6.2f} s wall ({cycle:.2f} s cycle after start-up), "
                f"{args.feeds / wall:6.0f} feeds/s, {entries / wall:7.0f} entries/s, "
                f"CPU {LAST_CPU:5.2f} s (workers {LAST_WORKER_CPU[0]:5.2f} s in "
                f"{LAST_WORKER_CPU[1]:.0f}), peak RSS {rss:5.1f} MB (process tree), "
                f"{stored / wall:6.0f} new mentions/s ({stored / cycle:6.0f}/s of cycle) "
                f"| {out.strip()}"
            )
        if args.no_naive:
            return
        wall, rss, out = run_measured(
            [sys.executable, str(HERE / "naive.py"), base, str(naive_feeds)], env=env
        )
        scale = args.feeds / naive_feeds
        naive_wall = wall * scale
        print(
            f"naive    cold    : {naive_wall:6.2f} s wall"
            f"{' (extrapolated)' if scale != 1 else ''}, "
            f"{args.feeds / naive_wall:6.0f} feeds/s, {entries / naive_wall:7.0f} entries/s, "
            f"CPU {LAST_CPU * scale:5.2f} s, peak RSS {rss:5.1f} MB | {out.strip()} entries parsed"
        )
        print(
            f"ratio: listener cold is {naive_wall / results['cold']:.1f}x faster than naive; "
            f"all-304 cycle {naive_wall / results['all-304']:.1f}x"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
