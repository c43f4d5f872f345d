#!/usr/bin/env python3
"""Writes tests/fixtures/vision/ (see its README.md): a tiny Gemma 3 vision-language folder and
what the pinned convert_hf_to_gguf.py writes for it.

usage: gen-vision-fixtures.py LLAMA_CPP_SRC   (python with torch, transformers 5, safetensors)

tiny-gemma3-vision/: Gemma3ForConditionalGeneration (1 text layer of width 32, a SigLIP tower of
1 layer, image 14 / patch 7, one token per image) in the layout of the released checkpoints
(`language_model.model.*`, `vision_tower.vision_model.*`, `multi_modal_projector.*`), the
SentencePiece tokenizer of tests/fixtures/gguf/tiny-llama-spm and a preprocessor_config.json.
tiny-gemma3-vision.q8_0.gguf: `convert_hf_to_gguf.py --outtype q8_0` (the text model);
mmproj-tiny-gemma3-vision.f16.gguf: `convert_hf_to_gguf.py --mmproj --outtype f16`.

Likewise (SMALL below) tiny-qwen2.5-vl/ (Qwen2.5-VL: Conv3D patch embedding, fused QKV, window
attention), tiny-qwen3-vl/ (Qwen3-VL: DeepStack mergers, projector in bf16) and tiny-smolvlm/
(SmolVLM: VLlama3ForCausalLM text, idefics3 projector), each with the 512-token SentencePiece
tokenizer, a 16-wide vision tower and 4-pixel patches: NAME.q8_0.gguf and mmproj-NAME.TYPE.gguf.

The builder `build_vision(arch, dst, small)` is shared with scripts/interop/arch_matrix.py, which
converts bigger models of every vision architecture with and without --mmproj.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "vision"
SPM_DIR = ROOT / "tests" / "fixtures" / "gguf" / "tiny-llama-spm"
BPE_DIR = ROOT / "tests" / "fixtures" / "gguf" / "tiny-smol-bpe"
SEED = 0
# The BPE tokenizer's files copied into a model folder.
BPE_FILES = ["tokenizer.json", "tokenizer_config.json"]

# Vision architectures the builder knows.
VISION_ARCHS = [
    "Gemma3ForConditionalGeneration", "LlavaForConditionalGeneration", "Mistral3ForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration", "SmolVLMForConditionalGeneration",
    "Idefics3ForConditionalGeneration", "Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration",
    "Llama4ForConditionalGeneration", "Llama4ForCausalLM",
]


def _perturb_and_save(model, dst: Path) -> None:
    import torch

    torch.manual_seed(SEED)
    with torch.no_grad():
        g = torch.Generator().manual_seed(SEED + 1)
        for p in model.parameters():
            p.add_((torch.randn(p.shape, generator=g) * 0.05).to(p.dtype))
    model.save_pretrained(str(dst), safe_serialization=True)


def _relayout(path: Path, which, f) -> None:
    """Rewrites the tensors `which(name)` selects as `f(tensor)`, contiguous."""
    from safetensors.torch import load_file, save_file

    sd = load_file(str(path))
    save_file({k: f(v).contiguous() if which(k) else v for k, v in sd.items()}, str(path), metadata={"format": "pt"})


def _rename_tensors(path: Path, rename) -> None:
    from safetensors.torch import load_file, save_file

    sd = load_file(str(path))
    save_file({rename(k): v for k, v in sd.items()}, str(path), metadata={"format": "pt"})


def _tokenizer(small: bool) -> tuple[Path, list[str], int]:
    """The tokenizer folder, its files and vocabulary size: the SentencePiece one (512 tokens)
    for the committed fixtures, SmolLM's BPE otherwise."""
    d, files = (SPM_DIR, ["tokenizer.model", "tokenizer_config.json"]) if small else (BPE_DIR, BPE_FILES)
    return d, files, json.loads((d / "config.json").read_text())["vocab_size"]


def build_vision(arch: str, dst: Path, small: bool = False, dtype: str = "bfloat16") -> None:
    """Writes a tiny random `arch` folder into dst (small: the committed fixture's sizes)."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()
    dst.mkdir(parents=True)
    torch_dtype = getattr(torch, dtype)
    if arch == "Gemma3ForConditionalGeneration":
        vocab = json.loads((SPM_DIR / "config.json").read_text())["vocab_size"]
        if small:
            text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16, intermediate_size=64)
            vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=14, patch_size=7)
        else:
            text = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128)
            vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=14)
        tcfg = tf.Gemma3TextConfig(vocab_size=vocab, max_position_embeddings=256, sliding_window=64, **text)
        # Gemma 3's released vision towers have no pooling head.
        vcfg = tf.SiglipVisionConfig(vision_use_head=False, **vis)
        cfg = tf.Gemma3Config(text_config=tcfg.to_dict(), vision_config=vcfg.to_dict(), mm_tokens_per_image=1)
        cfg.architectures = [arch]
        model = tf.Gemma3ForConditionalGeneration(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        # transformers 5 saves the SigLIP tower without its inner module; the released
        # checkpoints (google/gemma-3-*-it) name it vision_tower.vision_model.*.
        _rename_tensors(
            dst / "model.safetensors",
            lambda k: "vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.") else k,
        )
        for n in ["tokenizer.model", "tokenizer_config.json"]:
            shutil.copyfile(SPM_DIR / n, dst / n)
        # What Gemma3ImageProcessor writes (it needs PIL/torchvision, so written by hand here).
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": None, "do_rescale": True, "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 1,
            "image_std": [0.5, 0.5, 0.5], "processor_class": "Gemma3Processor", "resample": 2,
            "rescale_factor": 0.00392156862745098, "size": {"height": vis["image_size"], "width": vis["image_size"]},
        }, indent=2) + "\n")
    elif arch in ("LlavaForConditionalGeneration", "Mistral3ForConditionalGeneration"):
        # Pixtral 12B's layout: a Mistral text model, a Pixtral vision tower (3 blocks: the
        # converter maps multi_modal_projector.linear_{1,2} only for block ids below the
        # tower's block count), the SmolLM BPE tokenizer with an [IMG_BREAK] added token.
        vocab = json.loads((BPE_DIR / "config.json").read_text())["vocab_size"]
        tcfg = tf.MistralConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                intermediate_size=128, max_position_embeddings=256, head_dim=16)
        vcfg = tf.PixtralVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28,
                                      patch_size=14, head_dim=16)
        if arch == "LlavaForConditionalGeneration":
            cfg = tf.LlavaConfig(text_config=tcfg.to_dict(), vision_config=vcfg.to_dict(), image_token_index=10, projector_hidden_act="gelu",
                                 vision_feature_layer=-1)
        else:
            # Mistral Small 3.1: the projector adds an RMS norm and a 2x2 patch merger.
            cfg = tf.Mistral3Config(text_config=tcfg.to_dict(), vision_config=vcfg.to_dict(), image_token_index=10, spatial_merge_size=2,
                                    vision_feature_layer=-1)
        cfg.architectures = [arch]
        model = getattr(tf, arch)(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        for n in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copyfile(BPE_DIR / n, dst / n)
        tok = dst / "tokenizer.json"
        tok.write_text(tok.read_text(encoding="utf-8").replace("<repo_name>", "[IMG_BREAK]"), encoding="utf-8")
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "PixtralImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "patch_size": {"height": 14, "width": 14},
            "size": {"longest_edge": 28},
        }, indent=2) + "\n")
    elif arch in ("Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration"):
        # Multimodal rope sections over head_dim 16; a vision tower of at least 3 blocks (the
        # converter maps the merger's mlp.2 only for block ids below the tower's block count).
        # Qwen2.5-VL: window attention with full attention every 2 blocks, gated SiLU FFN.
        # Qwen2-VL: LayerNorms, quick-GELU fc1/fc2, embed_dim as the width.
        tok_dir, tok_files, vocab = _tokenizer(small)
        width = 16 if small else 64
        # the committed fixture: a narrower tower with 4-pixel patches
        vw, patch = (16, 4) if small else (32, 14)
        text = dict(vocab_size=vocab, hidden_size=width, num_hidden_layers=1 if small else 2, num_attention_heads=width // 16,
                    num_key_value_heads=max(1, width // 32), intermediate_size=2 * width, max_position_embeddings=256,
                    rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1000000.0})
        if arch == "Qwen2_5_VLForConditionalGeneration":
            vis = dict(depth=3 if small else 4, hidden_size=vw, intermediate_size=2 * vw, num_heads=2, out_hidden_size=width, patch_size=patch,
                       spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1] if small else [1, 3])
            cfg = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vis)
        else:
            vis = dict(depth=3, embed_dim=vw, hidden_size=width, mlp_ratio=2, num_heads=2, patch_size=patch, spatial_merge_size=2,
                       temporal_patch_size=2)
            cfg = tf.Qwen2VLConfig(text_config=text, vision_config=vis)
        cfg.architectures = [arch]
        model = getattr(tf, arch)(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        for n in tok_files:
            shutil.copyfile(tok_dir / n, dst / n)
        # What Qwen2VLImageProcessor writes (needs PIL/torchvision, so written by hand here).
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "Qwen2VLImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "max_pixels": 12845056, "merge_size": 2, "min_pixels": 3136,
            "patch_size": patch, "processor_class": "Qwen2_5_VLProcessor" if arch.startswith("Qwen2_5") else "Qwen2VLProcessor",
            "resample": 3, "rescale_factor": 0.00392156862745098, "temporal_patch_size": 2,
        }, indent=2) + "\n")
    elif arch in ("SmolVLMForConditionalGeneration", "Idefics3ForConditionalGeneration"):
        # SmolVLM's layout: a Llama text model whose config names VLlama3ForCausalLM (the class
        # the converter routes the text model to), a SigLIP-style tower, a pixel-shuffle
        # connector (scale 2), the SmolLM BPE tokenizer.
        tok_dir, tok_files, vocab = _tokenizer(small)
        width = 16 if small else 64
        vw, patch, image = (16, 4, 8) if small else (32, 14, 28)
        tcfg = tf.LlamaConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=1 if small else 2, num_attention_heads=width // 16,
                              num_key_value_heads=max(1, width // 32), intermediate_size=2 * width, max_position_embeddings=256)
        text = dict(tcfg.to_dict(), architectures=["VLlama3ForCausalLM"])
        vis = dict(hidden_size=vw, intermediate_size=2 * vw, num_hidden_layers=1 if small else 2, num_attention_heads=2, image_size=image,
                   patch_size=patch)
        if arch == "SmolVLMForConditionalGeneration":
            cfg = tf.SmolVLMConfig(text_config=text, vision_config=tf.SmolVLMVisionConfig(**vis).to_dict(), scale_factor=2, image_token_id=10)
        else:
            cfg = tf.Idefics3Config(text_config=text, vision_config=tf.Idefics3VisionConfig(**vis).to_dict(), scale_factor=2, image_token_id=10)
        cfg.architectures = [arch]
        model = getattr(tf, arch)(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        for n in tok_files:
            shutil.copyfile(tok_dir / n, dst / n)
        # What Idefics3ImageProcessor writes (needs PIL/torchvision, so written by hand here).
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
            "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Idefics3ImageProcessor",
            "image_std": [0.5, 0.5, 0.5], "max_image_size": {"longest_edge": image}, "processor_class": "Idefics3Processor",
            "resample": 1, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2 * image},
        }, indent=2) + "\n")
    elif arch == "Qwen3VLForConditionalGeneration":
        # Qwen3 text (q/k norms, interleaved multimodal rope sections over head_dim 16), a vision
        # tower of 3 blocks with learned position embeddings (16 = 4x4 patches of 16: image 64),
        # DeepStack mergers reading blocks 0 and 1.
        tok_dir, tok_files, vocab = _tokenizer(small)
        width = 16 if small else 64
        vw, patch = (16, 4) if small else (32, 16)
        text = dict(vocab_size=vocab, hidden_size=width, num_hidden_layers=1 if small else 2, num_attention_heads=width // 16,
                    num_key_value_heads=max(1, width // 32), intermediate_size=2 * width, max_position_embeddings=256, head_dim=16,
                    rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 5000000.0,
                                     "mrope_interleaved": True})
        vis = dict(depth=3, hidden_size=vw, intermediate_size=2 * vw, num_heads=2, out_hidden_size=width, patch_size=patch, spatial_merge_size=2,
                   temporal_patch_size=2, num_position_embeddings=16, deepstack_visual_indexes=[0, 1])
        cfg = tf.Qwen3VLConfig(text_config=text, vision_config=vis)
        cfg.architectures = [arch]
        model = tf.Qwen3VLForConditionalGeneration(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        for n in tok_files:
            shutil.copyfile(tok_dir / n, dst / n)
        # What Qwen2VLImageProcessor writes for Qwen3-VL (patch 16, mean/std 0.5).
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Qwen2VLImageProcessorFast", "image_std": [0.5, 0.5, 0.5], "merge_size": 2, "patch_size": patch,
            "processor_class": "Qwen3VLProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
            "size": {"longest_edge": 16777216, "shortest_edge": 65536}, "temporal_patch_size": 2,
        }, indent=2) + "\n")
    elif arch == "Qwen3VLMoeForConditionalGeneration":
        # Qwen3-VL-30B-A3B's shape: Qwen3 MoE text (experts packed in two 3-D tensors per layer),
        # the Qwen3-VL tower. Always the BPE tokenizer (the converter's Qwen3 MoE reads GPT-2 BPE
        # only). transformers 5 keeps the packed experts transposed in memory and saves them so;
        # the released checkpoints hold gate_up_proj [experts, hidden, 2 * ffn] and down_proj
        # [experts, ffn, hidden], which the folder gets (as transformers 5 loads them).
        tok_dir, tok_files, vocab = _tokenizer(False)
        width = 32 if small else 64
        vw, patch = (16, 4) if small else (32, 16)
        text = dict(vocab_size=vocab, hidden_size=width, num_hidden_layers=2, num_attention_heads=width // 16, num_key_value_heads=max(1, width // 32),
                    intermediate_size=2 * width, moe_intermediate_size=width // 2 + 16, num_experts=4, num_experts_per_tok=2, max_position_embeddings=256,
                    head_dim=16, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 5000000.0, "mrope_interleaved": True})
        vis = dict(depth=3, hidden_size=vw, intermediate_size=2 * vw, num_heads=2, out_hidden_size=width, patch_size=patch, spatial_merge_size=2,
                   temporal_patch_size=2, num_position_embeddings=16, deepstack_visual_indexes=[0, 1])
        cfg = tf.Qwen3VLMoeConfig(text_config=text, vision_config=vis)
        cfg.architectures = [arch]
        model = tf.Qwen3VLMoeForConditionalGeneration(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        _relayout(dst / "model.safetensors", lambda k: k.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")), lambda t: t.transpose(1, 2))
        for n in tok_files:
            shutil.copyfile(tok_dir / n, dst / n)
        (dst / "preprocessor_config.json").write_text(json.dumps({
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Qwen2VLImageProcessorFast", "image_std": [0.5, 0.5, 0.5], "merge_size": 2, "patch_size": patch,
            "processor_class": "Qwen3VLProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
            "size": {"longest_edge": 16777216, "shortest_edge": 65536}, "temporal_patch_size": 2,
        }, indent=2) + "\n")
    elif arch in ("Llama4ForConditionalGeneration", "Llama4ForCausalLM"):
        # Llama 4 Scout's shape: dense and MoE layers interleaved (every 2nd one MoE, experts
        # packed in gate_up_proj/down_proj, a shared expert), no rope every 4th layer, chunked
        # attention, llama3 rope scaling (rope_freqs generated); a vision tower of 3 blocks (the
        # converter maps vision_adapter.mlp.fc2 only for block ids below the tower's block count)
        # with a pixel-shuffle adapter. Always the BPE tokenizer (the converter reads GPT-2 BPE).
        tok_dir, tok_files, vocab = _tokenizer(False)
        width = 32 if small else 64
        tcfg = tf.Llama4TextConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=2 if small else 4, num_attention_heads=width // 16,
                                   num_key_value_heads=max(1, width // 32), head_dim=16, intermediate_size=width // 2 + 16,
                                   intermediate_size_mlp=2 * width, num_local_experts=2 if small else 4, num_experts_per_tok=1,
                                   interleave_moe_layer_step=2, max_position_embeddings=256, attention_chunk_size=64,
                                   rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 16.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 1.0, "original_max_position_embeddings": 64})
        if arch == "Llama4ForCausalLM":
            tcfg.architectures = [arch]
            model = tf.Llama4ForCausalLM(tcfg).to(torch_dtype).eval()
        else:
            vw, patch, image = (16, 4, 8) if small else (32, 14, 28)
            vcfg = tf.Llama4VisionConfig(hidden_size=vw, intermediate_size=2 * vw, num_hidden_layers=3, num_attention_heads=2, image_size=image,
                                         patch_size=patch, vision_output_dim=2 * vw, projector_input_dim=2 * vw, projector_output_dim=2 * vw,
                                         pixel_shuffle_ratio=0.5)
            cfg = tf.Llama4Config(text_config=tcfg.to_dict(), vision_config=vcfg.to_dict(), image_token_index=10, boi_token_index=11,
                                  eoi_token_index=12)
            cfg.architectures = [arch]
            model = tf.Llama4ForConditionalGeneration(cfg).to(torch_dtype).eval()
        _perturb_and_save(model, dst)
        for n in tok_files:
            shutil.copyfile(tok_dir / n, dst / n)
        if arch == "Llama4ForConditionalGeneration":
            # What Llama4ImageProcessorFast writes (needs torchvision, so written by hand here).
            (dst / "preprocessor_config.json").write_text(json.dumps({
                "crop_size": None, "data_format": "channels_first", "default_to_square": True, "do_convert_rgb": True,
                "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "Llama4ImageProcessorFast", "image_std": [0.5, 0.5, 0.5], "max_patches": 16,
                "processor_class": "Llama4Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
                "resize_to_max_canvas": False, "size": {"height": image, "width": image},
            }, indent=2) + "\n")
    else:
        raise SystemExit(f"unknown vision architecture {arch}")


def convert(src: Path, model: Path, outtype: str, out: Path, mmproj: bool) -> None:
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    cmd = [sys.executable, str(src / "convert_hf_to_gguf.py"), str(model), "--outtype", outtype, "--outfile", str(out)]
    if mmproj:
        cmd.append("--mmproj")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The committed fixtures besides Gemma 3: (architecture, folder, projector outtype); each text
# model is written with --outtype q8_0.
SMALL = [
    ("Qwen2_5_VLForConditionalGeneration", "tiny-qwen2.5-vl", "f16"),
    ("Qwen3VLForConditionalGeneration", "tiny-qwen3-vl", "bf16"),
    ("SmolVLMForConditionalGeneration", "tiny-smolvlm", "f16"),
]


# Committed as formula cases (tests/fixtures/vision/formula/NAME/): the BPE tokenizer their
# converter classes need makes the folders and text GGUFs megabytes, so only the config, the
# tensor list and what the converter wrote are kept: the sha256 of the q8_0 text GGUF and the
# f16 projector GGUF itself. Element i of the k-th tensor (sorted by name) is
# ((i + 5k) % 13) * 0.125 in bfloat16, which the test (crates/ckpt-cli/tests/it/vision.rs)
# rebuilds; the tokenizer is tests/fixtures/gguf/tiny-smol-bpe's.
FORMULA = [
    ("Llama4ForConditionalGeneration", "tiny-llama4"),
    ("Qwen3VLMoeForConditionalGeneration", "tiny-qwen3-vl-moe"),
]


def write_formula_case(src: Path, arch: str, name: str) -> None:
    import hashlib
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file

    case = OUT / "formula" / name
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / name
        build_vision(arch, model, small=True)
        (model / "generation_config.json").unlink(missing_ok=True)
        path = model / "model.safetensors"
        sd = load_file(str(path))
        out, listing = {}, []
        for k, key in enumerate(sorted(sd)):
            shape = list(sd[key].shape)
            n = sd[key].numel()
            vals = ((torch.arange(n, dtype=torch.int64) + 5 * k) % 13).to(torch.float32) * 0.125
            out[key] = vals.reshape(shape).to(torch.bfloat16)
            listing.append([key, shape])
        save_file(out, str(path), metadata={"format": "pt"})
        convert(src, model, "q8_0", Path(tmp) / "text.gguf", mmproj=False)
        convert(src, model, "f16", case / f"mmproj-{name}.f16.gguf", mmproj=True)
        sha = hashlib.sha256((Path(tmp) / "text.gguf").read_bytes()).hexdigest()
        for f in ("config.json", "preprocessor_config.json"):
            shutil.copyfile(model / f, case / f)
        (case / "hf_tensors.json").write_text(json.dumps(listing) + "\n")
        (case / "expected.json").write_text(json.dumps({"architecture": arch, "text_q8_0_sha256": sha}, indent=2) + "\n")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    src = Path(sys.argv[1]).resolve()
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "tiny-gemma3-vision"
    if model.exists():
        shutil.rmtree(model)
    build_vision("Gemma3ForConditionalGeneration", model, small=True)
    (model / "generation_config.json").unlink(missing_ok=True)
    convert(src, model, "q8_0", OUT / "tiny-gemma3-vision.q8_0.gguf", mmproj=False)
    convert(src, model, "f16", OUT / "mmproj-tiny-gemma3-vision.f16.gguf", mmproj=True)
    for arch, name, mm_type in SMALL:
        model = OUT / name
        if model.exists():
            shutil.rmtree(model)
        build_vision(arch, model, small=True)
        (model / "generation_config.json").unlink(missing_ok=True)
        convert(src, model, "q8_0", OUT / f"{name}.q8_0.gguf", mmproj=False)
        convert(src, model, mm_type, OUT / f"mmproj-{name}.{mm_type}.gguf", mmproj=True)
    for arch, name in FORMULA:
        write_formula_case(src, arch, name)
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(ROOT)} {f.stat().st_size}")


if __name__ == "__main__":
    main()
