"""The openai backend (and the litellm backend that shares its mapping) against the scripted server."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from typing import Any

import pytest

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.teachers.base import Request, Response, TransientError
from synthdistill.teachers.litellm import LiteLLMBackend
from synthdistill.teachers.openai import OpenAIBackend
from synthdistill.testing import ScriptedServer

MESSAGES = [{"role": "user", "content": "What is 12 times 7?"}]
KEY = "sk-test-0123456789abcdef"


def test_complete_returns_each_sample_with_its_usage() -> None:
    with ScriptedServer(responder=lambda m, p, index: "x " * (index + 1) + "The answer is 84.") as server:
        response = _complete(server, Request(messages=MESSAGES, n=3, temperature=0.8))
    texts = [completion.text for completion in response.completions]
    assert texts == ["x The answer is 84.", "x x The answer is 84.", "x x x The answer is 84."]
    assert [completion.finish_reason for completion in response.completions] == ["stop"] * 3
    # Word counts, as the server counts tokens: 5 + 6 + 7 shared out exactly.
    assert [completion.completion_tokens for completion in response.completions] == [5, 6, 7]
    assert response.prompt_tokens == 5


def test_the_request_parameters_reach_the_server() -> None:
    schema = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "integer"}}}
    request = Request(
        messages=MESSAGES,
        n=2,
        temperature=0.7,
        top_p=0.9,
        max_tokens=64,
        stop=["\n\n"],
        seed=11,
        json_schema=schema,
    )
    with ScriptedServer() as server:
        _complete(server, request, model="big-teacher", options={"user": "synthdistill-test"})
        (body,) = server.stats.bodies
    assert body["model"] == "big-teacher"
    assert body["messages"] == MESSAGES
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (2, 0.7, 0.9, 64)
    assert (body["stop"], body["seed"], body["user"]) == (["\n\n"], 11, "synthdistill-test")
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert body["response_format"]["json_schema"]["schema"] == schema


def test_empty_stop_and_no_seed_are_left_out() -> None:
    with ScriptedServer() as server:
        _complete(server, Request(messages=MESSAGES))
        (body,) = server.stats.bodies
    assert "stop" not in body and "seed" not in body and "response_format" not in body


def test_32_concurrent_requests_are_all_in_flight_at_once() -> None:
    async def burst(server: ScriptedServer) -> None:
        backend = OpenAIBackend(
            TeacherConfig(backend="openai", model="m", api_base=server.url, max_concurrency=64)
        )
        try:
            await asyncio.gather(*(backend.complete(Request(messages=MESSAGES)) for _ in range(32)))
        finally:
            await backend.aclose()

    with ScriptedServer(latency=0.2) as server:
        started = time.monotonic()
        asyncio.run(burst(server))
        elapsed = time.monotonic() - started
        stats = server.stats
    assert stats.requests == 32
    assert stats.peak_in_flight >= 30
    assert elapsed < 0.2 * 8


def test_the_connection_pool_holds_max_concurrency_requests_in_flight() -> None:
    async def burst(server: ScriptedServer) -> None:
        backend = OpenAIBackend(
            TeacherConfig(backend="openai", model="m", api_base=server.url, max_concurrency=4)
        )
        try:
            await asyncio.gather(*(backend.complete(Request(messages=MESSAGES)) for _ in range(12)))
        finally:
            await backend.aclose()

    with ScriptedServer(latency=0.1) as server:
        asyncio.run(burst(server))
        assert server.stats.peak_in_flight == 4


def test_a_429_is_transient_with_retry_after() -> None:
    with ScriptedServer(rate_429=1.0, retry_after_s=3) as server:
        error = _transient(server)
    assert error.retry_after == 3.0
    assert "429" in str(error)


@pytest.mark.parametrize("fault", ["rate_500", "rate_malformed"])
def test_server_errors_and_malformed_bodies_are_transient(fault: str) -> None:
    with ScriptedServer(**{fault: 1.0}) as server:
        error = _transient(server)
        assert sum(server.stats.faults.values()) == 1
    assert error.retry_after is None


def test_a_hang_is_transient_within_the_timeout() -> None:
    with ScriptedServer(rate_hang=1.0, hang_s=30) as server:
        started = time.monotonic()
        error = _transient(server, timeout_s=0.5)
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3
    assert "0.5 s" in str(error)


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = TeacherConfig(backend="openai", model="m", api_base=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(TransientError, match="connection"):
        asyncio.run(_run(config, Request(messages=MESSAGES)))


def test_a_truncated_completion_comes_back_with_finish_reason_length() -> None:
    with ScriptedServer(rate_truncated=1.0, responder=lambda m, p, i: "one two three four") as server:
        response = _complete(server, Request(messages=MESSAGES))
    (completion,) = response.completions
    assert (completion.text, completion.finish_reason, completion.completion_tokens) == (
        "one two",
        "length",
        2,
    )


def test_a_wrong_key_is_a_teacher_error_that_never_shows_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHDISTILL_TEST_KEY", KEY)
    with ScriptedServer(required_key="sk-the-right-one") as server, pytest.raises(TeacherError) as caught:
        _complete(server, Request(messages=MESSAGES), api_key_env="SYNTHDISTILL_TEST_KEY")
    message = str(caught.value)
    assert "401" in message and "SYNTHDISTILL_TEST_KEY" in message
    assert KEY not in message
    # No chained exception could carry the key into a traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_the_right_key_is_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHDISTILL_TEST_KEY", KEY)
    with ScriptedServer(required_key=KEY) as server:
        response = _complete(server, Request(messages=MESSAGES), api_key_env="SYNTHDISTILL_TEST_KEY")
    assert response.completions[0].text


def test_a_key_echoed_by_the_server_is_scrubbed_from_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def responder(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        raise RuntimeError(f"upstream refused key {KEY}")

    monkeypatch.setenv("SYNTHDISTILL_TEST_KEY", KEY)
    with ScriptedServer(responder=responder) as server:
        error = _transient(server, api_key_env="SYNTHDISTILL_TEST_KEY")
    assert "upstream refused key ***" in str(error)
    assert KEY not in str(error)


def test_a_missing_key_variable_is_a_teacher_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHDISTILL_UNSET_KEY", raising=False)
    config = TeacherConfig(backend="openai", model="m", api_key_env="SYNTHDISTILL_UNSET_KEY")
    with pytest.raises(TeacherError, match=r"SYNTHDISTILL_UNSET_KEY.*export SYNTHDISTILL_UNSET_KEY="):
        OpenAIBackend(config)


def test_a_key_in_a_dotenv_file_is_used_without_entering_the_environment(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHDISTILL_DOTENV_KEY", raising=False)
    (tmp_path / ".env").write_text(f"SYNTHDISTILL_DOTENV_KEY={KEY}\n")
    with ScriptedServer(required_key=KEY) as server:
        config = TeacherConfig(
            backend="openai", model="m", api_base=server.url, api_key_env="SYNTHDISTILL_DOTENV_KEY"
        )
        asyncio.run(_run(config, Request(messages=MESSAGES)))
        assert server.stats.faults["401"] == 0
    assert "SYNTHDISTILL_DOTENV_KEY" not in os.environ


def test_a_wrong_path_is_a_teacher_error_with_a_hint() -> None:
    with ScriptedServer() as server:
        config = TeacherConfig(backend="openai", model="m", api_base=server.url.removesuffix("/v1") + "/nope")
        with pytest.raises(TeacherError, match=r"HTTP 404.*api_base"):
            asyncio.run(_run(config, Request(messages=MESSAGES)))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"temperature": 1.0}, "sets temperature"), ({"not_a_parameter": 1}, "has not_a_parameter")],
)
def test_options_that_clash_or_are_unknown_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(TeacherError, match=match):
        OpenAIBackend(
            TeacherConfig(backend="openai", model="m", api_base="http://127.0.0.1:9/v1", options=options)
        )


def test_identity_is_the_model_name() -> None:
    backend = OpenAIBackend(
        TeacherConfig(backend="openai", model="gpt-test", api_base="http://127.0.0.1:9/v1")
    )
    assert (backend.name, backend.identity()) == ("openai", "gpt-test")
    asyncio.run(backend.aclose())


def test_litellm_backend_without_litellm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import litellm` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(TeacherError, match=r"pip install 'synthdistill\[litellm\]'"):
        LiteLLMBackend(TeacherConfig(backend="litellm", model="openai/m"))


def test_litellm_backend_completes_and_maps_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("litellm")
    monkeypatch.setenv("SYNTHDISTILL_TEST_KEY", KEY)

    async def run(config: TeacherConfig, request: Request) -> Response:
        backend = LiteLLMBackend(config)
        try:
            return await backend.complete(request)
        finally:
            await backend.aclose()

    with ScriptedServer(responder=lambda m, p, i: f"sample {i}", required_key=KEY) as server:
        config = TeacherConfig(
            backend="litellm",
            model="openai/scripted",
            api_base=server.url,
            api_key_env="SYNTHDISTILL_TEST_KEY",
        )
        response = asyncio.run(run(config, Request(messages=MESSAGES, n=2, seed=1)))
        assert [completion.text for completion in response.completions] == ["sample 0", "sample 1"]
        assert response.prompt_tokens == 5
        assert server.stats.bodies[-1]["seed"] == 1
        server.rate_429 = 1.0
        with pytest.raises(TransientError) as caught:
            asyncio.run(run(config, Request(messages=MESSAGES)))
        assert "429" in str(caught.value)
        assert caught.value.retry_after == 1.0
        server.rate_429 = 0.0
        server.required_key = "sk-another"
        with pytest.raises(TeacherError) as refused:
            asyncio.run(run(config, Request(messages=MESSAGES)))
        assert "401" in str(refused.value) and KEY not in str(refused.value)
        # A local server without a key: the backend sends a placeholder, as litellm needs one.
        server.required_key = None
        keyless = TeacherConfig(backend="litellm", model="openai/scripted", api_base=server.url)
        assert asyncio.run(run(keyless, Request(messages=MESSAGES))).completions[0].text == "sample 0"


def _complete(
    server: ScriptedServer,
    request: Request,
    *,
    model: str = "m",
    options: dict[str, Any] | None = None,
    api_key_env: str | None = None,
) -> Response:
    config = TeacherConfig(
        backend="openai", model=model, api_base=server.url, api_key_env=api_key_env, options=options or {}
    )
    return asyncio.run(_run(config, request))


def _transient(
    server: ScriptedServer, *, timeout_s: float = 10, api_key_env: str | None = None
) -> TransientError:
    config = TeacherConfig(
        backend="openai", model="m", api_base=server.url, timeout_s=timeout_s, api_key_env=api_key_env
    )
    with pytest.raises(TransientError) as caught:
        asyncio.run(_run(config, Request(messages=MESSAGES)))
    return caught.value


async def _run(config: TeacherConfig, request: Request) -> Response:
    backend = OpenAIBackend(config)
    try:
        return await backend.complete(request)
    finally:
        await backend.aclose()


def test_extra_body_and_extra_query_options_reach_the_server() -> None:
    options = {
        "extra_body": {"top_k": 5},
        "extra_headers": {"X-Trace": "t1"},
        "extra_query": {"api-version": "2"},
    }
    with ScriptedServer() as server:
        _complete(server, Request(messages=MESSAGES), options=options)
        stats = server.stats
    assert stats.bodies[0]["top_k"] == 5 and stats.queries == ["api-version=2"]
