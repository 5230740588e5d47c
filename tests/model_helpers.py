"""Helpers for the model tests: a real peft adapter over the embedded SmolLM2, made without training."""

from __future__ import annotations

import json
from pathlib import Path


def make_adapter(folder: Path, *, seed: int = 0, base: str = "smollm2-135m") -> Path:
    """Save a LoRA adapter (r 2 on the attention projections) over `base` in `folder`, as training would.

    Its B matrices are drawn at random instead of peft's zeros, so that it changes what the model says.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from synthdistill.models import load_causal_lm, resolve_model

    model, tokenizer = load_causal_lm(resolve_model(base), "cpu")
    peft_model = get_peft_model(
        model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    # As the train stage does: the base is named as the pipeline names it, not by its converted folder.
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base
    config_path.write_text(json.dumps(config))
    return folder
