"""The command line, `python -m synthdistill.testing.scripted_server`: print the server's URL on stdout, then
serve until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence

from synthdistill.testing.scripted_server.server import ScriptedServer


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m synthdistill.testing.scripted_server",
        description="Serve a scripted OpenAI-compatible API on 127.0.0.1 for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (printed).")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds before each answer.")
    parser.add_argument("--model", default="scripted", help="Model id listed by /v1/models.")
    parser.add_argument("--rate-429", type=float, default=0.0, help="Probability of a 429.")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds of a 429.")
    parser.add_argument("--rate-500", type=float, default=0.0, help="Probability of a 500.")
    parser.add_argument("--rate-hang", type=float, default=0.0, help="Probability of a hang.")
    parser.add_argument("--hang-s", type=float, default=30.0, help="Seconds a hanging request sleeps.")
    parser.add_argument(
        "--rate-malformed", type=float, default=0.0, help="Probability of a broken JSON body."
    )
    parser.add_argument("--rate-truncated", type=float, default=0.0, help="Probability of a cut-off answer.")
    parser.add_argument("--required-key", default=None, help="Bearer key requests must carry (a test key).")
    parser.add_argument("--rpm-limit", type=int, default=None, help="Requests allowed per window.")
    parser.add_argument("--limit-window", type=float, default=60.0, help="Seconds of the quota's window.")
    parser.add_argument("--batch-delay", type=float, default=0.5, help="Seconds a batch job takes.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the fault draws.")
    args = parser.parse_args(argv)
    server = ScriptedServer(
        port=args.port,
        latency=args.latency,
        model=args.model,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        rate_500=args.rate_500,
        rate_hang=args.rate_hang,
        hang_s=args.hang_s,
        rate_malformed=args.rate_malformed,
        rate_truncated=args.rate_truncated,
        required_key=args.required_key,
        rpm_limit=args.rpm_limit,
        limit_window_s=args.limit_window,
        batch_delay_s=args.batch_delay,
        seed=args.seed,
        record_bodies=0,
    )
    with server:
        # Printed once the port accepts requests, so a script reading stdout can connect at once.
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    _main()
