"""The engine against the scripted server over real HTTP: faults, failures, limits, budgets, endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthdistill.config import TeacherConfig
from synthdistill.teachers.base import Request
from synthdistill.teachers.cache import CallCache
from synthdistill.teachers.costs import Budget, BudgetExceeded, Price
from synthdistill.teachers.engine import WINDOW_MIN, Engine
from synthdistill.teachers.limits import RateLimiter, RateLimitInfo, parse_duration
from synthdistill.teachers.openai import OpenAIBackend
from synthdistill.teachers.retries import Backoff
from synthdistill.teachers.slots import Slots
from synthdistill.testing import ScriptedServer


def engine_for(
    url: str | list[str],
    tmp_path: Path,
    *,
    max_retries: int = 6,
    timeout_s: float = 10.0,
    backoff_base_s: float = 0.01,
    **options: Any,
) -> Engine:
    teacher = TeacherConfig(backend="openai", model="scripted", api_base=url, max_concurrency=16)
    return Engine(
        OpenAIBackend(teacher),
        CallCache(tmp_path / "calls.sqlite"),
        max_concurrency=16,
        max_retries=max_retries,
        timeout_s=timeout_s,
        # Short backoff keeps the tests quick; the logic is the same at production settings.
        backoff_base_s=backoff_base_s,
        backoff_max_s=max(0.05, backoff_base_s),
        **options,
    )


def requests(count: int, n: int = 1, max_tokens: int = 256) -> list[tuple[int, Request]]:
    return [
        (
            i,
            Request(
                messages=[{"role": "user", "content": f"question {i}"}],
                n=n,
                temperature=0.7,
                max_tokens=max_tokens,
            ),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("fault", "settings"),
    [
        ("429", {"rate_429": 0.3, "retry_after_s": 0.05}),
        ("500", {"rate_500": 0.3}),
        ("malformed", {"rate_malformed": 0.3}),
        ("hang", {"rate_hang": 0.3, "hang_s": 5.0}),
    ],
)
def test_each_fault_kind_is_retried_until_every_record_is_complete(fault, settings, tmp_path):
    with ScriptedServer(seed=1, **settings) as server:
        # Far above a normal answer on a loaded machine, far below a hang.
        engine = engine_for(server.url, tmp_path, timeout_s=1.5)
        results = list(engine.map(requests(40, n=2)))
        engine.close()
        stats = server.stats
    assert [payload for payload, _ in results] == list(range(40))
    assert all(len(samples) == 2 and not any(s.error for s in samples) for _, samples in results)
    injected = stats.faults[fault]
    assert injected >= 5, "the seed should inject this fault several times"
    # Every fault costs exactly one retry, and every attempt reached the server.
    assert engine.stats.retries == injected
    assert engine.stats.calls == stats.by_path["/v1/chat/completions"] == 40 + injected
    assert engine.stats.failures == 0


def test_a_stuck_call_is_hedged_instead_of_waited_out(tmp_path):
    # Each request naming question 3 (3, 30..39) hangs the first time the server sees it; its copy answers.
    with ScriptedServer(latency=0.02, hang_once="question 3", hang_s=60.0) as server:
        engine = engine_for(server.url, tmp_path, timeout_s=30.0, hedge_after=3.0)
        results = list(engine.map(requests(60)))
        engine.close()
        stats = server.stats
    assert all(not samples[0].error for _, samples in results)
    assert stats.faults["hang"] == 11
    # Every hung call got one copy, which answered: no call waited out the 30 s timeout to be retried.
    assert engine.stats.hedges == 11 and engine.stats.retries == 0
    assert engine.stats.calls == stats.by_path["/v1/chat/completions"] == 60 + 11
    # Only the answered calls are billed: the cancelled originals used no tokens.
    assert engine.stats.completion_tokens == sum(s.completion_tokens for _, (s,) in results)


def hedged_run(tmp_path, n: int, **faults: str):
    """`n` requests through a hedging engine (30 s timeout) against a server with hang faults: the engine,
    its results, the seconds they took and the server's stats."""
    with ScriptedServer(latency=0.02, hang_s=60.0, **faults) as server:
        engine = engine_for(server.url, tmp_path, timeout_s=30.0, hedge_after=3.0)
        started = time.monotonic()
        results = list(engine.map(requests(n)))
        seconds = time.monotonic() - started
        engine.close()
        return engine, results, seconds, server.stats


def test_when_a_stuck_calls_copy_fails_the_retry_does_not_wait_for_the_stuck_call(tmp_path):
    # Question 3 hangs the first time; its hedge copy gets a 500; the retry after it answers.
    engine, results, seconds, stats = hedged_run(tmp_path, 30, hang_once="question 3", hang_once_then="500")
    assert all(not samples[0].error for _, samples in results)
    assert stats.faults["hang"] == 1 and stats.faults["500"] == 1
    # Not a speed figure: waiting on the stuck call would take its whole 30 s timeout.
    assert seconds < 15
    # The retry went out as soon as the copy failed (after a short backoff): the stuck call, given up on
    # once copied, was cancelled, not waited on to its 30 s timeout.
    assert engine.stats.hedges == 1 and engine.stats.retries == 1
    assert stats.by_path["/v1/chat/completions"] == 30 + 2


def test_when_a_stuck_calls_copy_is_stuck_too_it_gets_a_copy_of_its_own(tmp_path):
    # Questions 4, 40 and 41 hang the first time, their copies hang too, and the next calls answer. (Few of
    # them: stuck calls keep their slots, and 16 slots must leave room for the second copies.)
    engine, results, seconds, stats = hedged_run(tmp_path, 42, hang_once="question 4", hang_once_then="hang")
    assert all(not samples[0].error for _, samples in results)
    assert stats.faults["hang"] == 2 * 3
    # Not a speed figure: waiting on the two stuck calls would take the whole 30 s timeout.
    assert seconds < 15
    assert engine.stats.hedges == 2 * 3 and engine.stats.retries == 0
    assert engine.stats.calls == stats.by_path["/v1/chat/completions"] == 42 + 2 * 3


def test_retries_go_out_at_once_while_failures_are_sparse_and_back_off_once_they_are_not():
    backoff = Backoff(base_s=1.0, max_s=30.0)
    # Nothing known of the teacher yet (it may be down): back off.
    assert 0.5 <= backoff.delay(0) <= 1.0
    for failed in [False] * 90 + [True] * 10:
        backoff.observe(failed)
    assert backoff.delay(0) == backoff.delay(3) == 0.0
    # A 429's Retry-After is always waited out.
    assert backoff.delay(0, retry_after=0.5) == 0.5
    for _ in range(20):
        backoff.observe(failed=True)
    # 30 of the last 100 calls failed: the teacher is failing broadly, so retries back off, doubling.
    assert 2.0 <= backoff.delay(2) <= 4.0
    assert 15.0 <= backoff.delay(10) <= 30.0


def test_a_teacher_that_fails_now_and_then_is_retried_without_waiting_out_a_backoff(tmp_path):
    with ScriptedServer(latency=0.01, seed=3) as server:
        # A backoff this long would show: the first retry alone would wait 2.5 to 5 s.
        engine = engine_for(server.url, tmp_path, backoff_base_s=5.0)
        list(engine.map(requests(40)))
        server.rate_500 = 0.1
        started = time.monotonic()
        results = list(engine.map((i, r) for i, r in requests(140) if i >= 40))
        seconds = time.monotonic() - started
        engine.close()
        stats = server.stats
    assert all(not samples[0].error for _, samples in results)
    assert stats.faults["500"] >= 5 and engine.stats.retries == stats.faults["500"]
    assert seconds < 2.5


def test_the_first_calls_go_out_before_the_whole_window_is_read_in(tmp_path):
    read = 0

    def items() -> Iterator[tuple[int, Request]]:
        nonlocal read
        for item in requests(10_000):
            read += 1
            yield item

    with ScriptedServer() as server:
        engine = engine_for(server.url, tmp_path)
        results = engine.map(items())
        next(results)
        answered_after = read
        results.close()
        engine.close()
    # The engine takes in up to WINDOW_MIN requests ahead of the caller; reading all of them in before the
    # first call went out held a run's start back by about 0.5 s.
    assert answered_after < WINDOW_MIN


def test_without_hedging_a_stuck_call_waits_for_its_timeout_and_is_retried(tmp_path):
    with ScriptedServer(latency=0.02, hang_once="question 3", hang_s=60.0) as server:
        engine = engine_for(server.url, tmp_path, timeout_s=1.0, hedge_after=None)
        results = list(engine.map(requests(60)))
        engine.close()
    assert all(not samples[0].error for _, samples in results)
    assert engine.stats.hedges == 0 and engine.stats.retries == 11


def test_slots_go_to_the_oldest_waiting_request_first():
    async def scenario() -> list[int]:
        slots = Slots(1)
        order: list[int] = []

        async def call(priority: int) -> None:
            async with slots.hold(priority):
                order.append(priority)
                await asyncio.sleep(0)

        async with slots.hold(0):
            waiters = [asyncio.ensure_future(call(p)) for p in (5, 1, 4, 3)]
            await asyncio.sleep(0)  # all four are now waiting
            waiters[2].cancel()  # priority 4 gives up before its turn: it is skipped
        await asyncio.gather(*waiters, return_exceptions=True)
        # Every slot came back: a new caller gets one at once.
        async with slots.hold(9):
            order.append(9)
        return order

    assert asyncio.run(scenario()) == [1, 3, 5, 9]


def test_a_slot_granted_to_a_waiter_cancelled_at_that_moment_passes_to_the_next():
    async def scenario() -> list[int]:
        slots = Slots(1)
        order: list[int] = []

        async def call(priority: int) -> None:
            async with slots.hold(priority):
                order.append(priority)

        async with slots.hold(0):
            first = asyncio.ensure_future(call(1))
            second = asyncio.ensure_future(call(2))
            await asyncio.sleep(0)
        # The slot is granted to 1, which is cancelled before it runs: 2 must still get it.
        first.cancel()
        # A slot lost with the cancelled waiter would leave 2 waiting for ever.
        await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=5)
        return order

    assert asyncio.run(scenario()) == [2]


def test_requests_that_fail_every_retry_are_reported_and_kept_as_failed_samples(tmp_path):
    failed: list[tuple[Any, str]] = []
    with ScriptedServer(rate_500=1.0) as server:
        engine = engine_for(
            server.url, tmp_path, max_retries=2, on_failure=lambda p, r, why: failed.append((p, why))
        )
        results = list(engine.map(requests(5)))
        engine.close()
        seen = server.stats.by_path["/v1/chat/completions"]
    assert seen == 5 * 3
    assert engine.stats.failures == 5 and engine.stats.retries == 5 * 2
    assert sorted(p for p, _ in failed) == list(range(5))
    assert all("failed after 2 retries" in why and "HTTP 500" in why for _, why in failed)
    assert all(samples[0].error and "HTTP 500" in samples[0].error for _, samples in results)


def test_failed_requests_are_not_cached_so_the_next_map_asks_again(tmp_path):
    with ScriptedServer(rate_500=1.0) as server:
        engine = engine_for(server.url, tmp_path, max_retries=0)
        list(engine.map(requests(3)))
        server.rate_500 = 0.0
        again = list(engine.map(requests(3)))
        engine.close()
    assert all(not samples[0].error for _, samples in again)
    assert engine.stats.cache_hits == 0 and engine.stats.calls == 6


def test_the_providers_rate_limit_headers_pause_requests_before_a_429(tmp_path):
    with ScriptedServer(rpm_limit=4, limit_window_s=0.5) as server:
        teacher = TeacherConfig(backend="openai", model="scripted", api_base=server.url, max_concurrency=1)
        engine = Engine(OpenAIBackend(teacher), CallCache(tmp_path / "c.sqlite"), max_concurrency=1)
        results = list(engine.map(requests(14)))
        engine.close()
        stats = server.stats
    assert all(not samples[0].error for _, samples in results)
    # Without reading x-ratelimit-remaining-requests the fifth request of each window would get a 429.
    assert stats.faults["quota"] == 0 and engine.stats.retries == 0


def test_rpm_from_the_config_spreads_requests_over_time(tmp_path):
    with ScriptedServer() as server:
        engine = engine_for(server.url, tmp_path, limiter=RateLimiter(rpm=300))  # 5 a second
        list(engine.map(requests(15)))
        engine.close()
        arrivals = server.stats.arrivals
    assert len(arrivals) == 15
    # 16 requests may be in flight, so without the limiter all 15 arrive within a few milliseconds.
    # With it: a burst of one second's worth (5), then 5 a second.
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= 5 + 5 + 1
    assert arrivals[-1] - arrivals[0] >= (15 - 5) / 5 * 0.9


def test_tpm_counts_the_estimate_and_settles_on_the_reported_usage():
    limiter = RateLimiter(tpm=600)  # 10 tokens a second, a bucket of 10
    limiter.settle(estimated=100, used=40)
    assert limiter._tokens is not None and limiter._tokens.level == pytest.approx(10, abs=0.1)
    limiter._tokens.take(100)
    assert limiter._tokens.wait(50) > 9  # a request larger than the bucket waits for a full bucket


def test_reset_headers_parse_in_the_providers_formats():
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("0.25") == 0.25
    assert parse_duration("soon") is None
    info = RateLimitInfo.from_headers(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    )
    assert info == RateLimitInfo(remaining_requests=0, reset_requests_s=2.0)
    assert RateLimitInfo.from_headers({"content-type": "application/json"}) is None


def test_a_budget_stops_new_calls_before_the_cap_and_keeps_what_was_paid(tmp_path):
    # The scripted server counts whitespace words as tokens; a dollar a token makes costs easy to read.
    # A call reserves its worst case (1 prompt token + max_tokens 20) and costs about 17.
    price = Price(prompt=1.0, completion=1.0)
    budget = Budget(max_usd=200.0)
    with ScriptedServer() as server:
        engine = engine_for(server.url, tmp_path, price=price, budget=budget)
        answered = []
        with pytest.raises(BudgetExceeded, match=r"max_cost_usd=200.*raise max_cost_usd and run again"):
            for payload, samples in engine.map(requests(50, max_tokens=20)):
                answered.append((payload, samples))
        engine.close()
        calls = server.stats.by_path["/v1/chat/completions"]
    assert 0 < calls < 50
    assert budget.spent <= 200.0 and engine.stats.cost_usd == pytest.approx(budget.spent)
    # Everything paid for is in the cache: a second engine with a larger budget pays only for the rest.
    with ScriptedServer() as server:
        engine2 = engine_for(server.url, tmp_path, price=price, budget=Budget(max_usd=10_000.0))
        results = list(engine2.map(requests(50, max_tokens=20)))
        engine2.close()
        assert server.stats.by_path["/v1/chat/completions"] == 50 - calls
    assert engine2.stats.cache_hits == calls and len(results) == 50


def test_several_endpoints_share_the_load(tmp_path):
    with ScriptedServer(latency=0.05) as first, ScriptedServer(latency=0.05) as second:
        engine = engine_for([first.url, second.url], tmp_path)
        results = list(engine.map(requests(40)))
        engine.close()
        counts = (first.stats.requests, second.stats.requests)
    assert len(results) == 40 and sum(counts) == 40
    assert min(counts) >= 15, counts


def test_an_endpoint_that_is_down_is_passed_over(tmp_path):
    with ScriptedServer() as up:
        down = ScriptedServer().start()
        down_url = down.url
        down.stop()  # nothing listens on its port any more
        engine = engine_for([down_url, up.url], tmp_path)
        results = list(engine.map(requests(20)))
        engine.close()
        assert up.stats.requests == 20
    assert all(not samples[0].error for _, samples in results)
    # Only the first wave (16 in flight, half of them sent to each endpoint) tried the dead one.
    assert engine.stats.retries <= 8
