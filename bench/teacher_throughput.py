"""Requests/s of synthdistill's engine against an OpenAI-compatible server, beside a bare loop and two peers.

One scripted server (synthdistill.testing.scripted_server, in a process of its own so that its CPU does
not share a GIL with the client being measured) answers every chat request after --latency seconds. At
--concurrency requests in flight the ideal is concurrency / latency requests/s (320 for 64 and 0.2 s).
Each contender runs the same workload of --requests distinct prompts in a fresh interpreter, one after
another against the same server, in interleaved rounds when --repeat is above 1 (the best round counts):

  - bare aiohttp: a loop of --concurrency workers posting JSON with aiohttp, no client library;
  - synthdistill: Engine.map over OpenAIBackend, its SQLite call cache written as in a real run;
  - distilabel 1.5.3: OpenAILLM in a TextGeneration task of a Pipeline fed by LoadDataFromDicts;
  - Curator 0.1.31: curator.LLM on its OpenAI backend, capped at --concurrency, and uncapped; Curator
    uncapped puts some 250 requests in flight, so synthdistill runs again at --wide-concurrency beside it;
  - with faults: synthdistill, distilabel and Curator (at --concurrency) again, each against a fresh
    server that injects --fault-rate faults over --fault-requests requests (seeded, so each contender meets
    the same sequence of draws: split evenly among 429 with Retry-After 0.5 s, 500, a malformed JSON
    body, and a hang past the request timeout), each with the same --timeout-s and --max-retries where
    it can be set; the table says where a peer cannot be configured as synthdistill is;
  - with --against REF, synthdistill's package as it is at the git commit REF, clean and with faults,
    beside the working tree's: an engine change measured against the engine before it, in one run.

Only the workload call is timed (engine.map, pipeline.run, the curator.LLM call), not imports, client
construction or the installs. The server also reports the most requests it saw in flight and the window
from its first answer to its last, as a check on each client's own clock. With --repeat, the table shows
the best round and, under "rounds", every round's share of the ideal (the spread).

distilabel and Curator pin conflicting libraries (Curator holds litellm and pandas back), so each is
installed in a virtual environment of its own under --venvs on first use (a few minutes each), then reused.

    python bench/teacher_throughput.py                    # everything, about 5 minutes once installed
    python bench/teacher_throughput.py --skip-peers       # no distilabel or Curator (no installs)
    python bench/teacher_throughput.py --repeat 2 --venvs /tmp/bench-venvs
    python bench/teacher_throughput.py --skip-peers --repeat 3 --against HEAD   # engine change vs HEAD
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Only the standard library above: peers' workers run this file under their own virtual environments,
# where synthdistill is not installed.

PEERS: dict[str, tuple[list[str], dict[str, str | None]]] = {
    # distilabel 1.5.3 imports requests (models/image_generation/openai.py) without requiring it.
    "distilabel": (["distilabel[openai]==1.5.3", "requests"], {"distilabel": "1.5.3", "requests": None}),
    "curator": (["bespokelabs-curator==0.1.31"], {"bespokelabs-curator": "0.1.31"}),
}
"""Peer name -> (pip requirements, {distribution: version or None for any}) of its virtual environment."""

SETUPS = {
    "synthdistill": "timeout {timeout}, {retries} retries; hedges stuck calls",
    "distilabel": "timeout {timeout}, {retries} retries (SDK); a malformed body fails its batch",
    "curator": "timeout {timeout}, {retries} retries; retries after the first pass, 10/s",
}
"""How each client meets the faults, as configured here (the full story is printed under the table)."""

SETUP_NOTES = {
    "distilabel": "distilabel 1.5.3 takes OpenAILLM(timeout=, max_retries=), the timeout in whole "
    "seconds, and hands them to the openai SDK, which retries 429s, 5xx and timeouts with its own backoff "
    "(0.5 s doubling to 8 s, Retry-After honoured); a 200 with a malformed body is not retried by the SDK "
    "and raises, and distilabel then fills that whole input batch with empty generations; it cannot hedge",
    "curator": "Curator 0.1.31 takes request_timeout (whole seconds) and max_retries in backend_params; it "
    "sends every first attempt, then the failed requests again, no backoff and no Retry-After, but its retry "
    "loop starts at most one retry every 0.1 s; it cannot hedge; require_all_responses is turned off so "
    "that what it delivers is counted rather than raised",
}
"""What cannot be configured as it is for synthdistill, per peer, printed under the fault table."""

DEFAULT_VENVS = Path.home() / ".cache" / "synthdistill-bench" / "venvs"
RESULT_MARK = "BENCH-RESULT "
"""Prefix of the one stdout line where a worker reports its figures (peers print much else)."""


def main() -> None:
    """Parse arguments; either run one worker or server (internal), or the whole benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="Requests of each clean run.")
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds the server takes per answer.")
    parser.add_argument("--concurrency", type=int, default=64, help="Requests in flight for every client.")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="Per-request timeout of the clients.")
    parser.add_argument("--max-retries", type=int, default=6, help="Retries a request of every client.")
    parser.add_argument(
        "--wide-concurrency", type=int, default=256, help="synthdistill's in flight beside Curator uncapped."
    )
    parser.add_argument("--repeat", type=int, default=1, help="Interleaved rounds; the best round counts.")
    parser.add_argument("--fault-requests", type=int, default=5000, help="Requests of the faulty run.")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="Share of requests that fault.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the server's fault draws.")
    parser.add_argument(
        "--hedge-after", type=float, default=3.0, help="synthdistill's teacher.hedge_after (0: no hedging)."
    )
    parser.add_argument(
        "--venvs", type=Path, default=DEFAULT_VENVS, help="Folder of the peers' virtual environments."
    )
    parser.add_argument("--skip-peers", action="store_true", help="Leave out distilabel and Curator.")
    parser.add_argument("--skip-faults", action="store_true", help="Leave out the runs with faults.")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="Also run synthdistill's package as at this git commit (HEAD: the last commit), clean and "
        "with faults, to measure a change of the engine against the engine before it.",
    )
    # Internal: how the benchmark starts its server and its workers in processes of their own.
    parser.add_argument("--serve", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(json.loads(args.serve))
    elif args.worker:
        figures = WORKERS[args.worker](args)
        print(RESULT_MARK + json.dumps(figures), flush=True)
    else:
        _bench(args)


@dataclass
class Contender:
    """One client of the benchmark and how to start its worker."""

    name: str
    worker: str
    venv: str | None = None
    requests: int = 0
    source: Path | None = None
    """The folder synthdistill's package is imported from (--against); None: the working tree's."""
    runs: list[dict[str, Any]] = field(default_factory=list)

    def best(self) -> dict[str, Any]:
        """The round with the most requests per second."""
        return max(self.runs, key=lambda run: run["rate"])

    @property
    def client(self) -> str:
        """The client library: bare, synthdistill, distilabel or curator."""
        return self.worker.split("-")[0]


def _bench(args: argparse.Namespace) -> None:
    ideal = args.concurrency / args.latency
    print(
        f"teacher throughput: {args.requests} requests, {args.latency:g} s latency, {args.concurrency} in "
        f"flight (ideal {ideal:.0f} requests/s), best of {args.repeat} interleaved round(s)"
    )
    print(
        "caveat: this machine has few cores (os.cpu_count() = "
        f"{os.cpu_count()}) and other work may run on it (load average now {_load()}); "
        "compare figures within one run only"
    )
    faults_name = f"{args.fault_rate:.0%} faults"
    contenders = [
        Contender("bare aiohttp loop", "bare", requests=args.requests),
        Contender("synthdistill", "synthdistill", requests=args.requests),
    ]
    faulty = [Contender(f"synthdistill, {faults_name}", "synthdistill", requests=args.fault_requests)]
    with tempfile.TemporaryDirectory(prefix="synthdistill-bench-") as tmp:
        workdir = Path(tmp)
        if args.against:
            source, commit = _export_package(args.against, workdir / "against")
            print(f"against: synthdistill as at {args.against} ({commit}), exported to {source}")
            contenders.append(
                Contender(f"synthdistill @{commit}", "synthdistill", requests=args.requests, source=source)
            )
            faulty.append(
                Contender(
                    f"synthdistill @{commit}, {faults_name}",
                    "synthdistill",
                    requests=args.fault_requests,
                    source=source,
                )
            )
        if not args.skip_peers:
            for peer in PEERS:
                _ensure_venv(args.venvs, peer)
            contenders += [
                Contender("distilabel 1.5.3", "distilabel", "distilabel", args.requests),
                Contender(
                    f"Curator 0.1.31, {args.concurrency} in flight", "curator", "curator", args.requests
                ),
                Contender("Curator 0.1.31, uncapped", "curator-uncapped", "curator", args.requests),
                Contender(
                    f"synthdistill, {args.wide_concurrency} in flight",
                    "synthdistill-wide",
                    requests=args.requests,
                ),
            ]
            faulty += [
                Contender(
                    f"distilabel 1.5.3, {faults_name}", "distilabel", "distilabel", args.fault_requests
                ),
                Contender(
                    f"Curator 0.1.31, {args.concurrency} in flight, {faults_name}",
                    "curator",
                    "curator",
                    args.fault_requests,
                ),
            ]
        with _Server(latency=args.latency) as server:
            for round_ in range(args.repeat):
                for number, contender in enumerate(contenders):
                    _measure(contender, server, args, workdir / f"clean-{number}-{round_}")
        if not args.skip_faults:
            share = args.fault_rate / 4
            faults = {
                "rate_429": share,
                "retry_after_s": 0.5,
                "rate_500": share,
                "rate_malformed": share,
                "rate_hang": share,
                # Well past the clients' timeout: a client must give up on it, not wait it out.
                "hang_s": max(5.0, args.timeout_s * 2.5),
                "seed": args.seed,
            }
            for round_ in range(args.repeat):
                for number, contender in enumerate(faulty):
                    # A fresh server for each, so that every contender meets the same draws from the seed.
                    with _Server(latency=args.latency, **faults) as server:
                        _measure(contender, server, args, workdir / f"faults-{number}-{round_}")
    _print_tables(args, contenders, [] if args.skip_faults else faulty)


def _export_package(ref: str, folder: Path) -> tuple[Path, str]:
    """Write synthdistill's package as at git commit `ref` under `folder`; the folder and the short hash."""
    repo = Path(__file__).resolve().parents[1]

    def git(*command: str) -> bytes:
        done = subprocess.run(["git", "-C", str(repo), *command], capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"--against {ref}: git {command[0]} failed: {done.stderr.decode().strip()}")
        return done.stdout

    commit = git("rev-parse", "--short", f"{ref}^{{commit}}").decode().strip()
    archive = git("archive", "--format=tar", commit, "synthdistill")
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder, commit


def _measure(contender: Contender, server: _Server, args: argparse.Namespace, workdir: Path) -> None:
    workdir.mkdir(parents=True)
    server.reset()
    python = sys.executable if contender.venv is None else str(_venv_python(args.venvs, contender.venv))
    command = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        contender.worker,
        "--url",
        server.url,
        "--requests",
        str(contender.requests),
        "--concurrency",
        str(args.concurrency),
        "--wide-concurrency",
        str(args.wide_concurrency),
        "--timeout-s",
        str(args.timeout_s),
        "--max-retries",
        str(args.max_retries),
        "--hedge-after",
        str(args.hedge_after),
        "--workdir",
        str(workdir),
    ]
    env = dict(os.environ)
    if contender.source is not None:
        # Ahead of the working tree's editable install on sys.path.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(contender.source), env.get("PYTHONPATH")]))
    log = workdir / "worker.log"
    print(f"  running {contender.name} ({contender.requests} requests) ...", flush=True)
    with log.open("w") as stderr:
        try:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=900, check=False, env=env
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{contender.name}: the worker ran past 900 s; see {log}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{contender.name}: the worker exited {done.returncode}; its log ends:\n{tail}")
    run = json.loads(lines[-1][len(RESULT_MARK) :])
    if contender.source is not None and not run["package"].startswith(str(contender.source)):
        raise SystemExit(f"{contender.name}: the worker imported synthdistill from {run['package']}")
    run["server"] = server.stats()
    run["rate"] = run["delivered"] / run["seconds"]
    contender.runs.append(run)
    print(
        f"    {run['rate']:.0f} requests/s, {run['delivered']}/{contender.requests} delivered, "
        f"{run['server']['requests']} requests seen by the server, "
        f"peak {run['server']['peak_in_flight']} in flight",
        flush=True,
    )


def _print_tables(args: argparse.Namespace, contenders: list[Contender], faulty: list[Contender]) -> None:
    ideal = args.concurrency / args.latency
    by_name = {c.worker if c.source is None else f"{c.worker}@": c.best() for c in contenders}
    bare = by_name["bare"]["rate"]
    rows: list[list[str]] = []
    for contender in contenders:
        run = contender.best()
        target, holds = _target(contender, by_name, ideal, args)
        rows.append(
            [
                contender.name,
                _delivered(contender),
                str(run["server"]["peak_in_flight"]),
                f"{run['seconds']:.2f}",
                _cpu_ms(run),
                f"{run['rate']:.0f}",
                _server_rate(run),
                f"{run['rate'] / ideal:.2f}",
                _rounds(contender, ideal),
                f"{run['rate'] / bare:.2f}",
                target,
                holds,
            ]
        )
    header = ["contender", "delivered", "peak in flight", "seconds", "CPU ms/req", "req/s", "server req/s"]
    header += ["of ideal", "rounds", "of bare", "target", "holds"]
    print()
    _table(header, rows, left=("contender", "target"))
    print()
    print(f"ideal: {args.concurrency} in flight / {args.latency:g} s = {ideal:.0f} requests/s")
    print("req/s: delivered records over the client's own timing of its workload call (the best round)")
    print("server req/s: delivered records over the server's window, first answer (less a latency) to last")
    print("CPU ms/req: the client's CPU time in the timed call (its process and joined children), per record")
    print("rounds: each round's req/s as a share of the ideal, in the order run (the spread)")
    for contender in contenders:
        if contender.client == "synthdistill":
            # A clean run should pay for no copy and no retry.
            print(
                f"{contender.name}: {sum(r['hedges'] for r in contender.runs)} hedged calls and "
                f"{sum(r['retries'] for r in contender.runs)} retries over {len(contender.runs)} round(s)"
            )
    if faulty:
        _print_faults(args, faulty, ideal)
    _print_against(contenders, faulty)
    print(f"load average at the end: {_load()}")


def _print_faults(args: argparse.Namespace, faulty: list[Contender], ideal: float) -> None:
    ours = faulty[0].best()["rate"]
    timeout = f"{args.timeout_s:g} s"
    rows: list[list[str]] = []
    for contender in faulty:
        run = contender.best()
        if contender.client == "synthdistill" and contender.source is None:
            every = all(r["delivered"] == contender.requests for r in contender.runs)
            target, holds = "all delivered, >= 0.85 of ideal", _yes(every and run["rate"] >= 0.85 * ideal)
        elif contender.client == "synthdistill":
            target, holds = "before the change", ""
        else:
            target, holds = "synthdistill ahead", _yes(ours > run["rate"])
        whole = contender.client != "synthdistill" and args.timeout_s != int(max(args.timeout_s, 1))
        rows.append(
            [
                contender.name,
                SETUPS[contender.client].format(
                    timeout=f"{int(max(args.timeout_s, 1))} s (not {timeout})" if whole else timeout,
                    retries=args.max_retries,
                ),
                _delivered(contender),
                str(run["server"]["requests"]),
                str(run["server"]["peak_in_flight"]),
                f"{run['seconds']:.2f}",
                _cpu_ms(run),
                f"{run['rate']:.0f}",
                f"{run['rate'] / ideal:.2f}",
                _rounds(contender, ideal),
                target,
                holds,
            ]
        )
    header = ["with faults", "setup", "delivered", "requests sent", "peak in flight", "seconds", "CPU ms/rec"]
    header += ["rec/s", "of ideal", "rounds", "target", "holds"]
    print()
    _table(header, rows, left=("with faults", "setup", "target"))
    print()
    run = faulty[0].best()
    faults = run["server"]["faults"]
    shown = ", ".join(f"{kind} {faults[kind]}" for kind in ("429", "500", "malformed", "hang"))
    print(
        f"faults: drawn by the server (seed {args.seed}) for each request in the order it arrives, so every "
        f"contender meets the same sequence; in synthdistill's best round: {shown}"
    )
    print("rec/s: records delivered (non-empty answers) over the client's timing of its workload call")
    for contender in faulty:
        if contender.client == "synthdistill":
            best = contender.best()
            print(
                f"{contender.name}: {best['retries']} retries, {best.get('hedges', 0)} hedged calls, "
                f"{best['failures']} failures in the best round; delivered "
                + ", ".join(f"{r['delivered']}/{contender.requests}" for r in contender.runs)
            )
    for client, note in SETUP_NOTES.items():
        if any(contender.client == client for contender in faulty):
            print(f"{note}.")
    for contender in faulty:
        raised = sorted({run["raised"] for run in contender.runs if run.get("raised")})
        if raised:
            print(
                f"{contender.name}: its workload call raised {', '.join(raised)} at the end of the run; "
                "its records were counted from the batches it had written"
            )
    share = args.fault_rate / 4
    attempts = 1 / (1 - args.fault_rate)
    print(
        f"bounds at {args.concurrency} in flight: every fault costs another attempt of a latency, so no "
        f"client delivers more than {1 / attempts:.2f} of the ideal"
    )
    # A hang holds its slot until the timeout: this bounds what a client that waits out each hang can reach.
    slot_s = (args.latency * (1 - share) + args.timeout_s * share) * attempts
    print(
        f"a client that waits out each hang's {args.timeout_s:g} s timeout in its slot delivers at most "
        f"about {args.concurrency / slot_s:.0f} records/s here ({args.concurrency / slot_s / ideal:.2f} "
        "of the ideal); synthdistill hedges a call unanswered after "
        + (f"{args.hedge_after:g}x the recent p95 latency instead" if args.hedge_after else "(off here)")
    )
    if args.hedge_after:
        # A hedged hang holds its slot for the hedge delay and then until its copy answers.
        hedged_s = (args.latency * (1 - share) + args.latency * (args.hedge_after + 1) * share) * attempts
        print(
            f"a client that hedges at {args.hedge_after:g}x latency, with no start or tail, delivers at "
            f"most about {args.concurrency / hedged_s:.0f} records/s here "
            f"({args.concurrency / hedged_s / ideal:.2f} of the ideal)"
        )


def _print_against(contenders: list[Contender], faulty: list[Contender]) -> None:
    """Per round, the working tree's synthdistill over the one at --against, clean and with faults."""
    parts, commit = [], ""
    for label, group in (("clean", contenders), ("with faults", faulty)):
        ours = [c for c in group if c.worker == "synthdistill" and c.source is None]
        before = [c for c in group if c.worker == "synthdistill" and c.source is not None]
        if ours and before:
            ratios = [
                new["rate"] / old["rate"] for new, old in zip(ours[0].runs, before[0].runs, strict=True)
            ]
            parts.append(f"{label} " + " ".join(f"{ratio:.2f}" for ratio in ratios))
            commit = before[0].name.split(",")[0]
    if parts:
        print(f"synthdistill's rate over {commit}'s, round by round: " + "; ".join(parts))


def _target(
    contender: Contender, by_name: dict[str, dict[str, Any]], ideal: float, args: argparse.Namespace
) -> tuple[str, str]:
    rate = contender.best()["rate"]
    ours, bare = by_name["synthdistill"]["rate"], by_name["bare"]["rate"]
    if contender.worker == "bare":
        return "reference", ""
    if contender.source is not None:
        return "before the change", ""
    if contender.worker == "synthdistill":
        return ">= 0.90 of ideal, >= 0.95 of bare", _yes(rate >= 0.9 * ideal and rate >= 0.95 * bare)
    if contender.worker == "synthdistill-wide":
        return "beside Curator uncapped", ""
    # Judged against the better of the peer's two figures, so its own start-up costs never decide it.
    window = contender.best()["server"]["window_s"]
    best = max(rate, contender.best()["delivered"] / window if window else 0.0)
    if contender.worker == "curator-uncapped":
        # Uncapped Curator is compared with synthdistill at about the same number in flight.
        wide = by_name.get("synthdistill-wide", {}).get("rate", 0.0)
        return f"synthdistill at {args.wide_concurrency} ahead", _yes(wide > best)
    return "synthdistill ahead", _yes(ours > best)


def _delivered(contender: Contender) -> str:
    counts = sorted({run["delivered"] for run in contender.runs})
    shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{shown}/{contender.requests}"


def _cpu_ms(run: dict[str, Any]) -> str:
    return f"{1000 * run['cpu_s'] / run['delivered']:.1f}" if run["delivered"] else "-"


def _server_rate(run: dict[str, Any]) -> str:
    window = run["server"]["window_s"]
    return f"{run['delivered'] / window:.0f}" if window else "-"


def _rounds(contender: Contender, ideal: float) -> str:
    return " ".join(f"{run['rate'] / ideal:.2f}" for run in contender.runs)


def _table(header: list[str], rows: list[list[str]], left: tuple[str, ...]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    aligned = {i for i, name in enumerate(header) if name in left}
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i in aligned else c.rjust(w) for i, (c, w) in enumerate(cells)))


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# The server, in a process of its own.


class _Server:
    """Runs this file with --serve in a child process and talks to it over its stdin and stdout."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Server:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", json.dumps(self.settings)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self._read()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        # Closing its stdin ends the server process.
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def reset(self) -> None:
        """Zero the server's counters before a contender runs."""
        self._ask("reset")

    def stats(self) -> dict[str, Any]:
        """What the server saw since the last reset."""
        return dict(json.loads(self._ask("stats")))

    def _ask(self, command: str) -> str:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SystemExit(f"the scripted server exited ({self._process.poll()}); see its stderr above")
        return line.strip()


def _serve(settings: dict[str, Any]) -> None:
    """Serve until stdin closes; answer "reset" and "stats" lines on stdout."""
    from synthdistill.testing.scripted_server import ScriptedServer, default_responder

    latency = float(settings.get("latency", 0.0))
    lock = threading.Lock()
    answers: dict[str, Any] = {"first": None, "last": None}

    def responder(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        # Called once a request's latency has passed: the window runs from the first answer, less one
        # latency, to the last.
        now = time.monotonic()
        with lock:
            answers["first"] = answers["first"] or now
            answers["last"] = now
        return default_responder(messages, params, index)

    with ScriptedServer(responder=responder, record_bodies=0, **settings) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                server.reset_stats()
                with lock:
                    answers.update(first=None, last=None)
                print("ok", flush=True)
            elif command == "stats":
                stats = server.stats
                with lock:
                    first, last = answers["first"], answers["last"]
                window = None if first is None else last - first + latency
                figures = {
                    "requests": stats.requests,
                    "peak_in_flight": stats.peak_in_flight,
                    "faults": stats.faults,
                    "window_s": window,
                }
                print(json.dumps(figures), flush=True)


# Peers' virtual environments.


def _ensure_venv(root: Path, peer: str) -> None:
    requirements, pins = PEERS[peer]
    python = _venv_python(root, peer)
    if python.exists():
        script = (
            "import importlib.metadata as m, json, sys; "
            "print(json.dumps([m.version(d) for d in sys.argv[1:]]))"
        )
        probe = subprocess.run(
            [str(python), "-c", script, *pins], capture_output=True, text=True, check=False
        )
        found = json.loads(probe.stdout) if probe.returncode == 0 else None
        if found and all(want in (None, got) for want, got in zip(pins.values(), found, strict=True)):
            return
    folder = root / peer
    print(f"installing {' '.join(requirements)} into {folder} (a few minutes, once) ...", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True, timeout=600
    )
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pip could not install {requirements} into {folder}:\n{done.stderr[-3000:]}")


def _venv_python(root: Path, peer: str) -> Path:
    return root / peer / "bin" / "python"


# Workers: each runs in a fresh interpreter, times only the workload call, and returns its figures.


class _Clock:
    """Wall seconds of a block, and the CPU seconds this process and its joined children spent in it."""

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), _cpu_s()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_s = _cpu_s() - self._cpu

    def figures(self) -> dict[str, float]:
        return {"seconds": self.seconds, "cpu_s": self.cpu_s}


def _cpu_s() -> float:
    import resource

    # Children count once joined: distilabel runs its steps in processes it joins before run() returns.
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def _prompt(index: int) -> str:
    return f"Question {index}: what is {index} plus {index * 7 % 13}?"


def _work_bare(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    async def run() -> int:
        delivered = 0
        indices = iter(range(args.requests))
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        timeout = aiohttp.ClientTimeout(total=args.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker() -> None:
                nonlocal delivered
                for index in indices:
                    body = {
                        "model": "scripted",
                        "messages": [{"role": "user", "content": _prompt(index)}],
                        "max_tokens": 64,
                    }
                    async with session.post(f"{args.url}/chat/completions", json=body) as response:
                        payload = await response.json()
                    delivered += bool(payload["choices"][0]["message"]["content"])

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        return delivered

    with _Clock() as clock:
        delivered = asyncio.run(run())
    return {"delivered": delivered, **clock.figures()}


def _work_synthdistill(args: argparse.Namespace) -> dict[str, Any]:
    import synthdistill
    from synthdistill.config import TeacherConfig
    from synthdistill.teachers.base import Request
    from synthdistill.teachers.cache import CallCache
    from synthdistill.teachers.engine import build_engine

    teacher = TeacherConfig(
        backend="openai",
        model="scripted",
        api_base=args.url,
        max_concurrency=args.concurrency,
        timeout_s=args.timeout_s,
        max_retries=args.max_retries,
        hedge_after=args.hedge_after or None,
    )
    # As a pipeline builds it, so the defaults measured (hedging among them) are the users'.
    engine = build_engine(teacher, CallCache(args.workdir / "calls.sqlite"), device="cpu")
    items = (
        (i, Request(messages=[{"role": "user", "content": _prompt(i)}], max_tokens=64))
        for i in range(args.requests)
    )
    with _Clock() as clock:
        results = list(engine.map(items))
    engine.close()
    delivered = sum(1 for _, samples in results if samples and not any(s.error for s in samples))
    return {
        "delivered": delivered,
        **clock.figures(),
        "retries": engine.stats.retries,
        "failures": engine.stats.failures,
        "hedges": engine.stats.hedges,
        "calls": engine.stats.calls,
        "package": str(Path(synthdistill.__file__).parent),
    }


def _work_synthdistill_wide(args: argparse.Namespace) -> dict[str, Any]:
    args.concurrency = args.wide_concurrency
    return _work_synthdistill(args)


def _work_distilabel(args: argparse.Namespace) -> dict[str, Any]:
    # At its default INFO level distilabel logs every HTTP request through rich: costly, and not what
    # anyone running it for throughput would keep.
    os.environ.update(DISTILABEL_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    data = [{"instruction": _prompt(i)} for i in range(args.requests)]
    with Pipeline(name="throughput", cache_dir=args.workdir / "distilabel") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=args.concurrency)
        # OpenAILLM sends one input batch at a time, all of it at once: input_batch_size is its in-flight cap.
        generate = TextGeneration(
            llm=OpenAILLM(
                model="scripted",
                base_url=args.url,
                api_key="not-needed",
                # Whole seconds: OpenAILLM declares both as int. The openai SDK retries behind them.
                timeout=int(max(args.timeout_s, 1)),
                max_retries=args.max_retries,
                generation_kwargs={"max_new_tokens": 64},
            ),
            input_batch_size=args.concurrency,
        )
        load >> generate
    raised = None
    with _Clock() as clock:
        try:
            texts = pipeline.run(use_cache=False)["default"]["train"]["generation"]
        except Exception as exc:  # counted from its batches below, and reported in the table
            texts, raised = [], type(exc).__name__
    if raised is not None:
        # A batch that raised (a malformed body, retries spent) is written with empty generations; under
        # faults, distilabel 1.5.3 then fails to read its batches back into one dataset at the end of the
        # run (ArrowNotImplementedError, a null column beside string ones). Its batches are all there.
        import pyarrow.parquet as pq

        batches = sorted(args.workdir.glob("distilabel/**/steps_outputs/text_generation_0/*.parquet"))
        texts = [text for path in batches for text in pq.read_table(path).column("generation").to_pylist()]
    delivered = sum(1 for text in texts if text)
    return {"delivered": delivered, **clock.figures(), "raised": raised}


def _work_curator(args: argparse.Namespace, *, capped: bool = True) -> dict[str, Any]:
    import importlib.util

    # No network here: litellm's price map from its package, tiktoken's cl100k_base (which Curator loads
    # for its token estimates) from the copy litellm ships; no telemetry; and no live progress display,
    # whose redraws would cost Curator CPU that a quiet run would not.
    litellm = importlib.util.find_spec("litellm")
    assert litellm is not None and litellm.origin is not None
    tokenizers = Path(litellm.origin).parent / "litellm_core_utils" / "tokenizers"
    os.environ.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        TIKTOKEN_CACHE_DIR=str(tokenizers),
        TELEMETRY_ENABLED="false",
        CURATOR_DISABLE_RICH_DISPLAY="1",
        HF_DATASETS_CACHE=str(args.workdir / "hf-datasets"),
        HF_HUB_OFFLINE="1",
    )
    from bespokelabs import curator

    backend_params: dict[str, Any] = {
        "base_url": args.url,
        "api_key": "not-needed",
        "request_timeout": int(max(args.timeout_s, 1)),
        "max_retries": args.max_retries,
        # Under faults, count what it delivers rather than raise when a request spent its retries.
        "require_all_responses": False,
        # The scripted server sends no x-ratelimit headers, and Curator's fallback (200 requests and
        # 100,000 tokens a minute, 4,096 tokens reserved a request for a model it does not know) would
        # throttle it far below the server: limits this high never bind.
        "max_requests_per_minute": 10_000_000,
        "max_tokens_per_minute": 10_000_000_000,
    }
    if capped:
        backend_params["max_concurrent_requests"] = args.concurrency
    llm = curator.LLM(
        model_name="scripted",
        backend="openai",
        generation_params={"max_tokens": 64},
        backend_params=backend_params,
    )
    prompts = [_prompt(i) for i in range(args.requests)]
    with _Clock() as clock:
        response = llm(prompts, working_dir=str(args.workdir / "curator"))
    delivered = sum(1 for text in response.dataset["response"] if text)
    return {"delivered": delivered, **clock.figures()}


def _work_curator_uncapped(args: argparse.Namespace) -> dict[str, Any]:
    return _work_curator(args, capped=False)


WORKERS = {
    "bare": _work_bare,
    "synthdistill": _work_synthdistill,
    "distilabel": _work_distilabel,
    "curator": _work_curator,
    "curator-uncapped": _work_curator_uncapped,
    "synthdistill-wide": _work_synthdistill_wide,
}


if __name__ == "__main__":
    main()
