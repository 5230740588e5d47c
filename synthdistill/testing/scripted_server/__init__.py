"""A scripted OpenAI-compatible HTTP server for tests and benchmarks.

`ScriptedServer` answers `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 from a
background thread with its own event loop, so synchronous tests and async code alike can call it
over real sockets. What it answers comes from a `responder` callable; how it misbehaves comes from
fault rates drawn from a seeded random generator, so a flaky run can be replayed:

    with ScriptedServer(latency=0.2, rate_429=0.1, seed=0) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="not-needed")
        ...
        assert server.stats.peak_in_flight == 32

Every setting is a constructor argument and a plain attribute that may be changed while the server
runs (`server.rate_500 = 1.0`); a request reads them when it arrives.

Token counts are whitespace-split words (`len(text.split())`), which is enough to test accounting
without a tokenizer. `stop` cuts a completion before the first stop string (finish_reason "stop");
`max_tokens` keeps the first that many words (finish_reason "length").

Fault kinds, one drawn per chat request (at most one; rates should sum to at most 1):
    rate_429        429 with a `Retry-After: <retry_after_s>` header and an OpenAI-shaped error body
    rate_500        500 with an OpenAI-shaped error body
    rate_hang       sleep `hang_s` seconds, then answer normally (clients should time out first)
    rate_malformed  200 with `Content-Type: application/json` and a JSON body cut off mid-way
    rate_truncated  200 whose completions are cut to half their words, finish_reason "length"
With `hang_once` set, the first request whose messages contain that text hangs, every later copy of the
same request is answered: a deterministic stuck call (counted as a "hang" fault).
With `required_key` set, a request without `Authorization: Bearer <required_key>` gets a 401
(counted in `stats.faults["401"]`), before any fault is drawn.

With `rpm_limit` set, the server enforces a request quota per fixed window of `limit_window_s`
seconds the way OpenAI reports it: every chat response carries `x-ratelimit-limit-requests`,
`x-ratelimit-remaining-requests` and `x-ratelimit-reset-requests` (such as "0.8s"), and a request
over the quota gets a 429 with those headers (counted in `stats.faults["quota"]`).

It also speaks OpenAI's batch API for offline jobs: `POST /v1/files` (purpose "batch", a JSONL file of
{custom_id, method, url, body} lines), `POST /v1/batches`, `GET /v1/batches/{id}` and
`GET /v1/files/{id}/content`. A batch stays "in_progress" for `batch_delay_s` seconds after it is
created, then its lines are answered by the same responder (a share `batch_line_error_rate` of them
as error lines with status 500) and it turns "completed". Batches live in memory, so a client that
restarts finds its batch where it left it while the server runs.

Run it on its own for benchmarks or manual tests; it prints its URL on stdout, then serves until
interrupted:

    python -m synthdistill.testing.scripted_server --port 8000 --latency 0.2 --rate-429 0.05

The package's modules, one concern each: `server` (settings, thread, routes), `chat` (the chat endpoint),
`completions` (the answers), `faults` (which fault a request gets), `batch` (the batch API), `stats` (the
counters), `errors` (error bodies) and `__main__` (the command line).
"""

from synthdistill.testing.scripted_server.completions import Responder, default_responder
from synthdistill.testing.scripted_server.server import ScriptedServer
from synthdistill.testing.scripted_server.stats import FAULT_KINDS, ServerStats

__all__ = ["FAULT_KINDS", "Responder", "ScriptedServer", "ServerStats", "default_responder"]
