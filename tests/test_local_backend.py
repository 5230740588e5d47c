"""Specifications of the transformers backend, run on the real embedded model (SmolLM2-135M-Instruct).

The model is converted once a session (conftest's shared models folder) and loaded by each test (< 1 s).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from synthdistill.config import TeacherConfig
from synthdistill.models import checkpoint_hash, model_hash
from synthdistill.teachers.base import Request, Response
from synthdistill.teachers.local import TransformersBackend

COUNT = [{"role": "user", "content": "Count from 1 to 20, one number per line."}]
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def test_concurrent_requests_are_gathered_into_few_generate_calls() -> None:
    backend = TransformersBackend(TeacherConfig(batch_size=8))
    requests = [
        Request(messages=[{"role": "user", "content": f"What is {i} + {i}?"}], n=2, max_tokens=6)
        for i in range(6)
    ]

    responses = _run(backend, *requests)

    assert [len(response.completions) for response in responses] == [2] * 6
    assert all(response.prompt_tokens > 10 for response in responses)
    assert backend.stats["rows"] == 12
    # 12 rows at 8 a batch: two generate calls, not one a row.
    assert backend.stats["generate_calls"] == 2


def test_a_prompt_prefix_shared_by_a_batch_is_computed_once_without_changing_greedy_output() -> None:
    instruction = {"role": "system", "content": "Answer with one short sentence. Be precise and friendly."}
    requests = [
        Request(messages=[instruction, {"role": "user", "content": question}], max_tokens=12)
        for question in ("What is 2 + 2?", "Name a colour.", "What is the capital of France?")
    ]
    sharing = TransformersBackend(TeacherConfig())
    separate = TransformersBackend(TeacherConfig(options={"share_prefix": False}))

    shared_responses = _run(sharing, *requests)
    separate_responses = _run(separate, *requests)

    assert sharing.stats["prefill_tokens_saved"] > 2 * 16
    assert separate.stats["prefill_tokens_saved"] == 0
    assert sharing.stats["generate_calls"] == separate.stats["generate_calls"] == 1
    assert shared_responses == separate_responses


def test_rows_that_end_leave_the_batch_between_segments_without_changing_greedy_output() -> None:
    short = Request(messages=[{"role": "user", "content": "Say hello in one word."}], max_tokens=48)
    long = Request(messages=COUNT, max_tokens=48)
    segmented = TransformersBackend(TeacherConfig(options={"segment_tokens": 4}))
    whole = TransformersBackend(TeacherConfig(options={"segment_tokens": 0}))

    segmented_responses = _run(segmented, short, long)
    whole_responses = _run(whole, short, long)

    lengths = [response.completions[0].completion_tokens for response in whole_responses]
    assert lengths[0] <= 36 and lengths[1] == 48  # the short row ends well before the long one
    assert segmented_responses == whole_responses
    assert segmented.stats["generate_calls"] == whole.stats["generate_calls"] == 1
    # One call computes both rows for all 48 steps; segments stop the short row within 4 steps of its end.
    assert whole.stats["token_slots"] == 2 * 48
    assert segmented.stats["token_slots"] <= 48 + lengths[0] + 4


def test_requests_with_other_sampling_parameters_go_to_separate_calls() -> None:
    backend = TransformersBackend(TeacherConfig())
    short, longer = Request(messages=COUNT, max_tokens=3), Request(messages=COUNT, max_tokens=5)

    first, second = _run(backend, short, longer)

    assert first.completions[0].completion_tokens == 3
    assert second.completions[0].completion_tokens == 5
    assert backend.stats["generate_calls"] == 2


def test_greedy_generation_is_deterministic() -> None:
    backend = TransformersBackend(TeacherConfig())
    request = Request(messages=COUNT, max_tokens=12)

    (first,) = _run(backend, request)
    (again,) = _run(backend, request)

    assert first.completions[0].text
    assert first == again


def test_stop_strings_cut_the_text_before_them() -> None:
    backend = TransformersBackend(TeacherConfig())

    (free,) = _run(backend, Request(messages=COUNT, max_tokens=40))
    (stopped,) = _run(backend, Request(messages=COUNT, max_tokens=40, stop=["5"]))

    assert "5" in free.completions[0].text
    completion = stopped.completions[0]
    assert free.completions[0].text.startswith(completion.text)
    assert "5" not in completion.text
    assert "4" in completion.text
    assert completion.finish_reason == "stop"
    assert completion.completion_tokens < 40


def test_max_tokens_ends_a_completion_with_finish_reason_length() -> None:
    backend = TransformersBackend(TeacherConfig())

    (response,) = _run(backend, Request(messages=STORY, max_tokens=4))

    completion = response.completions[0]
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 4
    assert completion.text.strip()


def test_a_completion_that_reaches_eos_ends_with_finish_reason_stop() -> None:
    backend = TransformersBackend(TeacherConfig())
    request = Request(messages=[{"role": "user", "content": "Say just the word yes."}], max_tokens=40)

    (response,) = _run(backend, request)

    completion = response.completions[0]
    assert completion.finish_reason == "stop"
    assert 0 < completion.completion_tokens < 40
    assert "<|im_end|>" not in completion.text


def test_sampling_draws_n_samples_in_one_call() -> None:
    backend = TransformersBackend(TeacherConfig())

    (response,) = _run(backend, Request(messages=STORY, n=4, temperature=1.0, top_p=0.95, max_tokens=8))

    assert len(response.completions) == 4
    assert backend.stats["generate_calls"] == 1
    assert all(completion.completion_tokens == 8 for completion in response.completions)


def test_the_same_seed_draws_the_same_samples_and_another_seed_others() -> None:
    def draw(seed: int) -> list[str]:
        request = Request(messages=STORY, n=4, temperature=1.0, top_p=0.95, max_tokens=12, seed=seed)
        (response,) = _run(TransformersBackend(TeacherConfig()), request)
        return [completion.text for completion in response.completions]

    first = draw(seed=7)
    assert draw(seed=7) == first
    assert draw(seed=8) != first


def test_identity_names_the_model_and_its_weights_hash() -> None:
    backend = TransformersBackend(TeacherConfig())

    assert backend.identity() == f"smollm2-135m@{model_hash('smollm2-135m')}"


def test_an_adapters_identity_changes_with_its_weights(tmp_path: Path) -> None:
    from model_helpers import make_adapter

    adapter = make_adapter(tmp_path / "student", seed=0)
    first = TransformersBackend(TeacherConfig(model=str(adapter))).identity()
    assert first == f"{adapter}@{checkpoint_hash(adapter)}"
    make_adapter(adapter, seed=1)  # retrained in place: never answered from its old self
    assert TransformersBackend(TeacherConfig(model=str(adapter))).identity() != first


def test_generate_options_pass_through_to_generate() -> None:
    backend = TransformersBackend(TeacherConfig(options={"min_new_tokens": 10}))
    request = Request(messages=[{"role": "user", "content": "Say just the word yes."}], max_tokens=10)

    (response,) = _run(backend, request)

    assert response.completions[0].completion_tokens == 10


def test_min_new_tokens_holds_across_segments_and_ends_with_them() -> None:
    # 22 tokens at least, in segments of 8: the third segment still suppresses EOS for 6 steps.
    backend = TransformersBackend(TeacherConfig(options={"min_new_tokens": 22, "segment_tokens": 8}))
    request = Request(messages=[{"role": "user", "content": "Say just the word yes."}], max_tokens=60)

    (response,) = _run(backend, request)

    assert 22 <= response.completions[0].completion_tokens < 60


def test_a_closed_backend_loads_its_model_again_when_asked() -> None:
    backend = TransformersBackend(TeacherConfig())
    request = Request(messages=COUNT, max_tokens=3)

    async def use_close_use() -> list[Response]:
        first = await backend.complete(request)
        await backend.aclose()
        assert backend.stats["generate_calls"] == 1
        return [first, await backend.complete(request)]

    first, second = asyncio.run(use_close_use())

    assert first == second
    assert backend.stats["generate_calls"] == 2


def _run(backend: TransformersBackend, *requests: Request) -> list[Response]:
    """Submit the requests concurrently in a fresh event loop, as the engine would."""

    async def submit() -> Any:
        return await asyncio.gather(*(backend.complete(request) for request in requests))

    return list(asyncio.run(submit()))
