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
  - synthdistill again against a second server that injects --fault-rate faults (seeded, split evenly
    among 429 with Retry-After 0.5 s, 500, a malformed JSON body, and a hang past the 2 s request
    timeout) over --fault-requests requests; every record must still be delivered.

Only the workload call is timed (engine.map, pipeline.run, the curator.LLM call), not imports, client
construction or the installs. The server also reports the most requests it saw in flight and the window
from its first answer to its last, as a check on each client's own clock.

distilabel and Curator pin conflicting libraries (Curator holds litellm and pandas back), so each is
installed in a virtual environment of its own under --venvs on first use (a few minutes each), then reused.

    python bench/teacher_throughput.py                    # everything, about 5 minutes once installed
    python bench/teacher_throughput.py --skip-peers       # no distilabel or Curator (no installs)
    python bench/teacher_throughput.py --repeat 2 --venvs /tmp/bench-venvs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
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
    parser.add_argument("--skip-faults", action="store_true", help="Leave out the run with faults.")
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
    runs: list[dict[str, Any]] = field(default_factory=list)

    def best(self) -> dict[str, Any]:
        """The round with the most requests per second."""
        return max(self.runs, key=lambda run: run["rate"])


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
    contenders = [
        Contender("bare aiohttp loop", "bare", requests=args.requests),
        Contender("synthdistill", "synthdistill", requests=args.requests),
    ]
    if not args.skip_peers:
        for peer in PEERS:
            _ensure_venv(args.venvs, peer)
        contenders += [
            Contender("distilabel 1.5.3", "distilabel", "distilabel", args.requests),
            Contender(f"Curator 0.1.31, {args.concurrency} in flight", "curator", "curator", args.requests),
            Contender("Curator 0.1.31, uncapped", "curator-uncapped", "curator", args.requests),
            Contender(
                f"synthdistill, {args.wide_concurrency} in flight",
                "synthdistill-wide",
                requests=args.requests,
            ),
        ]
    faulty = Contender(
        f"synthdistill, {args.fault_rate:.0%} faults", "synthdistill", requests=args.fault_requests
    )
    with tempfile.TemporaryDirectory(prefix="synthdistill-bench-") as tmp:
        workdir = Path(tmp)
        with _Server(latency=args.latency) as server:
            for round_ in range(args.repeat):
                for contender in contenders:
                    _measure(contender, server, args, workdir / f"{contender.worker}-{round_}")
        if not args.skip_faults:
            share = args.fault_rate / 4
            faults = {
                "rate_429": share,
                "retry_after_s": 0.5,
                "rate_500": share,
                "rate_malformed": share,
                "rate_hang": share,
                # Well past the client's timeout: the client must give up on it, not wait it out.
                "hang_s": max(5.0, args.timeout_s * 2.5),
                "seed": args.seed,
            }
            for round_ in range(args.repeat):
                # A fresh server each round, so that every round draws the same faults from the seed.
                with _Server(latency=args.latency, **faults) as server:
                    _measure(faulty, server, args, workdir / f"faults-{round_}")
    _print_table(args, contenders, None if args.skip_faults else faulty)


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
        "--timeout-s",
        str(args.timeout_s),
        "--hedge-after",
        str(args.hedge_after),
        "--workdir",
        str(workdir),
    ]
    log = workdir / "worker.log"
    print(f"  running {contender.name} ({contender.requests} requests) ...", flush=True)
    with log.open("w") as stderr:
        try:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{contender.name}: the worker ran past 900 s; see {log}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{contender.name}: the worker exited {done.returncode}; its log ends:\n{tail}")
    run = json.loads(lines[-1][len(RESULT_MARK) :])
    run["server"] = server.stats()
    run["rate"] = run["delivered"] / run["seconds"]
    contender.runs.append(run)
    print(
        f"    {run['rate']:.0f} requests/s, {run['delivered']}/{contender.requests} delivered, "
        f"{run['server']['requests']} requests seen by the server, "
        f"peak {run['server']['peak_in_flight']} in flight",
        flush=True,
    )


def _print_table(args: argparse.Namespace, contenders: list[Contender], faulty: Contender | None) -> None:
    ideal = args.concurrency / args.latency
    by_worker = {c.worker: c.best() for c in contenders}
    bare = by_worker["bare"]["rate"]
    ours = by_worker["synthdistill"]["rate"]
    rows: list[list[str]] = []
    for contender in [*contenders, *([faulty] if faulty else [])]:
        run = contender.best()
        rate = run["rate"]
        wide = by_worker.get("synthdistill-wide", {}).get("rate", 0.0)
        target, holds = _target(contender, faulty, rate, ours, wide, ideal, bare, args)
        window = run["server"]["window_s"]
        rows.append(
            [
                contender.name,
                f"{run['delivered']}/{contender.requests}",
                str(run["server"]["peak_in_flight"]),
                f"{run['seconds']:.2f}",
                f"{1000 * run['cpu_s'] / run['delivered']:.1f}" if run["delivered"] else "-",
                f"{rate:.0f}",
                f"{run['delivered'] / window:.0f}" if window else "-",
                f"{rate / ideal:.2f}",
                f"{rate / bare:.2f}",
                target,
                holds,
            ]
        )
    header = [
        "contender",
        "delivered",
        "peak in flight",
        "seconds",
        "CPU ms/req",
        "req/s",
        "server req/s",
        "of ideal",
        "of bare",
        "target",
        "holds",
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i in (0, 9) else c.rjust(w) for i, (c, w) in enumerate(cells)))
    print()
    print(f"ideal: {args.concurrency} in flight / {args.latency:g} s = {ideal:.0f} requests/s")
    print("req/s: delivered records over the client's own timing of its workload call")
    print("server req/s: delivered records over the server's window, first answer (less a latency) to last")
    print("CPU ms/req: the client's CPU time in the timed call (its process and joined children), per record")
    if faulty is not None:
        run = faulty.best()
        faults = run["server"]["faults"]
        shown = ", ".join(f"{kind} {faults[kind]}" for kind in ("429", "500", "malformed", "hang"))
        delivered = [run["delivered"] for run in faulty.runs]
        every = all(count == faulty.requests for count in delivered)
        print(
            f"faults injected by the server (seed {args.seed}, best round): {shown}; the server saw "
            f"{run['server']['requests']} requests for {faulty.requests} records; synthdistill counted "
            f"{run['retries']} retries, {run['failures']} failures and {run.get('hedges', 0)} hedged calls"
        )
        print(
            f"every record delivered: {'yes' if every else 'NO'} "
            f"({', '.join(f'{count}/{faulty.requests}' for count in delivered)} in {len(delivered)} round(s))"
        )
        share = args.fault_rate / 4
        # A hang holds its slot until the timeout; every fault costs one more attempt. With the slots
        # capped at --concurrency, this bounds what a client that waits out each hang can reach.
        slot_s = (args.latency * (1 - share) + args.timeout_s * share) / (1 - args.fault_rate)
        print(
            f"a client that waits out each hang's {args.timeout_s:g} s timeout in its slot delivers at most "
            f"about {args.concurrency / slot_s:.0f} records/s here ({args.concurrency / slot_s / ideal:.2f} "
            "of the ideal); synthdistill hedges a call unanswered after "
            + (f"{args.hedge_after:g}x the recent p95 latency instead" if args.hedge_after else "(off here)")
        )
        if args.hedge_after:
            # A hedged hang holds its slot until the copy (sent after hedge_after x latency) answers.
            hedged_s = (args.latency * (1 - share) + args.latency * (args.hedge_after + 1) * share) / (
                1 - args.fault_rate
            )
            print(
                f"a client that hedges at {args.hedge_after:g}x latency, with no start or tail, delivers at "
                f"most about {args.concurrency / hedged_s:.0f} records/s here "
                f"({args.concurrency / hedged_s / ideal:.2f} of the ideal)"
            )
    print(f"load average at the end: {_load()}")


def _target(
    contender: Contender,
    faulty: Contender | None,
    rate: float,
    ours: float,
    ours_wide: float,
    ideal: float,
    bare: float,
    args: argparse.Namespace,
) -> tuple[str, str]:
    if contender is faulty:
        delivered = all(run["delivered"] == contender.requests for run in contender.runs)
        return "all delivered, >= 0.85 of ideal", _yes(delivered and rate >= 0.85 * ideal)
    if contender.worker == "bare":
        return "reference", ""
    if contender.worker == "synthdistill":
        return ">= 0.90 of ideal, >= 0.95 of bare", _yes(rate >= 0.9 * ideal and rate >= 0.95 * bare)
    if contender.worker == "synthdistill-wide":
        return "beside Curator uncapped", ""
    if contender.worker == "curator-uncapped":
        # Uncapped Curator is compared with synthdistill at about the same number in flight.
        window = contender.best()["server"]["window_s"]
        best = max(rate, contender.best()["delivered"] / window if window else 0.0)
        return f"synthdistill at {args.wide_concurrency} ahead", _yes(ours_wide > best)
    # Judged against the better of the peer's two figures, so its own start-up costs never decide it.
    window = contender.best()["server"]["window_s"]
    best = max(rate, contender.best()["delivered"] / window if window else 0.0)
    return "synthdistill ahead", _yes(ours > best)


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
        max_retries=6,
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
                timeout=int(max(args.timeout_s, 1)),
                generation_kwargs={"max_new_tokens": 64},
            ),
            input_batch_size=args.concurrency,
        )
        load >> generate
    with _Clock() as clock:
        distiset = pipeline.run(use_cache=False)
    rows = distiset["default"]["train"]
    delivered = sum(1 for text in rows["generation"] if text)
    return {"delivered": delivered, **clock.figures()}


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
