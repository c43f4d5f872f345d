"""Writes a synthetic Llama model (~134M parameters, bf16) and a rank-16 PEFT LoRA adapter on every
linear layer, for the merge-lora benchmark.

usage: make_lora_model.py OUT_DIR
"""
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
torch.manual_seed(0)
config = LlamaConfig(
    hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
    num_key_value_heads=12, vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False,
)
model = LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(os.path.join(out, "base"))
peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.normal_(0, 0.02)
peft_model.save_pretrained(os.path.join(out, "adapter"))
n = sum(p.numel() for p in model.parameters())
print(f"{n / 1e6:.1f}M parameters")
