"""Benchmark: `shortage-watch run` idle on SQLite — CPU and peak memory.

    python bench/bench_idle.py [--seconds 60]

Starts the daemon on a fresh SQLite file with the default timers (sweep 60 s, deliver
30 s, heartbeat 30 s) and one empty inbox source (polled at start, then every 300 s):
no source is due and nothing is to send. After start-up settles it measures the CPU
the process uses over `--seconds` (from /proc/<pid>/stat: user + system) and its peak
RSS (VmHWM from /proc/<pid>/status), then stops it with SIGTERM.
Aims (issue 6): under 1% of one core and under 150 MB. Prints both figures and their
ratio to the aim (< 1.0 meets it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU_AIM = 0.01  # fraction of one core
RSS_AIM_MB = 150.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window measured (default 60)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds allowed for start-up first (default 5)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-idle-") as temp:
        work = Path(temp)
        (work / "inbox").mkdir()
        config = work / "shortage_watch.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{work / "ledger.db"}"\n'
            f'[calendar]\noverrides_dir = "{work / "calendar"}"\n'
            f'[mail]\ntransport = "file"\nfile_dir = "{work / "mail"}"\n'
            f'[logging]\nlevel = "WARNING"\n'
            f'[[sources]]\nname = "idle-inbox"\ntype = "inbox"\npath = "{work / "inbox"}"\ninterval = 300\n',
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTAGE_WATCH_")}
        command = [sys.executable, "-m", "shortage_watch", "--config", str(config)]
        subprocess.run(command + ["db", "upgrade"], check=True, env=env, capture_output=True)
        log = open(work / "daemon.log", "wb")
        proc = subprocess.Popen(command + ["run"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(args.settle)
            if proc.poll() is not None:
                print((work / "daemon.log").read_text(), file=sys.stderr)
                return 1
            startup_cpu = cpu_seconds(proc.pid)
            started = time.monotonic()
            time.sleep(args.seconds)
            window = time.monotonic() - started
            idle_cpu = cpu_seconds(proc.pid) - startup_cpu
            peak_kb = status_kb(proc.pid, "VmHWM")
            rss_kb = status_kb(proc.pid, "VmRSS")
        finally:
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            stop_seconds = time.monotonic() - stop_started

    share = idle_cpu / window
    peak_mb = peak_kb / 1024
    print(f"idle daemon on SQLite, {window:.0f} s window (after {args.settle:.0f} s start-up)")
    print(f"  start-up CPU:   {startup_cpu:.2f} s")
    print(f"  idle CPU:       {idle_cpu:.2f} s = {share * 100:.3f}% of one core "
          f"(aim < {CPU_AIM * 100:.0f}%): ratio {share / CPU_AIM:.3f}")
    print(f"  peak RSS:       {peak_mb:.1f} MB (VmHWM; now {rss_kb / 1024:.1f} MB) "
          f"(aim < {RSS_AIM_MB:.0f} MB): ratio {peak_mb / RSS_AIM_MB:.3f}")
    print(f"  SIGTERM -> exit {code} in {stop_seconds:.2f} s")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
