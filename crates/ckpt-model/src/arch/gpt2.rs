//! `GPT2LMHeadModel` (GGUF arch "gpt2"): fused QKV, HF `Conv1D` weights transposed, learned
//! position embeddings, LayerNorm with biases.

use ckpt_core::{Error, Result};

use super::{
    map_or_err, Architecture, Kind, ParamContext, TensorAction, TensorRef, Transform, VocabContext,
};
use crate::hparams::Hparams;
use crate::vocab;

pub struct Gpt2;

const GPT2_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::PosEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnQkv,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnDown,
    Kind::FfnUp,
];

impl Architecture for Gpt2 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["GPT2LMHeadModel"]
    }
    fn gguf_arch(&self) -> &'static str {
        "gpt2"
    }
    fn model_type(&self) -> &'static str {
        "gpt2"
    }
    fn tensors(&self) -> &'static [Kind] {
        GPT2_TENSORS
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["transformer.", "lm_head"]
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        // The causal-mask buffers older checkpoints saved are not weights.
        if t.name.ends_with(".attn.bias") || t.name.ends_with(".attn.masked_bias") {
            return Ok(TensorAction::Drop);
        }
        let name = map_or_err(self, t, block_count)?;
        let conv1d = [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"]
            .iter()
            .any(|s| t.name.ends_with(s));
        let transforms = if conv1d {
            vec![Transform::Transpose]
        } else {
            Vec::new()
        };
        Ok(TensorAction::Keep { name, transforms })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        let hp = ctx.hp;
        let n_embd = hp.require_u32(&["n_embd"])?;
        let ff = n_embd
            .checked_mul(4)
            .ok_or_else(|| Error::invalid(&hp.path, "n_embd is too large"))?;
        let eps = hp
            .find_f64(&["layer_norm_epsilon"])?
            .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter layer_norm_epsilon"))?;
        let kv = &mut *ctx.kv;
        kv.u32("gpt2.block_count", ctx.block_count);
        kv.u32("gpt2.context_length", hp.require_u32(&["n_ctx"])?);
        kv.u32("gpt2.embedding_length", n_embd);
        kv.u32("gpt2.feed_forward_length", ff);
        kv.u32("gpt2.attention.head_count", hp.require_u32(&["n_head"])?);
        kv.f32("gpt2.attention.layer_norm_epsilon", eps as f32);
        kv.u32("general.file_type", ctx.file_type);
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        if !ctx.dir.join("tokenizer.json").is_file() {
            return Err(Error::Unsupported(format!(
                "{}: GPT-2 vocabularies are read from tokenizer.json (vocab.json + merges.txt alone are not supported)",
                ctx.dir.display()
            )));
        }
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)
    }
}
