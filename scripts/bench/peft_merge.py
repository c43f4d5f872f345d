"""The reference flow ckpt merge-lora replaces: load the base, apply the adapter with PEFT,
merge_and_unload(), save_pretrained().

usage: peft_merge.py BASE ADAPTER OUT
"""
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

base, adapter, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
model.save_pretrained(out)
