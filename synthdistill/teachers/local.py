"""The `transformers` backend: a local model whose samples from concurrent requests are batched together.

A CPU or GPU is memory-bound when it generates one sequence: each new token reads every weight once. A
batch of 16 sequences reads them once for 16 tokens, so on a 2-core CPU it gave about 10x the tokens per
second (LAB.md). `complete()` therefore only queues its rows (one a sample); a batcher coroutine takes up to
`batch_size` queued rows that share sampling parameters and runs one `generate` for them in a worker thread,
while the event loop keeps accepting requests for the next batch. Reading the prompts (prefill) is
compute-bound instead, and batching does not make it cheaper: the prompt prefix that the rows of a batch
share (a template's instruction and examples, or the one prompt of n samples) is computed once.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.models import load_causal_lm, model_hash, resolve_model
from synthdistill.records import stable_hash
from synthdistill.teachers.base import Completion, Request, Response

logger = logging.getLogger(__name__)


class TransformersBackend:
    """A local causal LM behind the Backend interface, loaded on the first request.

    `config.options` pass through to `generate` (for example `repetition_penalty`), except four keys:
    `num_threads` sets torch's CPU threads for the whole process (torch's default when absent),
    `model_kwargs` go to `from_pretrained` (for example `{"attn_implementation": "sdpa"}`),
    `segment_tokens` sets how many steps generate runs between chances to drop the rows that ended (16;
    0 runs the whole budget in one call), and `share_prefix: false` turns off computing a batch's common
    prompt prefix once, and segments too (both continue a `DynamicCache`: for a model whose cache cannot
    be continued). The request's `seed` seeds each sampled batch (with its prompts); `json_schema` is not
    honoured: the engine validates output itself.
    """

    name = "transformers"
    local = True
    """Requests queue behind local batches, so the engine sets no wall-clock timeout on them."""

    def __init__(self, config: TeacherConfig, device: str = "auto") -> None:
        self.config = config
        self.device = device
        # Counters for tests and benchmarks: generate calls, rows, generated tokens, decoding steps times
        # the rows they ran for (what the batches computed), prompt tokens whose prefill a shared prefix
        # saved, and seconds spent loading.
        self.stats: dict[str, float] = dict.fromkeys(
            ("generate_calls", "rows", "completion_tokens", "token_slots", "prefill_tokens_saved", "load_s"),
            0,
        )
        options = dict(config.options)
        self._num_threads: int | None = options.pop("num_threads", None)
        self._model_kwargs: dict[str, Any] = options.pop("model_kwargs", None) or {}
        self._share_prefix = bool(options.pop("share_prefix", True))
        self._segment = int(options.pop("segment_tokens", _SEGMENT_TOKENS)) if self._share_prefix else 0
        self._prefix_kwargs: dict[str, Any] = {}
        self._generate_kwargs = options
        self._path: Path | None = None
        self._identity: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos_ids: set[int] = set()
        self._load_lock = threading.Lock()
        self._pending: list[_Row] = []
        self._batcher: asyncio.Task[None] | None = None
        self._arrivals = itertools.count()

    def identity(self) -> str:
        """The model name and its weights' hash, so a retrained model never hits its old cache entries.

        An adapter's hash covers its base; an embedded model's is its GGUF's, known before (and without)
        converting it, so a dry run prices its calls against the cache and writes nothing.
        """
        if self._identity is None:
            self._identity = f"{self.config.model}@{model_hash(self.config.model)}"
        return self._identity

    async def complete(self, request: Request) -> Response:
        """Queue the request's `n` samples for the batcher and wait for them."""
        loop = asyncio.get_running_loop()
        group = (request.temperature, request.top_p, request.max_tokens, tuple(request.stop), request.seed)
        size = sum(len(message.get("content", "")) for message in request.messages)
        rows = [
            _Row(request.messages, group, size, next(self._arrivals), loop.create_future())
            for _ in range(request.n)
        ]
        self._pending.extend(rows)
        if self._batcher is None or self._batcher.done() or self._batcher.get_loop() is not loop:
            # Rows left by an event loop that has gone (asyncio.run per call) can never be answered.
            self._pending = [row for row in self._pending if row.future.get_loop() is loop]
            self._batcher = loop.create_task(self._run_batches())
        results = await asyncio.gather(*(row.future for row in rows))
        return Response(completions=[completion for completion, _ in results], prompt_tokens=results[0][1])

    async def aclose(self) -> None:
        """Fail what is still queued, let the batch in flight finish, and free the model."""
        for row in self._pending:
            if not row.future.done():
                row.future.set_exception(TeacherError("the transformers backend was closed"))
        self._pending.clear()
        batcher, self._batcher = self._batcher, None
        if batcher is not None and not batcher.done() and batcher.get_loop() is asyncio.get_running_loop():
            await batcher
        self._model = self._tokenizer = None
        gc.collect()
        if self.device != "cpu":
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    async def _run_batches(self) -> None:
        """Run batches while rows are queued; the task ends when the queue is empty."""
        while self._pending:
            if len(self._pending) < self.config.batch_size:
                # Requests submitted together arrive over a few loop iterations: wait for them briefly.
                await asyncio.sleep(_GATHER_S)
            batch = self._take_batch()
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._generate, batch)
            except Exception as exc:
                for row in batch:
                    if not row.future.done():
                        row.future.set_exception(exc)
                continue
            for row, result in zip(batch, results, strict=True):
                if not row.future.done():
                    row.future.set_result(result)

    def _take_batch(self) -> list[_Row]:
        """Up to batch_size queued rows with the oldest row's sampling parameters and similar prompt sizes."""
        self._pending = [row for row in self._pending if not row.future.done()]
        if not self._pending:
            return []
        oldest = min(self._pending, key=lambda row: row.arrival)
        group = sorted((row for row in self._pending if row.group == oldest.group), key=lambda row: row.size)
        # The window of similar sizes always holds the oldest row, so no row waits forever.
        start = max(0, min(group.index(oldest), len(group) - self.config.batch_size))
        batch = group[start : start + self.config.batch_size]
        taken = {id(row) for row in batch}
        self._pending = [row for row in self._pending if id(row) not in taken]
        return batch

    def _checkpoint(self) -> Path:
        if self._path is None:
            self._path = resolve_model(self.config.model)
        return self._path

    def _load(self) -> tuple[Any, Any]:
        """Load the model once, in the worker thread (converting an embedded model can take 30 s)."""
        with self._load_lock:
            if self._model is None:
                started = time.perf_counter()
                if self._num_threads is not None:
                    import torch

                    torch.set_num_threads(int(self._num_threads))
                model, tokenizer = load_causal_lm(self._checkpoint(), self.device, **self._model_kwargs)
                if not tokenizer.chat_template:
                    raise TeacherError(
                        f"model {self.config.model!r} has no chat template, so chat messages cannot be "
                        "rendered for it; use an instruct (chat) model"
                    )
                # The shared prefix needs only its KV cache; its logits over the vocabulary would be waste.
                if "logits_to_keep" in inspect.signature(model.forward).parameters:
                    self._prefix_kwargs = {"logits_to_keep": 1}
                eos = model.generation_config.eos_token_id
                self._eos_ids = {*([] if eos is None else [eos] if isinstance(eos, int) else eos)}
                self._eos_ids |= {tokenizer.eos_token_id, tokenizer.pad_token_id}
                self._model, self._tokenizer = model, tokenizer
                self.stats["load_s"] += time.perf_counter() - started
                logger.info(
                    "loaded %s on %s in %.1f s", self.config.model, model.device, self.stats["load_s"]
                )
            return self._model, self._tokenizer

    def _generate(self, rows: list[_Row]) -> list[tuple[Completion, int]]:
        """One `generate` for rows that share sampling parameters; (completion, prompt tokens) per row."""
        import torch

        model, tokenizer = self._load()
        temperature, top_p, max_tokens, stop, seed = rows[0].group
        prompts = [
            tokenizer.apply_chat_template(row.messages, tokenize=False, add_generation_prompt=True)
            for row in rows
        ]
        # The chat template already holds the special tokens the model expects.
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": temperature > 0,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if temperature > 0:
            # top_k=0 turns off transformers' default top-k of 50, which the request did not ask for.
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        kwargs.update(self._generate_kwargs)
        if seed is not None and temperature > 0:
            # The same seed and the same batch of prompts draw the same samples, so a run with a fresh
            # cache repeats itself as long as its batches form alike.
            torch.manual_seed(int(stable_hash(seed, [row.messages for row in rows]), 16))
        with torch.inference_mode():
            inputs = self._batch_inputs(model, tokenizer.pad_token_id, ids)
            new_tokens = self._decode(model, inputs, kwargs, stop, tokenizer)
        results = [
            (self._completion(tokens, stop, tokenizer), len(prompt))
            for tokens, prompt in zip(new_tokens, ids, strict=True)
        ]
        self.stats["generate_calls"] += 1
        self.stats["rows"] += len(rows)
        self.stats["completion_tokens"] += sum(completion.completion_tokens for completion, _ in results)
        return results

    def _decode(
        self,
        model: Any,
        inputs: dict[str, Any],
        kwargs: dict[str, Any],
        stop: tuple[str, ...],
        tokenizer: Any,
    ) -> list[list[int]]:
        """Generate the batch's new tokens in segments, dropping the rows that ended between segments.

        One `generate` over the whole budget pays, at every step, for rows that ended long before the
        longest: on a CPU a step's cost grows with its rows (SmolLM2-135M: 42 ms for 1 row, 109 ms for
        16, 156 ms for 32), so finished rows slow the others (a batch of 32 few-shot answers filled 71% of
        the token slots it computed). Between segments of `segment_tokens` steps, the rows that ended
        leave the batch and its KV cache, and generate goes on from that cache for the rest.
        transformers' continuous batching would also refill the slots, but ran at half the speed of a
        static batch on this CPU (no paged-attention kernel there).
        """
        import torch
        from transformers import DynamicCache

        budget, least = kwargs["max_new_tokens"], int(kwargs.get("min_new_tokens") or 0)
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        # The shared prompt prefix's cache where there is one; generate fills it and goes on from it.
        cache = inputs["cache"] if "cache" in inputs else DynamicCache(config=model.config)
        alive = list(range(ids.shape[0]))
        tokens: list[list[int]] = [[] for _ in alive]
        while alive and budget > 0:
            step = min(self._segment or budget, budget)
            segment = {**kwargs, "max_new_tokens": step}
            if "min_new_tokens" in kwargs:
                segment["min_new_tokens"] = min(least, step)
            output = model.generate(input_ids=ids, attention_mask=mask, cache=cache, **segment)
            new = output[:, ids.shape[1] :]
            self.stats["token_slots"] += new.shape[0] * new.shape[1]
            keep = []
            for position, (row, row_new) in enumerate(zip(alive, new.tolist(), strict=True)):
                tokens[row] += row_new
                ended = any(token in self._eos_ids for token in row_new) or (
                    stop and any(string in tokenizer.decode(tokens[row]) for string in stop)
                )
                if not ended and len(row_new) == step:
                    keep.append(position)
            budget, least = budget - step, max(0, least - step)
            if len(keep) < len(alive):
                alive = [alive[position] for position in keep]
                index = torch.tensor(keep, dtype=torch.long, device=ids.device)
                if keep:
                    cache.batch_select_indices(index)
                output, mask = output[index], mask[index]
            ones = torch.ones((len(keep), new.shape[1]), dtype=mask.dtype, device=mask.device)
            ids, mask = output, torch.cat([mask, ones], dim=1)
        return tokens

    def _batch_inputs(self, model: Any, pad_id: int, ids: list[list[int]]) -> dict[str, Any]:
        """Padded inputs for generate, with the prompt prefix that all rows share already in the KV cache.

        Prefill is compute-bound, so batching does not make it cheaper; but the rows of a batch usually
        come from one template (instruction and few-shot examples first), or are n samples of one prompt.
        Computing their common prefix once cut the prefill of 16 few-shot prompts about 4x. The padding
        then sits between the shared prefix and each row's own tail, hidden by the attention mask (the
        position ids generate derives from the mask stay those of the unpadded prompt).
        """
        import torch

        shared = _common_prefix(ids) if self._share_prefix and len(ids) > 1 else 0
        # Each row keeps one token at least for generate's own prefill, which yields its first logits.
        shared = min(shared, min(len(row) for row in ids) - 1)
        if shared < _MIN_SHARED_PREFIX:
            shared = 0
        width = max(len(row) for row in ids) - shared
        input_ids = [row[:shared] + [pad_id] * (width - len(row) + shared) + row[shared:] for row in ids]
        mask = [[1] * shared + [0] * (width - len(row) + shared) + [1] * (len(row) - shared) for row in ids]
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor(input_ids, device=model.device),
            "attention_mask": torch.tensor(mask, device=model.device),
        }
        if shared:
            from transformers import DynamicCache

            cache = DynamicCache(config=model.config)
            prefix = torch.tensor([ids[0][:shared]], device=model.device)
            model(input_ids=prefix, cache=cache, use_cache=True, **self._prefix_kwargs)
            cache.batch_repeat_interleave(len(ids))
            inputs["cache"] = cache
            self.stats["prefill_tokens_saved"] += shared * (len(ids) - 1)
        return inputs

    def _completion(self, tokens: list[int], stop: tuple[str, ...], tokenizer: Any) -> Completion:
        """Decode one row up to its end (EOS, or padding once it stopped) and cut it at a stop string."""
        end = next((index for index, token in enumerate(tokens) if token in self._eos_ids), None)
        text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
        cuts = [position for position in (text.find(string) for string in stop) if position >= 0]
        if cuts:
            text = text[: min(cuts)]
        finished = end is not None or bool(cuts)
        # The EOS token was generated too, so it counts; padding after it does not.
        used = len(tokens) if end is None else end + (1 if not cuts else 0)
        return Completion(text=text, finish_reason="stop" if finished else "length", completion_tokens=used)


def _common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens all rows share."""
    shortest = min(len(row) for row in rows)
    for index in range(shortest):
        token = rows[0][index]
        if any(row[index] != token for row in rows):
            return index
    return shortest


# A shorter shared prefix saves less than the extra forward call that computes it costs.
_MIN_SHARED_PREFIX = 16
# Steps between chances to drop finished rows: each segment's generate call costs a few milliseconds more.
_SEGMENT_TOKENS = 16
# Long enough for the coroutines submitted in one gather to queue their rows, short beside a generate call.
_GATHER_S = 0.005


@dataclass(eq=False)
class _Row:
    """One sample to generate: the request's messages, its sampling parameters and the future to answer."""

    messages: list[dict[str, str]]
    group: tuple[float, float, int, tuple[str, ...], int | None]
    size: int
    arrival: int
    future: asyncio.Future[tuple[Completion, int]] = field(repr=False)
