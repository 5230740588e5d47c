"""The engine: every teacher call goes through it, to be cached, bounded, retried and counted.

Stages are plain functions over records; `Engine.map` is their one door to a teacher. It runs an
asyncio loop in a background thread, keeps a bounded window of requests in flight across the whole
stream (it never drains between batches), answers what it can from the call cache, waits on the rate
limiter, reserves each call's worst-case cost against the run's budget, retries what a retry may fix,
reports what still fails to `on_failure`, and yields results in input order.

`build_engine` is the one place a pipeline's `TeacherConfig` becomes an engine; the engine's own
defaults are that config's, so they are written once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from synthdistill.config import TeacherConfig
from synthdistill.records import Sample
from synthdistill.registry import registry
from synthdistill.teachers.base import Backend, Completion, Request, Response, TransientError
from synthdistill.teachers.cache import CallCache, call_key
from synthdistill.teachers.costs import FREE, Budget, BudgetExceeded, Price, estimate_tokens, price_for
from synthdistill.teachers.counters import Planned, TeacherCounters
from synthdistill.teachers.hedging import Latencies, hedged
from synthdistill.teachers.limits import RateLimiter
from synthdistill.teachers.loop import LoopThread
from synthdistill.teachers.retries import Backoff
from synthdistill.teachers.slots import Slot, Slots

log = logging.getLogger(__name__)

T = TypeVar("T")
Parser = Callable[[str], dict[str, Any]]
FailureHook = Callable[[Any, Request, str], None]
"""Called with (payload, request, reason) for a request that failed after every retry."""

_DEFAULT_TEACHER = TeacherConfig()
"""The teacher config's defaults, which are the engine's too, so they are declared once (config.py)."""


class ParseError(ValueError):
    """A completion that does not hold what the parser needs; the engine may ask again."""


@dataclass
class _Pending:
    index: int
    payload: Any
    request: Request
    samples: list[Sample | None] = field(default_factory=list)


class Engine:
    """Caches, bounds, retries and counts the calls to one teacher backend."""

    def __init__(
        self,
        backend: Backend,
        cache: CallCache,
        *,
        max_concurrency: int = _DEFAULT_TEACHER.max_concurrency,
        max_retries: int = _DEFAULT_TEACHER.max_retries,
        timeout_s: float | None = _DEFAULT_TEACHER.timeout_s,
        parse_retries: int = 2,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        limiter: RateLimiter | None = None,
        price: Price | None = FREE,
        budget: Budget | None = None,
        on_failure: FailureHook | None = None,
        hedge_after: float | None = None,
    ) -> None:
        """Wrap `backend`; `price` None means unknown (costs count as 0; a budget then refuses to run).

        Built from a pipeline's teacher by `build_engine`; an engine built directly never hedges unless
        given `hedge_after`.
        """
        self.backend = backend
        self.cache = cache
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.parse_retries = parse_retries
        self.backoff = Backoff(backoff_base_s, backoff_max_s)
        """Delays between retries: none while failures are sparse, growing once they are not (retries.py)."""
        self.limiter = limiter or RateLimiter()
        self.price = price
        self.budget = budget
        self.on_failure = on_failure
        self.hedge_after = hedge_after
        """Hedge a call unanswered after this multiple of the recent p95 latency (None: never hedge)."""
        self._latencies = Latencies()
        self.stats = TeacherCounters()
        self.dry_run = False
        """When set, nothing is sent: calls the cache cannot answer are counted in `planned` instead."""
        self.planned = Planned()
        self._identity: str | None = None
        self._thread = LoopThread("synthdistill-engine")

    def map(
        self,
        items: Iterable[tuple[T, Request]],
        parse: Parser | None = None,
        parse_retries: int | None = None,
    ) -> Iterator[tuple[T, list[Sample]]]:
        """Answer each (payload, request) pair with its samples, in input order.

        A sample whose text `parse` rejects is asked for again (under a new cache key) up to
        `parse_retries` times when sampling is random, then kept with its error.
        """
        loop = self._thread.loop()
        results: queue.Queue[Any] = queue.Queue()
        # Bounds what is submitted but not yet taken by the caller, so the memory of a run stays flat. Results
        # leave in input order, so a request still in its retries holds back everything after it; the
        # window must cover its hang, backoff and retry: with 10% faults (bench/teacher_throughput.py),
        # 64x the 64 slots delivered 0.68 of the ideal and 16x 0.62.
        window = asyncio.Semaphore(max(16 * self.max_concurrency, WINDOW_MIN))
        done = object()
        retries = self.parse_retries if parse_retries is None else parse_retries
        produce = self._produce(items, parse, retries, window, results, done)
        future = asyncio.run_coroutine_threadsafe(produce, loop)
        waiting: dict[int, _Pending] = {}
        next_index = 0
        try:
            while True:
                item = results.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                waiting[item.index] = item
                while next_index in waiting:
                    pending = waiting.pop(next_index)
                    loop.call_soon_threadsafe(window.release)
                    next_index += 1
                    yield pending.payload, [s for s in pending.samples if s is not None]
        finally:
            future.cancel()

    def identity(self) -> str:
        """The model identity used in cache keys (a checkpoint hash for local models)."""
        if self._identity is None:
            self._identity = self.backend.identity()
        return self._identity

    def close(self) -> None:
        """Close the backend and stop the loop thread."""
        self._thread.stop(self.backend.aclose)

    async def _produce(
        self,
        items: Iterable[tuple[Any, Request]],
        parse: Parser | None,
        parse_retries: int,
        window: asyncio.Semaphore,
        results: queue.Queue[Any],
        done: object,
    ) -> None:
        in_flight = Slots(self.max_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        stopped: list[BudgetExceeded] = []

        async def one(pending: _Pending) -> None:
            try:
                await self._answer(pending, parse, parse_retries, in_flight)
                results.put(pending)
            except BudgetExceeded as exc:
                # Raised once the calls in flight have finished, so what they paid for reaches the cache.
                stopped.append(exc)
            except BaseException as exc:  # handed to the caller's thread, which re-raises it
                results.put(exc)

        try:
            # A local model's identity hashes its checkpoint (seconds): once, off the loop, before any
            # request, so that requests reach the backend in input order.
            await asyncio.to_thread(self.identity)
            for index, (payload, request) in enumerate(items):
                await window.acquire()
                if stopped:
                    break
                task = asyncio.ensure_future(one(_Pending(index, payload, request)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                # Let the request start (its cache lookup, its call) before the next is read in: taking in
                # the whole window of 4,096 first held the run's first call back by about 0.5 s.
                await asyncio.sleep(0)
            if tasks:
                await asyncio.gather(*tasks)
            results.put(stopped[0] if stopped else done)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        except BaseException as exc:
            results.put(exc)

    async def _answer(
        self, pending: _Pending, parse: Parser | None, parse_retries: int, in_flight: Slots
    ) -> None:
        request = pending.request
        model = self.identity()
        messages = request.messages
        params = request.params()
        pending.samples = [None] * request.n
        attempts = [0] * request.n
        may_retry_parse = parse is not None and request.temperature > 0
        while True:
            missing: list[tuple[int, str]] = []
            for i in range(request.n):
                if pending.samples[i] is not None:
                    continue
                # Attempt 0 keeps the plain key; a parse retry asks again under a key of its own.
                index: Any = i if attempts[i] == 0 else f"{i}.{attempts[i]}"
                key = call_key(self.backend.name, model, messages, params, index)
                hit = self.cache.get(key)
                if hit is None:
                    missing.append((i, key))
                    continue
                pending.samples[i] = parsed_sample(
                    Completion(**hit["completion"]), hit["prompt_tokens"], parse, key
                )
            if not missing and not any(attempts):
                # Counted in requests, as calls are: a request the cache answered whole is one hit.
                self.stats.cache_hits += 1
            if self.dry_run:
                self._plan(pending, missing)
                return
            if missing:
                await self._call(pending, missing, parse, partial(in_flight.hold, pending.index))
            retry = [
                i
                for i, sample in enumerate(pending.samples)
                if sample is not None and sample.error and may_retry_parse and attempts[i] < parse_retries
            ]
            if not retry:
                return
            for i in retry:
                attempts[i] += 1
                pending.samples[i] = None
                self.stats.retries += 1

    async def _call(
        self, pending: _Pending, missing: list[tuple[int, str]], parse: Parser | None, slot: Slot
    ) -> None:
        request = pending.request.model_copy(update={"n": len(missing)})
        send = partial(self._attempt, request, slot)
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                # Hedged (hedging.py): a call stuck far in the tail of recent latencies gets a racing copy.
                response = await hedged(send, self._latencies, self.hedge_after, self.timeout_s, self.stats)
            except (TransientError, TimeoutError) as exc:
                last_error = str(exc) or type(exc).__name__
                if attempt == self.max_retries:
                    break
                self.stats.retries += 1
                # Retry-After holds back only this request: one 429 says little of the window, and pausing
                # every request on it would stall a run at a few percent of 429s. The provider's
                # x-ratelimit headers, which do describe the shared window, pause all (limits.py).
                delay = self.backoff.delay(attempt, getattr(exc, "retry_after", None))
                log.info("retrying after %.2fs (attempt %d): %s", delay, attempt + 1, last_error)
                await asyncio.sleep(delay)
                continue
            model = self.identity()
            for (i, key), completion in zip(missing, response.completions, strict=False):
                self.cache.put(
                    key,
                    self.backend.name,
                    model,
                    {"completion": completion.model_dump(), "prompt_tokens": response.prompt_tokens},
                )
                pending.samples[i] = parsed_sample(completion, response.prompt_tokens, parse, key)
            short = missing[len(response.completions) :]
            for i, key in short:
                pending.samples[i] = Sample(
                    text="", cache_key=key, error="the backend returned fewer samples"
                )
            return
        self.stats.failures += 1
        reason = f"failed after {self.max_retries} retries: {last_error}"
        log.warning("a request %s", reason)
        if self.on_failure is not None:
            self.on_failure(pending.payload, request, reason)
        for i, key in missing:
            pending.samples[i] = Sample(text="", cache_key=key, error=reason)

    async def _attempt(self, request: Request, slot: Slot, sending: asyncio.Event | None = None) -> Response:
        """Send `request` once in a `slot`, within the rate limits and the budget, and bill it.

        `sending` is set once the call has its slot and goes out.
        """
        prompt_estimate, completion_bound = estimate_tokens(request)
        worst_cost = (self.price or FREE).cost(prompt_estimate, completion_bound)
        if self.budget is not None:
            self.budget.reserve(worst_cost)
        try:
            async with slot():
                await self.limiter.acquire(prompt_estimate + completion_bound)
                self.stats.calls += 1
                started = time.monotonic()
                if sending is not None:
                    sending.set()
                response = await asyncio.wait_for(self.backend.complete(request), self.timeout_s)
        except BaseException as exc:
            if self.budget is not None:
                self.budget.settle(worst_cost, 0.0)  # providers do not bill a failed or cancelled call
            if isinstance(exc, TransientError | TimeoutError):
                self.backoff.observe(failed=True)
            raise
        self.backoff.observe(failed=False)
        self._latencies.add(time.monotonic() - started)
        # Billed here, per answered call: a hedge's loser that answered too is paid for, and counted.
        used_completion = sum(c.completion_tokens for c in response.completions)
        self.limiter.settle(prompt_estimate + completion_bound, response.prompt_tokens + used_completion)
        self.limiter.observe(response.rate_limit)
        cost = (self.price or FREE).cost(response.prompt_tokens, used_completion)
        self.stats.cost_usd += cost
        self.stats.prompt_tokens += response.prompt_tokens
        self.stats.completion_tokens += used_completion
        if self.budget is not None:
            self.budget.settle(worst_cost, cost)
        return response

    def _plan(self, pending: _Pending, missing: list[tuple[int, str]]) -> None:
        self.planned.cached += pending.request.n - len(missing)
        if missing:
            self.planned.count(pending.request.model_copy(update={"n": len(missing)}), self.price or FREE)
        for i, key in missing:
            pending.samples[i] = Sample(text="", cache_key=key, error="not sent: dry run")


def build_engine(
    teacher: TeacherConfig, cache: CallCache, device: str, budget: Budget | None = None
) -> Engine:
    """An engine around the backend that `teacher.backend` names, with its limits, price and budget."""
    backend_class = registry("teacher").get(teacher.backend)
    backend = backend_class(teacher, device=device)
    local = getattr(backend, "local", False)
    # A local model, like a batch job, queues requests behind others: a wall-clock timeout would misfire.
    queued = local or getattr(backend, "queued", False)
    concurrency = teacher.max_concurrency
    if teacher.batch_api is not None:
        # Two jobs' worth in flight, so one fills while the other is answered.
        concurrency = max(concurrency, 2 * teacher.batch_api.max_requests)
    return Engine(
        backend,
        cache,
        max_concurrency=concurrency,
        max_retries=teacher.max_retries,
        timeout_s=None if queued else teacher.timeout_s,
        hedge_after=None if queued else teacher.hedge_after,
        limiter=RateLimiter(rpm=teacher.rpm, tpm=teacher.tpm),
        price=price_for(teacher, local),
        budget=budget,
    )


def parsed_sample(
    completion: Completion, prompt_tokens: int, parse: Parser | None, key: str = "", error: str | None = None
) -> Sample:
    """A completion as a sample: parsed by `parse`, whose failure becomes the sample's error."""
    fields: dict[str, Any] = {}
    if error is None and parse is not None:
        try:
            fields = parse(completion.text)
        except ParseError as exc:
            error = str(exc)
    return Sample(
        text=completion.text,
        fields=fields,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion.completion_tokens,
        finish_reason=completion.finish_reason,
        cache_key=key,
        error=error,
    )


WINDOW_MIN = 4096
"""Fewest requests the engine may have taken in and not yet handed back (16x the concurrency above 256)."""
