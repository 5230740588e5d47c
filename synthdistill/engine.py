"""The engine: every teacher call goes through it, to be cached, bounded, retried and counted.

Stages are plain functions over records; `Engine.map` is their one door to a teacher. It runs an
asyncio loop in a background thread, keeps a bounded window of requests in flight across the whole
stream (it never drains between batches), answers what it can from the call cache, waits on the rate
limiter, reserves each call's worst-case cost against the run's budget, retries what a retry may fix,
reports what still fails to `on_failure`, and yields results in input order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from synthdistill.cache import CallCache, call_key
from synthdistill.costs import FREE, Budget, BudgetExceeded, Price, estimate_tokens
from synthdistill.limits import RateLimiter
from synthdistill.records import Sample
from synthdistill.teachers.base import Backend, Completion, Request, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")
Parser = Callable[[str], dict[str, Any]]
FailureHook = Callable[[Any, Request, str], None]
"""Called with (payload, request, reason) for a request that failed after every retry."""


class ParseError(ValueError):
    """A completion that does not hold what the parser needs; the engine may ask again."""


@dataclass
class EngineStats:
    """Counters of one engine, summed over its life; stages diff snapshots of it."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    cost_usd: float = 0.0

    def snapshot(self) -> EngineStats:
        """A copy of the counters now."""
        return EngineStats(**vars(self))

    def since(self, before: EngineStats) -> dict[str, int | float]:
        """The counters gained since `before`."""
        return {name: value - getattr(before, name) for name, value in vars(self).items()}


@dataclass
class Planned:
    """What a dry run would have sent: requests and samples the cache cannot answer, and their worst case."""

    requests: int = 0
    samples: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


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
        max_concurrency: int = 64,
        max_retries: int = 6,
        timeout_s: float | None = 120.0,
        parse_retries: int = 2,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        limiter: RateLimiter | None = None,
        price: Price | None = FREE,
        budget: Budget | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        """Wrap `backend`; `price` None means unknown (costs count as 0; a budget then refuses to run)."""
        self.backend = backend
        self.cache = cache
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.parse_retries = parse_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.limiter = limiter or RateLimiter()
        self.price = price
        self.budget = budget
        self.on_failure = on_failure
        self.stats = EngineStats()
        self.dry_run = False
        """When set, nothing is sent: calls the cache cannot answer are counted in `planned` instead."""
        self.planned = Planned()
        self._identity: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._random = random.Random(0)

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
        loop = self._ensure_loop()
        results: queue.Queue[Any] = queue.Queue()
        # Bounds what is submitted but not yet taken by the caller, so the memory of a run stays flat. Results
        # leave in input order, so one slow request (a hang until its timeout) holds back everything after
        # it: 16x the concurrency keeps the slots busy past it (4x delivered half as much under faults).
        window = asyncio.Semaphore(self.max_concurrency * 16)
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
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.backend.aclose(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="synthdistill-engine", daemon=True
            )
            self._thread.start()
        return self._loop

    async def _produce(
        self,
        items: Iterable[tuple[Any, Request]],
        parse: Parser | None,
        parse_retries: int,
        window: asyncio.Semaphore,
        results: queue.Queue[Any],
        done: object,
    ) -> None:
        in_flight = asyncio.Semaphore(self.max_concurrency)
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
        self, pending: _Pending, parse: Parser | None, parse_retries: int, in_flight: asyncio.Semaphore
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
                self.stats.cache_hits += 1
                pending.samples[i] = _sample(
                    Completion(**hit["completion"]), hit["prompt_tokens"], key, parse
                )
            if self.dry_run:
                self._plan(pending, missing)
                return
            if missing:
                await self._call(pending, missing, parse, in_flight)
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
        self, pending: _Pending, missing: list[tuple[int, str]], parse: Parser | None, sem: asyncio.Semaphore
    ) -> None:
        request = pending.request.model_copy(update={"n": len(missing)})
        prompt_estimate, completion_bound = estimate_tokens(request)
        worst_cost = (self.price or FREE).cost(prompt_estimate, completion_bound)
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if self.budget is not None:
                self.budget.reserve(worst_cost)
            try:
                async with sem:
                    await self.limiter.acquire(prompt_estimate + completion_bound)
                    self.stats.calls += 1
                    response = await asyncio.wait_for(self.backend.complete(request), self.timeout_s)
            except (TransientError, TimeoutError) as exc:
                if self.budget is not None:
                    self.budget.settle(worst_cost, 0.0)  # providers do not bill a failed call
                last_error = str(exc) or type(exc).__name__
                if attempt == self.max_retries:
                    break
                self.stats.retries += 1
                # Retry-After holds back only this request: one 429 says little of the window, and pausing
                # every request on it would stall a run at a few percent of 429s. The provider's
                # x-ratelimit headers, which do describe the shared window, pause all (limits.py).
                delay = getattr(exc, "retry_after", None) or self._backoff(attempt)
                log.info("retrying after %.2fs (attempt %d): %s", delay, attempt + 1, last_error)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if self.budget is not None:
                    self.budget.settle(worst_cost, 0.0)
                raise
            used_completion = sum(c.completion_tokens for c in response.completions)
            self.limiter.settle(prompt_estimate + completion_bound, response.prompt_tokens + used_completion)
            self.limiter.observe(response.rate_limit)
            cost = (self.price or FREE).cost(response.prompt_tokens, used_completion)
            self.stats.cost_usd += cost
            if self.budget is not None:
                self.budget.settle(worst_cost, cost)
            model = self.identity()
            self.stats.prompt_tokens += response.prompt_tokens
            for (i, key), completion in zip(missing, response.completions, strict=False):
                self.stats.completion_tokens += completion.completion_tokens
                self.cache.put(
                    key,
                    self.backend.name,
                    model,
                    {"completion": completion.model_dump(), "prompt_tokens": response.prompt_tokens},
                )
                pending.samples[i] = _sample(completion, response.prompt_tokens, key, parse)
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

    def _plan(self, pending: _Pending, missing: list[tuple[int, str]]) -> None:
        planned = self.planned
        planned.cached += pending.request.n - len(missing)
        if missing:
            request = pending.request.model_copy(update={"n": len(missing)})
            prompt, completion = estimate_tokens(request)
            planned.requests += 1
            planned.samples += len(missing)
            planned.prompt_tokens += prompt
            planned.completion_tokens += completion
            planned.cost_usd += (self.price or FREE).cost(prompt, completion)
        for i, key in missing:
            pending.samples[i] = Sample(text="", cache_key=key, error="not sent: dry run")

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps many clients that failed together from retrying together.
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return self._random.uniform(ceiling / 2, ceiling)


def _sample(completion: Completion, prompt_tokens: int, key: str, parse: Parser | None) -> Sample:
    fields: dict[str, Any] = {}
    error = None
    if parse is not None:
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
