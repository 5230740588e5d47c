"""The scripted OpenAI-compatible server: what it answers, what it counts, and how it misbehaves."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from synthdistill.testing import ScriptedServer, default_responder

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12 times 7?"}]


def test_chat_completion_is_openai_shaped_with_word_token_counts() -> None:
    with ScriptedServer(responder=lambda messages, params, index: "It is 84. The answer is 84.") as server:
        status, _, body = _post(server.url, {"model": "teacher", "messages": MESSAGES})
    assert status == 200
    payload = json.loads(body)
    assert payload["object"] == "chat.completion"
    assert payload["model"] == "teacher"
    (choice,) = payload["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": "It is 84. The answer is 84."}
    assert choice["finish_reason"] == "stop"
    # Whitespace-split words: "Be brief." is 2 and "What is 12 times 7?" is 5.
    assert payload["usage"] == {"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14}


def test_n_samples_call_the_responder_once_per_sample_index_with_the_params() -> None:
    calls: list[tuple[Any, ...]] = []

    def responder(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        calls.append((messages, params, index))
        return f"sample {index}"

    with ScriptedServer(responder=responder) as server:
        _, _, body = _post(
            server.url, {"model": "m", "messages": MESSAGES, "n": 3, "temperature": 0.8, "seed": 5}
        )
    payload = json.loads(body)
    assert [c["message"]["content"] for c in payload["choices"]] == ["sample 0", "sample 1", "sample 2"]
    assert payload["usage"]["completion_tokens"] == 6
    assert [index for _, _, index in calls] == [0, 1, 2]
    assert calls[0][0] == MESSAGES
    assert calls[0][1] == {"model": "m", "n": 3, "temperature": 0.8, "seed": 5}


def test_stop_cuts_before_the_stop_string_and_max_tokens_cuts_with_finish_reason_length() -> None:
    with ScriptedServer(responder=lambda m, p, i: "one two three\nfour five six") as server:
        _, _, stopped = _post(server.url, {"model": "m", "messages": MESSAGES, "stop": ["\n"]})
        _, _, capped = _post(server.url, {"model": "m", "messages": MESSAGES, "max_tokens": 4})
    stopped_choice = json.loads(stopped)["choices"][0]
    assert (stopped_choice["message"]["content"], stopped_choice["finish_reason"]) == (
        "one two three",
        "stop",
    )
    capped_payload = json.loads(capped)
    capped_choice = capped_payload["choices"][0]
    assert (capped_choice["message"]["content"], capped_choice["finish_reason"]) == (
        "one two three four",
        "length",
    )
    assert capped_payload["usage"]["completion_tokens"] == 4


def test_an_async_responder_is_awaited() -> None:
    async def responder(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        await asyncio.sleep(0.01)
        return "awaited"

    with ScriptedServer(responder=responder) as server:
        _, _, body = _post(server.url, {"model": "m", "messages": MESSAGES})
    assert json.loads(body)["choices"][0]["message"]["content"] == "awaited"


def test_a_responder_that_raises_gives_a_500_naming_the_exception() -> None:
    def responder(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        raise ValueError("no answer for this one")

    with ScriptedServer(responder=responder) as server:
        status, _, body = _post(server.url, {"model": "m", "messages": MESSAGES})
    assert status == 500
    assert "ValueError: no answer for this one" in json.loads(body)["error"]["message"]


def test_default_responder_ends_with_an_answer_stable_per_prompt_and_sample() -> None:
    first = default_responder(MESSAGES, {}, 0)
    assert first == default_responder(MESSAGES, {}, 0)
    assert first.endswith(".") and "The answer is " in first
    answers = {default_responder(MESSAGES, {}, index).rsplit(" ", 1)[1] for index in range(10)}
    assert len(answers) > 1


def test_models_lists_the_configured_model() -> None:
    with ScriptedServer(model="tiny-teacher") as server:
        with urllib.request.urlopen(f"{server.url}/models", timeout=5) as response:
            payload = json.loads(response.read())
        assert server.stats.by_path == {"/v1/models": 1}
    assert payload["data"][0]["id"] == "tiny-teacher"


def test_a_bad_body_is_a_400() -> None:
    with ScriptedServer() as server:
        status, _, body = _post(server.url, {"model": "m", "messages": []})
    assert status == 400
    assert "messages" in json.loads(body)["error"]["message"]


def test_peak_in_flight_counts_concurrent_requests_exactly() -> None:
    async def burst(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(_apost(session, url) for _ in range(32)))

    with ScriptedServer(latency=0.3) as server:
        started = time.monotonic()
        asyncio.run(burst(server.url))
        elapsed = time.monotonic() - started
        stats = server.stats
    assert stats.peak_in_flight == 32
    assert stats.in_flight == 0
    assert stats.requests == 32
    assert stats.by_path == {"/v1/chat/completions": 32}
    # Served side by side, not one after another.
    assert elapsed < 0.3 * 8


def test_faults_follow_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with ScriptedServer(rate_500=0.5, seed=seed) as server:
            return [_post(server.url, {"model": "m", "messages": MESSAGES})[0] for _ in range(20)]

    first = statuses(3)
    assert first == statuses(3)
    assert set(first) == {200, 500}


def test_a_429_carries_retry_after_and_is_counted() -> None:
    with ScriptedServer(rate_429=1.0, retry_after_s=2.5) as server:
        status, headers, body = _post(server.url, {"model": "m", "messages": MESSAGES})
        assert server.stats.faults["429"] == 1
    assert status == 429
    assert headers["Retry-After"] == "2.5"
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"


def test_a_malformed_answer_is_a_200_with_broken_json() -> None:
    with ScriptedServer(rate_malformed=1.0) as server:
        status, headers, body = _post(server.url, {"model": "m", "messages": MESSAGES})
        assert server.stats.faults["malformed"] == 1
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_a_truncated_answer_keeps_half_the_words_with_finish_reason_length() -> None:
    with ScriptedServer(rate_truncated=1.0, responder=lambda m, p, i: "a b c d e f") as server:
        _, _, body = _post(server.url, {"model": "m", "messages": MESSAGES})
        assert server.stats.faults["truncated"] == 1
    payload = json.loads(body)
    assert payload["choices"][0]["message"]["content"] == "a b c"
    assert payload["choices"][0]["finish_reason"] == "length"
    assert payload["usage"]["completion_tokens"] == 3


def test_a_hang_answers_only_after_hang_s() -> None:
    with ScriptedServer(rate_hang=1.0, hang_s=0.5) as server:
        started = time.monotonic()
        status, _, _ = _post(server.url, {"model": "m", "messages": MESSAGES})
        assert time.monotonic() - started >= 0.5
        assert server.stats.faults["hang"] == 1
    assert status == 200


def test_stopping_wakes_hanging_requests() -> None:
    server = ScriptedServer(rate_hang=1.0, hang_s=60).start()
    client = threading.Thread(target=_post, args=(server.url, {"model": "m", "messages": MESSAGES}))
    client.start()
    while server.stats.in_flight == 0:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    client.join(timeout=10)
    assert time.monotonic() - started < 5
    assert not client.is_alive()


def test_required_key_turns_away_requests_without_it() -> None:
    with ScriptedServer(required_key="sk-right") as server:
        wrong, _, body = _post(server.url, {"model": "m", "messages": MESSAGES}, key="sk-wrong")
        right, _, _ = _post(server.url, {"model": "m", "messages": MESSAGES}, key="sk-right")
        missing, _, _ = _post(server.url, {"model": "m", "messages": MESSAGES})
        assert server.stats.faults["401"] == 2
    assert (wrong, right, missing) == (401, 200, 401)
    assert b"sk-wrong" not in body


def test_settings_change_while_it_runs() -> None:
    with ScriptedServer() as server:
        assert _post(server.url, {"model": "m", "messages": MESSAGES})[0] == 200
        server.rate_500 = 1.0
        assert _post(server.url, {"model": "m", "messages": MESSAGES})[0] == 500
        server.rate_500 = 0.0
        server.responder = lambda m, p, i: "changed"
        _, _, body = _post(server.url, {"model": "m", "messages": MESSAGES})
    assert json.loads(body)["choices"][0]["message"]["content"] == "changed"


def test_recorded_bodies_are_bounded_and_reset_stats_clears_them() -> None:
    with ScriptedServer(record_bodies=2) as server:
        for index in range(3):
            _post(server.url, {"model": f"m{index}", "messages": MESSAGES})
        assert [body["model"] for body in server.stats.bodies] == ["m1", "m2"]
        server.reset_stats()
        stats = server.stats
    assert (stats.requests, stats.peak_in_flight, stats.bodies, stats.by_path) == (0, 0, [], {})
    assert set(stats.faults.values()) == {0}


def test_fault_rates_over_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"sum to 1\.2"):
        ScriptedServer(rate_429=0.6, rate_500=0.6)


def test_runs_as_a_module_and_prints_its_url() -> None:
    command = [sys.executable, "-m", "synthdistill.testing.scripted_server", "--port", "0", "--latency", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        status, _, body = _post(url, {"model": "m", "messages": MESSAGES})
        assert status == 200
        assert "The answer is" in json.loads(body)["choices"][0]["message"]["content"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "Warning" not in stderr


def _post(url: str, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"{url}/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def _apost(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(f"{url}/chat/completions", json={"model": "m", "messages": MESSAGES}) as response:
        assert response.status == 200
        await response.read()
