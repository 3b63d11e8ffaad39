"""Where a server's CPU goes, per call: a py-spy profile taken under load, split into the parts
issue 14 names (gRPC and the event loop, parsing, binning, cache, audit append, audit delivery,
acknowledgements, ...), each as a share of the samples and as microseconds of the measured
server CPU per call.

    python -m rowcast_bench.profile record --pid PID --seconds 8 --out prof.txt
    (load the server meanwhile, e.g. with ghz, and note its server CPU per call)
    python -m rowcast_bench.profile table prof.txt --cpu-us-per-call 455

`record` runs `py-spy record --nonblocking --format raw` (collapsed stacks, one per line with
its sample count): `--native` stops the process for every sample and cut the throughput under
load by 50x here, which makes the profile describe a different program. It also reads each
thread's CPU time from /proc before and after, so the table can say how much of the CPU the
event-loop thread and how much gRPC's own threads (event_engine, timers) used.

A stack belongs to the first category (in the order below) that any of its frames matches;
what matches none is "other". Stacks whose innermost Python frame is the event loop running a
callback (`Handle._run`) or a thread's `run` are time spent in compiled code below Python:
grpc.aio's Cython callbacks and completion queue, counted as gRPC.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: (category, pattern of a frame), first match wins: specific parts before the machinery.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("acknowledgements", r"Spool\.acknowledge|save_cursor|SpoolSender\._read_loop|_ack"),
    ("audit delivery", r"SpoolSender|Spool\.read|spool/sender\.py|scan_frames|DeliveryTail"),
    ("audit append", r"AuditSink\.record|Spool\.append|core/chain\.py|GroupCommit|AppendGroup"),
    ("binning", r"core/signature\.py|prediction_key|core/keys\.py"),
    ("cache", r"prediction/lookup\.py|cachetools"),
    (
        "parsing and responses",
        r"convert\.py|parse_input|check_model_name|check_subject"
        r"|check_alias|answer_to_pb|prediction/servicer\.py",
    ),
    (
        "answer (routing, records)",
        r"prediction/answerer\.py|prediction/router\.py"
        r"|core/records\.py",
    ),
    ("metrics, auth, tracing, logs", r"telemetry/|security/|grpc_errors\.py"),
    ("HBase client", r"happybase|thriftpy2|store/"),
    ("gRPC and event loop", r"grpc|asyncio/|selectors\.py|Thread\.run|concurrent/futures"),
)
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in CATEGORIES)
OTHER = "other"


@dataclass(frozen=True)
class Split:
    """Samples per category and their total."""

    samples: dict[str, int]
    total: int

    def share(self, category: str) -> float:
        return self.samples.get(category, 0) / self.total if self.total else 0.0


def categorise(frames: list[str]) -> str:
    for name, pattern in _COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return name
    return OTHER


def split(lines: Iterable[str]) -> Split:
    """The samples of a py-spy raw (collapsed) profile per category."""
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        counts[categorise(stack.split(";"))] += n
    return Split(dict(counts), sum(counts.values()))


def table(s: Split, cpu_us_per_call: float | None) -> str:
    """A markdown table of the split, largest first, with us/call when the CPU is known."""
    order = [name for name, _ in CATEGORIES] + [OTHER]
    rows = sorted((n for n in order if s.samples.get(n)), key=lambda n: -s.samples[n])
    head = "| part | samples | share |" + (" server CPU us/call |" if cpu_us_per_call else "")
    sep = "|---|---:|---:|" + ("---:|" if cpu_us_per_call else "")
    out = [head, sep]
    for name in rows:
        line = f"| {name} | {s.samples[name]} | {100 * s.share(name):.1f} % |"
        if cpu_us_per_call:
            line += f" {s.share(name) * cpu_us_per_call:.0f} |"
        out.append(line)
    total = f"| total | {s.total} | 100 % |" + (
        f" {cpu_us_per_call:.0f} |" if cpu_us_per_call else ""
    )
    out.append(total)
    return "\n".join(out)


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU clock ticks (user + system) of each thread of pid, summed by thread name."""
    ticks: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the ")" closing the name: fields[11] is utime, fields[12] stime.
        ticks[name] += int(fields[11]) + int(fields[12])
    return dict(ticks)


def record(pid: int, seconds: float, out: Path, rate: int, py_spy: str) -> dict[str, float]:
    """Profile pid for `seconds` and return the CPU seconds each thread name used meanwhile."""
    before = thread_ticks(pid)
    argv = [py_spy, "record", "--nonblocking", "--rate", str(rate), "--format", "raw",
            "--duration", f"{seconds:g}", "--output", str(out), "--pid", str(pid)]  # fmt: skip
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 60)
    after = thread_ticks(pid)
    hz = os.sysconf("SC_CLK_TCK")
    used = {name: (after.get(name, 0) - before.get(name, 0)) / hz for name in after}
    used["(wall)"] = time.monotonic() - started
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rowcast_bench.profile")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="py-spy profile of a running server")
    rec.add_argument("--pid", type=int, required=True)
    rec.add_argument("--seconds", type=float, default=8.0)
    rec.add_argument("--rate", type=int, default=250)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    tab = sub.add_parser("table", help="the split of a raw profile as a markdown table")
    tab.add_argument("profile", type=Path)
    tab.add_argument("--cpu-us-per-call", type=float, default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        used = record(args.pid, args.seconds, args.out, args.rate, args.py_spy)
        for name, cpu in sorted(used.items(), key=lambda kv: -kv[1]):
            print(f"{name}: {cpu:.2f} s")
        return 0
    with args.profile.open() as f:
        print(table(split(f), args.cpu_us_per_call))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
