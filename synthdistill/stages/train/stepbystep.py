"""Distilling step-by-step (Hsieh et al., 2023): one student trained on two tasks with a weighted loss.

Each record gives two examples, told apart by a cue on the prompt (by default an instruction at its
end): predict the label ("The answer is N.", a choice named as train's `answer_format` says) and
generate the rationale. The loss is `w * L_label + (1 - w) * L_rationale`, each term the mean over its
own task's completion tokens, so a long rationale does not drown the short label. trl's SFTTrainer has
one loss over all completion tokens and no per-task weighting, hence this subclass: a collator hands each
example's task on as a tensor, and `compute_loss` splits the per-token losses of trl's fused LM head by
task.
With `w = 1` the loss is exactly label-only training's.
"""

from __future__ import annotations

from typing import Any

TASK_IDS = {"label": 0, "rationale": 1}
"""The `task` column's values."""


def trainer_class() -> type:
    """The SFTTrainer subclass with the weighted two-task loss (built on call: trl is a heavy import)."""
    from trl import SFTTrainer

    class StepByStepTrainer(SFTTrainer):
        """SFTTrainer weighting the label task's loss by `label_weight`, the rationale task's by the rest."""

        # compute_loss returns a per-micro-batch mean: the Trainer divides it by the accumulation steps.
        loss_is_scaled_for_ga = False  # type: ignore[assignment]

        def __init__(self, *args: Any, label_weight: float, **kwargs: Any) -> None:
            self.label_weight = label_weight
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            # The Trainer drops the columns the model does not take; the task column must reach compute_loss.
            super()._set_signature_columns_if_needed()
            columns: list[str] = list(self._signature_columns or [])
            if "task" not in columns:
                self._signature_columns = [*columns, "task"]  # type: ignore[assignment]

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            task = inputs.pop("task")
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            loss, parts = weighted_task_loss(outputs.log_probs, outputs.label_mask, task, self.label_weight)
            mode = "train" if model.training else "eval"
            for name, value in parts.items():
                self._metrics[mode][name].append(value)
            return (loss, outputs) if return_outputs else loss

    return StepByStepTrainer


def weighted_task_loss(
    log_probs: Any, label_mask: Any, task: Any, label_weight: float
) -> tuple[Any, dict[str, float]]:
    """`label_weight * mean label-token loss + (1 - label_weight) * mean rationale-token loss`.

    `log_probs` and `label_mask` are (batch, tokens) from trl's fused LM head (zero where masked); `task`
    holds each row's task id. A task absent from the batch adds nothing. Returns the loss and both terms.
    """
    per_token = -log_probs
    mask = label_mask.to(per_token.dtype)
    is_label = (task == TASK_IDS["label"]).to(per_token.dtype).to(per_token.device)[:, None]
    label_tokens = mask * is_label
    rationale_tokens = mask * (1 - is_label)
    label_loss = (per_token * label_tokens).sum() / label_tokens.sum().clamp(min=1)
    rationale_loss = (per_token * rationale_tokens).sum() / rationale_tokens.sum().clamp(min=1)
    loss = label_weight * label_loss + (1 - label_weight) * rationale_loss
    return loss, {"label_loss": label_loss.item(), "rationale_loss": rationale_loss.item()}


def task_collator(pad_token_id: int) -> Any:
    """trl's padding collator, plus each example's `task` as a tensor."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    base = DataCollatorForLanguageModeling(pad_token_id=pad_token_id)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = base([{k: v for k, v in example.items() if k != "task"} for example in examples])
        batch["task"] = torch.tensor([example["task"] for example in examples])
        return batch

    return collate
