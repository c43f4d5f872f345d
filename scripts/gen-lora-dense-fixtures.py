#!/usr/bin/env python3
"""Writes tests/fixtures/lora/dense/: PEFT LoRA adapters on module names of the newer dense
families, and the merged models PEFT's `merge_and_unload()` makes of them.

usage: gen-lora-dense-fixtures.py   (python with torch, transformers, peft, safetensors)

Cases (float32 throughout, tiny random models saved by transformers):
  g_lfm2_conv_proj   LFM2 (a short-conv layer and an attention layer): the conv block's in_proj and
                     out_proj, the attention projections (out_proj there too) and the
                     feed_forward w1/w2/w3.
  h_glm4_gate_up     GLM-4: the fused MLP gate_up_proj and down_proj, q_proj and o_proj.
Layout as tests/fixtures/lora/README.md describes (base-<model>/, <case>/adapter/,
<case>/expected-merged/); adapter tensors get random non-zero values as there: lora_A uniform in
+-1/sqrt(fan_in), lora_B N(0, 0.05^2), from a generator seeded per case.
"""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "lora" / "dense"
TINY = dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=64, pad_token_id=None, bos_token_id=None, eos_token_id=None)


def bases():
    import transformers as tf

    return {
        "lfm2": tf.Lfm2Config(layer_types=["conv", "full_attention"], block_auto_adjust_ff_dim=False, **TINY),
        "glm4": tf.Glm4Config(head_dim=8, **TINY),
    }


CASES = {
    "g_lfm2_conv_proj": ("lfm2", ["in_proj", "out_proj", "q_proj", "k_proj", "v_proj", "w1", "w2", "w3"]),
    "h_glm4_gate_up": ("glm4", ["gate_up_proj", "down_proj", "q_proj", "o_proj"]),
}


def main() -> int:
    import torch
    import transformers as tf
    from peft import LoraConfig, PeftModel, get_peft_model

    tf.utils.logging.set_verbosity_error()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cfgs = bases()
    for name, cfg in cfgs.items():
        torch.manual_seed(17)
        model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.save_pretrained(OUT / f"base-{name}")
        (OUT / f"base-{name}" / "generation_config.json").unlink(missing_ok=True)
    for seed, (case, (base, targets)) in enumerate(CASES.items()):
        d = OUT / case
        base_dir = OUT / f"base-{base}"
        model = tf.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
        g = torch.Generator().manual_seed(1000 + seed)
        with torch.no_grad():
            for pname, p in sorted(peft_model.named_parameters()):
                if "lora_A" in pname:
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / p.shape[1] ** 0.5)
                elif "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        peft_model.save_pretrained(d / "adapter")
        (d / "adapter" / "README.md").unlink(missing_ok=True)
        acfg = json.loads((d / "adapter" / "adapter_config.json").read_text())
        acfg["base_model_name_or_path"] = f"../../base-{base}"
        (d / "adapter" / "adapter_config.json").write_text(json.dumps(acfg, indent=2, sort_keys=True) + "\n")
        fresh = tf.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        merged = PeftModel.from_pretrained(fresh, str(d / "adapter")).merge_and_unload()
        merged.save_pretrained(d / "expected-merged")
        (d / "expected-merged" / "generation_config.json").unlink(missing_ok=True)
        from safetensors.torch import load_file

        before = load_file(str(base_dir / "model.safetensors"))
        after = load_file(str(d / "expected-merged" / "model.safetensors"))
        changed = sorted(k for k in after if not torch.equal(before[k], after[k]))
        assert changed, f"{case}: PEFT changed nothing"
        print(f"{case}: {len(changed)} tensors changed: {', '.join(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
