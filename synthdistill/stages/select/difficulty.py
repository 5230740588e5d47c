"""Difficulty as the student sees it: its mean token loss on each record's target, on its own prompt.

The prompt is the student's chat prompt (student/prompts.py, the template train uses) and the target what
train teaches it (the rationale, then the answer sentence), so a high loss means a record the student would
learn the most from, or one it finds improbable. The completion is cut from the chat template's rendering of
prompt and reply, as trl's prompt/completion training does, and the loss counts its tokens only.

Batches are padded on the left, so every sequence ends at the same position and only the logits of the last
(longest completion + 1) positions are computed: the vocabulary-sized logits dominate the memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthdistill.models import load_causal_lm, resolve_model
from synthdistill.records import Record
from synthdistill.student.prompts import prompt_messages, target_text
from synthdistill.templates import Templates


def completion_losses(
    records: list[Record],
    model: str | Path,
    templates: Templates,
    template: str,
    *,
    device: str = "auto",
    batch_size: int = 8,
) -> list[float]:
    """The student's mean token loss (nats) on each record's target, in the records' order."""
    import torch

    network, tokenizer = load_causal_lm(resolve_model(str(model)), device)
    pairs = [_tokenized(tokenizer, templates, template, record) for record in records]
    losses = [0.0] * len(records)
    # Similar lengths together, so little of each batch is padding.
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            scored = _batch_losses(network, tokenizer, [pairs[i] for i in batch])
            for i, loss in zip(batch, scored, strict=True):
                losses[i] = loss
    return losses


def _tokenized(
    tokenizer: Any, templates: Templates, template: str, record: Record
) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of a record, as the chat template renders them."""
    messages = prompt_messages(templates, template, record)
    target = target_text(record)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": target}], tokenize=False
    )
    if not whole.startswith(prompt):
        # A chat template that renders the prompt differently once a reply follows: cut before the reply.
        prompt = whole[: whole.rindex(target)]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(whole[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids, completion_ids or [tokenizer.eos_token_id]


def _batch_losses(network: Any, tokenizer: Any, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    import torch
    import torch.nn.functional as F

    sequences = [prompt + completion for prompt, completion in pairs]
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    # Positions count from each sequence's first real token, as if it were not padded.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    lengths = torch.tensor([len(completion) for _, completion in pairs])
    keep = min(int(lengths.max()) + 1, width)
    device = network.device
    logits = network(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        logits_to_keep=keep,
    ).logits.float()
    # The logit at a position predicts the next token: the last `keep` positions predict the last keep - 1.
    targets = ids[:, -keep + 1 :].to(device)
    token_loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
    from_end = torch.arange(keep - 1, 0, -1, device=device)
    counted = (from_end.unsqueeze(0) <= lengths.to(device).unsqueeze(1)).float()
    return ((token_loss * counted).sum(-1) / counted.sum(-1)).tolist()
