"""The sandbox's cost per program, measured side by side in one run.

Each contender runs the same N short programs (a program of thought for an arithmetic word problem, as
prompts/pot_rationale.j2 teaches), one after another, in interleaved rounds, so a change of load hits
them all alike:

1. bare: `subprocess.run([sys.executable, "-c", program])`, a fresh interpreter as anyone would start it;
2. bare -I -S: the same with the flags the sandbox starts its interpreter with (isolated, no site), so
   that the sandbox's own cost is the difference from this row;
3. sandbox: `synthdistill.sandbox.run_program` with its default limits and every layer (temporary folder,
   resource limits, network namespace, Landlock, seccomp, audit hook and import allow-list);
4. sandbox, kernel layers off, and sandbox, audit hook off: what those layers cost;
5. throughput: `run_programs` with one worker a CPU against one at a time, in programs a second.

Target: the sandbox adds under 50 ms a program to a bare interpreter. Per-program milliseconds are the
median and the 90th percentile of a round's programs; each row keeps its best round.

    .venv/bin/python bench/sandbox_overhead.py [--n 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from synthdistill.sandbox import Limits, run_program, run_programs

PROGRAM = "apples = {a}\nbought = {b}\nboxes = 3\nanswer = (apples + bought) * boxes\nprint(answer)\n"
TARGET_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="Programs per contender and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; each row keeps its best.")
    args = parser.parse_args()
    programs = [PROGRAM.format(a=i, b=i % 7) for i in range(args.n)]
    expected = [str((i + i % 7) * 3) for i in range(args.n)]

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    layers = run_program(programs[0]).layers
    print(f"sandbox layers that hold here: {', '.join(layers)}")
    contenders: dict[str, Callable[[str], str | None]] = {
        "bare": lambda p: _bare(p, []),
        "bare -I -S": lambda p: _bare(p, ["-I", "-S"]),
        "sandbox": lambda p: run_program(p).answer,
        "sandbox, kernel layers off": lambda p: run_program(p, Limits(kernel=False)).answer,
        "sandbox, audit hook off": lambda p: run_program(p, Limits(audit_hook=False)).answer,
    }
    best: dict[str, tuple[float, float]] = {}
    rates: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            times = _timed(run, programs, expected)
            median, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
            if name not in best or median < best[name][0]:
                best[name] = (median, p90)
        for workers in (1, os.cpu_count() or 1):
            started = time.perf_counter()
            results = run_programs(programs, workers=workers)
            assert [r.answer for r in results] == expected
            rate = len(programs) / (time.perf_counter() - started)
            label = f"run_programs, {workers} worker(s)"
            rates[label] = max(rate, rates.get(label, 0.0))

    bare = best["bare"][0]
    print(f"\n{'contender':<28} {'median ms':>10} {'p90 ms':>8} {'over bare':>10}")
    for name, (median, p90) in best.items():
        print(f"{name:<28} {median:>10.1f} {p90:>8.1f} {median - bare:>+10.1f}")
    overhead = best["sandbox"][0] - bare
    verdict = "met" if overhead < TARGET_MS else "missed"
    print(f"\nsandbox overhead per program: {overhead:+.1f} ms over bare", end=" ")
    print(f"(target under {TARGET_MS:.0f} ms: {verdict}),")
    print(f"{best['sandbox'][0] - best['bare -I -S'][0]:+.1f} ms over the same interpreter flags")
    print(f"\n{'throughput':<28} {'programs/s':>10}")
    for name, rate in rates.items():
        print(f"{name:<28} {rate:>10.1f}")


def _bare(program: str, flags: list[str]) -> str | None:
    done = subprocess.run(
        [sys.executable, *flags, "-c", program], capture_output=True, text=True, check=False
    )
    lines = done.stdout.split()
    return lines[-1] if lines else None


def _timed(run: Callable[[str], str | None], programs: list[str], expected: list[str]) -> list[float]:
    times = []
    for program, answer in zip(programs, expected, strict=True):
        started = time.perf_counter()
        got = run(program)
        times.append((time.perf_counter() - started) * 1000)
        assert got == answer, (program, got)
    return times


if __name__ == "__main__":
    main()
