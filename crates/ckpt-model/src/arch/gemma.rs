//! Gemma (GGUF arch "gemma"), Gemma 2 ("gemma2") and Gemma 3 text models ("gemma3"): RMSNorm
//! weights stored as `w - 1` get the 1 back, `lm_head` is dropped (tied to the embeddings),
//! SentencePiece vocabularies without a space prefix.

use ckpt_core::{DType, Error, Result};
use serde_json::{json, Value};

use super::{
    rope_parameters, tensor_map, unmapped, write_base_params, Architecture, Kind, ParamContext,
    TensorAction, TensorRef, Transform, VocabContext,
};
use crate::hparams::{read_json_object, Hparams};
use crate::kv::KvList;
use crate::vocab::{self, special::SpecialVocab};

pub(crate) struct Gemma;
pub(crate) struct Gemma2;
pub(crate) struct Gemma3;
/// `Gemma3TextModel` (EmbeddingGemma, GGUF arch "gemma-embedding"): Gemma 3 without the
/// `model.` prefix, the window as config.json states it, sentence-transformers pooling. The
/// `2_Dense`/`3_Dense` projections are converted only on the converter's opt-in
/// `--sentence-transformers-dense-modules`
/// ([`Hparams::sentence_transformers_dense_modules`]): `dense_2.weight` / `dense_3.weight`
/// first, their in/out features after the sliding window.
pub struct EmbeddingGemma;

const GEMMA_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
];

/// Gemma 2/3 have norms around both the attention and the MLP.
const GEMMA2_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::AttnQNorm,
    Kind::AttnKNorm,
    Kind::AttnPostNorm,
    Kind::FfnPreNorm,
    Kind::FfnPostNorm,
    Kind::FfnGate,
    Kind::FfnUp,
    Kind::FfnDown,
];

/// EmbeddingGemma: Gemma 3's tensors and the sentence-transformers Dense projections.
const EMBEDDING_GEMMA_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::Dense2Out,
    Kind::Dense3Out,
    Kind::OutputNorm,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::AttnQNorm,
    Kind::AttnKNorm,
    Kind::AttnPostNorm,
    Kind::FfnPreNorm,
    Kind::FfnPostNorm,
    Kind::FfnGate,
    Kind::FfnUp,
    Kind::FfnDown,
];

fn gemma_tensor(
    t: &TensorRef,
    kinds: &[Kind],
    block_count: u32,
    arch: &str,
    extra: Vec<Transform>,
) -> Result<TensorAction> {
    if t.name == "lm_head.weight" {
        return Ok(TensorAction::Drop);
    }
    let name = tensor_map::map_name(kinds, t.name, t.bid, block_count)
        .ok_or_else(|| unmapped(t.name, arch))?;
    let mut transforms = extra;
    if t.name.ends_with("norm.weight") {
        transforms.push(Transform::AddOne {
            in_f16: t.dtype == DType::F16,
        });
    }
    Ok(TensorAction::Keep { name, transforms })
}

fn need_u32(hp: &Hparams, key: &str) -> Result<u32> {
    hp.require_u32(&[key])
}

fn need_f32(hp: &Hparams, key: &str) -> Result<f32> {
    hp.find_f64(&[key])?
        .map(|v| v as f32)
        .ok_or_else(|| Error::invalid(&hp.path, format!("missing hyperparameter {key}")))
}

/// The key list Gemma and Gemma 2 write instead of the common one.
fn gemma_params(ctx: &mut ParamContext, arch: &str) -> Result<()> {
    let hp = ctx.hp;
    let kv = &mut *ctx.kv;
    kv.u32(
        &format!("{arch}.context_length"),
        need_u32(hp, "max_position_embeddings")?,
    );
    kv.u32(
        &format!("{arch}.embedding_length"),
        need_u32(hp, "hidden_size")?,
    );
    kv.u32(&format!("{arch}.block_count"), ctx.block_count);
    kv.u32(
        &format!("{arch}.feed_forward_length"),
        need_u32(hp, "intermediate_size")?,
    );
    let heads = need_u32(hp, "num_attention_heads")?;
    kv.u32(&format!("{arch}.attention.head_count"), heads);
    kv.u32(
        &format!("{arch}.attention.head_count_kv"),
        hp.find_u32(&["num_key_value_heads"])?.unwrap_or(heads),
    );
    kv.f32(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        need_f32(hp, "rms_norm_eps")?,
    );
    let head_dim = need_u32(hp, "head_dim")?;
    kv.u32(&format!("{arch}.attention.key_length"), head_dim);
    kv.u32(&format!("{arch}.attention.value_length"), head_dim);
    kv.u32("general.file_type", ctx.file_type);
    Ok(())
}

fn spm_vocab_without_space_prefix(ctx: &mut VocabContext) -> Result<()> {
    let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
    vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
    ctx.kv.bool("tokenizer.ggml.add_space_prefix", false);
    Ok(())
}

impl Architecture for Gemma {
    fn hf_names(&self) -> &'static [&'static str] {
        &["GemmaForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "gemma"
    }
    fn model_type(&self) -> &'static str {
        "gemma"
    }
    fn tensors(&self) -> &'static [Kind] {
        GEMMA_TENSORS
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        gemma_tensor(t, GEMMA_TENSORS, block_count, "gemma", Vec::new())
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        gemma_params(ctx, "gemma")
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
        // CodeGemma infill ids; only eot has a GGUF key in gguf-py.
        let mut special = SpecialVocab::load_with_types(
            ctx.dir,
            false,
            None,
            &["prefix", "suffix", "middle", "fsep", "eot"],
        )?;
        for (typ, id) in [
            ("prefix", 67),
            ("suffix", 69),
            ("middle", 68),
            ("fsep", 70),
            ("eot", 107),
        ] {
            special.set_special(typ, Some(&json!(id)), ctx.dir)?;
        }
        special.chat_template = None;
        special.write(ctx.kv);
        ctx.kv.bool("tokenizer.ggml.add_space_prefix", false);
        Ok(())
    }
}

impl Architecture for Gemma2 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Gemma2ForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "gemma2"
    }
    fn model_type(&self) -> &'static str {
        "gemma2"
    }
    fn tensors(&self) -> &'static [Kind] {
        GEMMA2_TENSORS
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        gemma_tensor(t, GEMMA2_TENSORS, block_count, "gemma2", Vec::new())
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        gemma_params(ctx, "gemma2")?;
        let attn = need_f32(ctx.hp, "attn_logit_softcapping")?;
        let fin = need_f32(ctx.hp, "final_logit_softcapping")?;
        let window = need_u32(ctx.hp, "sliding_window")?;
        ctx.kv.f32("gemma2.attn_logit_softcapping", attn);
        ctx.kv.f32("gemma2.final_logit_softcapping", fin);
        ctx.kv.u32("gemma2.attention.sliding_window", window);
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        spm_vocab_without_space_prefix(ctx)
    }
}

/// EmbeddingGemma's sentence-transformers Dense module folders and the GGUF prefix the converter
/// gives each one's weight (`2_Dense` -> `dense_2`; any other Dense folder gets the last prefix,
/// `dense_3`). The GGUF -> Hugging Face export writes `dense_N.weight` back into these folders.
pub const DENSE_MODULES: &[(&str, &str)] = &[("2_Dense", "dense_2"), ("3_Dense", "dense_3")];

/// The submodule of a sentence-transformers Dense module that holds its weight
/// (`linear.weight` in the module's `model.safetensors`); the converter replaces it by the prefix.
pub const DENSE_LINEAR: &str = "linear";

/// The GGUF keys of one Dense module's `(in_features, out_features)`, for a prefix of
/// [`DENSE_MODULES`] (`gemma-embedding.dense_2_feat_in`, `…_feat_out`).
pub fn dense_feature_keys(prefix: &str) -> (String, String) {
    (
        format!("gemma-embedding.{prefix}_feat_in"),
        format!("gemma-embedding.{prefix}_feat_out"),
    )
}

/// A sentence-transformers `Dense` module of an EmbeddingGemma folder (an entry of
/// `modules.json` whose type ends in `Dense` and whose folder holds `model.safetensors`).
struct DenseModule {
    /// `dense_2` for the `2_Dense` folder, `dense_3` for any other (as the converter names them).
    prefix: &'static str,
    dir: std::path::PathBuf,
    /// `(in_features, out_features)` of the module's config.json, when it has one with both set.
    features: Option<(u32, u32)>,
}

/// The Dense modules `--sentence-transformers-dense-modules` converts, in `modules.json` order;
/// none without the option or without `modules.json`.
fn dense_modules(hp: &Hparams) -> Result<Vec<DenseModule>> {
    let dir = hp.path.parent().unwrap_or(std::path::Path::new(""));
    let modules_path = dir.join("modules.json");
    if !hp.sentence_transformers_dense_modules || !modules_path.is_file() {
        return Ok(Vec::new());
    }
    let text = ckpt_core::hf::read_side_text(&modules_path)?;
    let modules: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(&modules_path, format!("invalid JSON: {e}")))?;
    let modules = modules
        .as_array()
        .ok_or_else(|| Error::invalid(&modules_path, "expected a JSON list of modules"))?;
    let mut out = Vec::new();
    for m in modules {
        let ty = m.get("type").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(&modules_path, format!("module {m} has no \"type\" string"))
        })?;
        if !ty.ends_with("Dense") {
            continue;
        }
        let path = m.get("path").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(
                &modules_path,
                format!("Dense module {m} has no \"path\" string"),
            )
        })?;
        // An untrusted file names the folder: only a plain folder inside the model's.
        let plain = !path.is_empty()
            && std::path::Path::new(path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(Error::invalid(
                &modules_path,
                format!("Dense module path '{path}' is not a folder inside the model folder"),
            ));
        }
        let mod_dir = dir.join(path);
        if !mod_dir.join("model.safetensors").is_file() {
            continue;
        }
        let (_, last) = DENSE_MODULES[DENSE_MODULES.len() - 1];
        let prefix = DENSE_MODULES
            .iter()
            .find(|(folder, _)| *folder == path)
            .map_or(last, |(_, prefix)| *prefix);
        let conf_path = mod_dir.join("config.json");
        let features = if conf_path.is_file() {
            let conf = read_json_object(&conf_path)?;
            let get = |key: &str| -> Result<Option<u32>> {
                match conf.get(key) {
                    None => Err(Error::invalid(&conf_path, format!("{key} not found"))),
                    Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Some)
                        .ok_or_else(|| {
                            Error::invalid(
                                &conf_path,
                                format!("{key} is {v}, expected an unsigned 32-bit integer"),
                            )
                        }),
                }
            };
            let (i, o) = (get("in_features")?, get("out_features")?);
            i.zip(o)
        } else {
            None
        };
        out.push(DenseModule {
            prefix,
            dir: mod_dir,
            features,
        });
    }
    Ok(out)
}

/// Gemma 3's real vocabulary size: SentencePiece pieces padded to the config's vocab_size, or
/// tokenizer.json's vocab plus added tokens. Without either file (the GGUF -> Hugging Face
/// export, whose rebuilt config has the GGUF's vocabulary size) the config's vocab_size.
fn gemma3_vocab_rows(t: &TensorRef, hp: &Hparams) -> Result<u64> {
    let spm = t.model_dir.join("tokenizer.model");
    if !spm.is_file() && !t.model_dir.join("tokenizer.json").is_file() {
        if let Some(v) = hp.find_u32(&["vocab_size"])? {
            return Ok(v as u64);
        }
    }
    if spm.is_file() {
        let model = vocab::spm::SentencePieceModel::load(&t.model_dir.join("tokenizer.model"))?;
        Ok(hp
            .find_u32(&["vocab_size_per_layer_input", "vocab_size"])?
            .map(|v| v as u64)
            .unwrap_or(model.pieces.len() as u64))
    } else {
        let path = t.model_dir.join("tokenizer.json");
        let tok = read_json_object(&path)?;
        let vocab = tok
            .get("model")
            .and_then(|m| m.get("vocab"))
            .and_then(Value::as_object)
            .map(|v| v.len())
            .unwrap_or(0);
        let added = tok
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .unwrap_or(0);
        Ok((vocab + added) as u64)
    }
}

/// `Gemma3Model.modify_tensors`: embedding rows beyond the vocabulary cut, norms + 1.
fn gemma3_tensor(
    t: &TensorRef,
    hp: &Hparams,
    block_count: u32,
    kinds: &[Kind],
    arch: &str,
) -> Result<TensorAction> {
    let mut extra = Vec::new();
    if t.name.contains("embed_tokens.weight") {
        extra.push(Transform::TruncateRows {
            rows: gemma3_vocab_rows(t, hp)?,
        });
    }
    gemma_tensor(t, kinds, block_count, arch, extra)
}

/// `Gemma3Model.set_gguf_parameters` for GGUF architecture `arch`.
fn gemma3_params(ctx: &mut ParamContext, arch: &str) -> Result<()> {
    write_base_params(ctx, arch)?;
    let hp = ctx.hp;
    let kv = &mut *ctx.kv;
    kv.u32(
        &format!("{arch}.context_length"),
        hp.find_u32(&["max_position_embeddings"])?.unwrap_or(131072),
    );
    kv.u32(
        &format!("{arch}.attention.head_count"),
        hp.find_u32(&["num_attention_heads"])?.unwrap_or(8),
    );
    kv.f32(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        hp.find_f64(&["rms_norm_eps"])?.unwrap_or(1e-6) as f32,
    );
    let head_dim = hp.find_u32(&["head_dim"])?.unwrap_or(256);
    kv.u32(&format!("{arch}.attention.key_length"), head_dim);
    kv.u32(&format!("{arch}.attention.value_length"), head_dim);
    let rp = rope_parameters(hp);
    let global = rp
        .get("full_attention")
        .cloned()
        .unwrap_or_else(|| Value::Object(rp.clone()));
    let theta = global
        .get("rope_theta")
        .and_then(Value::as_f64)
        .unwrap_or(1_000_000.0);
    kv.f32(&format!("{arch}.rope.freq_base"), theta as f32);
    if hp.get("attn_logit_softcapping").is_some() {
        return Err(Error::invalid(
            &hp.path,
            "Gemma 3 does not use attn_logit_softcapping, but config.json sets it",
        ));
    }
    if let Some(cap) = hp
        .find_f64(&["final_logit_softcapping"])?
        .filter(|c| *c != 0.0)
    {
        kv.f32(&format!("{arch}.final_logit_softcapping"), cap as f32);
    }
    if hp.get("sliding_window_pattern").and_then(Value::as_i64) != Some(1) {
        kv.u32(
            &format!("{arch}.attention.sliding_window"),
            need_u32(hp, "sliding_window")?,
        );
    }
    kv.u32(
        &format!("{arch}.attention.head_count_kv"),
        hp.find_u32(&["num_key_value_heads"])?.unwrap_or(4),
    );
    Ok(())
}

impl Architecture for Gemma3 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Gemma3ForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "gemma3"
    }
    fn model_type(&self) -> &'static str {
        "gemma3_text"
    }
    fn tensors(&self) -> &'static [Kind] {
        GEMMA2_TENSORS
    }
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        gemma3_tensor(t, hp, block_count, GEMMA2_TENSORS, "gemma3")
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        gemma3_params(ctx, "gemma3")
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        if ctx.dir.join("tokenizer.model").is_file() {
            spm_vocab_without_space_prefix(ctx)
        } else {
            let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
            vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)
        }
    }
}

impl Architecture for EmbeddingGemma {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Gemma3TextModel"]
    }
    fn gguf_arch(&self) -> &'static str {
        "gemma-embedding"
    }
    fn model_type(&self) -> &'static str {
        "gemma3_text"
    }
    fn tensors(&self) -> &'static [Kind] {
        GEMMA2_TENSORS
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["embed_tokens", "layers.", "norm"]
    }
    fn extra_tensors(&self, hp: &Hparams, _kv: &mut KvList) -> Result<Vec<ckpt_core::Tensor>> {
        let mut out = Vec::new();
        for m in dense_modules(hp)? {
            let file = m.dir.join("model.safetensors");
            for mut t in ckpt_safetensors::read(&file)?.tensors {
                // Only the weights; `linear` becomes the GGUF prefix, then the name is mapped.
                if t.name.ends_with(".weight") {
                    t.name = t.name.replace(DENSE_LINEAR, m.prefix);
                    out.push(t);
                }
            }
        }
        Ok(out)
    }
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        gemma3_tensor(
            t,
            hp,
            block_count,
            EMBEDDING_GEMMA_TENSORS,
            "gemma-embedding",
        )
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        gemma3_params(ctx, "gemma-embedding")?;
        // transformers rewrites sliding_window for bidirectional attention; the converter
        // writes (or overwrites in place) the value of config.json itself.
        let raw = read_json_object(&ctx.hp.path)?;
        let window = raw
            .get("sliding_window")
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                Error::invalid(
                    &ctx.hp.path,
                    "sliding_window not found (EmbeddingGemma needs it)",
                )
            })?;
        let window = window
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| {
                Error::invalid(
                    &ctx.hp.path,
                    format!("sliding_window is {window}, expected an integer"),
                )
            })?;
        ctx.kv
            .u32("gemma-embedding.attention.sliding_window", window);
        // One pair per prefix, in the order the prefixes first appear (a later module with the
        // same prefix replaces the values in place, as a Python dict does).
        let mut dims: Vec<(&str, u32, u32)> = Vec::new();
        for m in dense_modules(ctx.hp)? {
            if let Some((i, o)) = m.features {
                match dims.iter_mut().find(|d| d.0 == m.prefix) {
                    Some(d) => *d = (m.prefix, i, o),
                    None => dims.push((m.prefix, i, o)),
                }
            }
        }
        for (prefix, i, o) in dims {
            let (key_in, key_out) = dense_feature_keys(prefix);
            ctx.kv.u32(&key_in, i);
            ctx.kv.u32(&key_out, o);
        }
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        super::qwen::write_pooling_type(ctx, &dir, "gemma-embedding")
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        Gemma3.write_vocab(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile modules.json cannot point the conversion at files outside the model folder.
    #[test]
    fn dense_module_paths_outside_the_model_folder_are_refused() {
        for bad in ["../2_Dense", "/etc", "a/../../b", ""] {
            let tmp = tempfile::tempdir().unwrap();
            let d = tmp.path();
            std::fs::write(d.join("config.json"), "{}").unwrap();
            let modules =
                serde_json::json!([{"path": bad, "type": "sentence_transformers.models.Dense"}]);
            std::fs::write(d.join("modules.json"), modules.to_string()).unwrap();
            let mut hp = Hparams::load(d).unwrap();
            hp.sentence_transformers_dense_modules = true;
            let e = dense_modules(&hp)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(
                e.to_string().contains("not a folder inside"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn dense_modules_follow_modules_json_and_name_a_bad_config() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("config.json"), "{}").unwrap();
        std::fs::write(
            d.join("modules.json"),
            r#"[{"path": "", "type": "sentence_transformers.models.Transformer"},
                {"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
                {"path": "5_Dense", "type": "sentence_transformers.models.Dense"},
                {"path": "6_Dense", "type": "sentence_transformers.models.Dense"}]"#,
        )
        .unwrap();
        for (m, conf) in [
            ("2_Dense", r#"{"in_features": 8, "out_features": 32}"#),
            ("5_Dense", r#"{"in_features": null, "out_features": 8}"#),
        ] {
            std::fs::create_dir(d.join(m)).unwrap();
            std::fs::write(d.join(m).join("model.safetensors"), b"").unwrap();
            std::fs::write(d.join(m).join("config.json"), conf).unwrap();
        }
        // 6_Dense has no model.safetensors: skipped, as the converter skips it.
        std::fs::create_dir(d.join("6_Dense")).unwrap();
        let mut hp = Hparams::load(d).unwrap();
        assert!(
            dense_modules(&hp).unwrap().is_empty(),
            "off without the flag"
        );
        hp.sentence_transformers_dense_modules = true;
        let got: Vec<_> = dense_modules(&hp)
            .unwrap()
            .into_iter()
            .map(|m| (m.prefix, m.features))
            .collect();
        assert_eq!(
            got,
            vec![("dense_2", Some((8, 32))), ("dense_3", None)],
            "any folder but 2_Dense is dense_3; a null feature count writes no KVs"
        );
        std::fs::write(d.join("2_Dense/config.json"), r#"{"out_features": 32}"#).unwrap();
        let err = dense_modules(&hp).err().unwrap().to_string();
        assert!(
            err.contains("2_Dense") && err.contains("in_features not found"),
            "{err}"
        );
    }

    #[test]
    fn gemma_norms_get_their_one_back_and_lm_head_is_dropped() {
        let dir = std::path::Path::new(".");
        let t = TensorRef {
            name: "model.layers.0.pre_feedforward_layernorm.weight",
            bid: Some(0),
            dtype: DType::BF16,
            model_dir: dir,
        };
        match gemma_tensor(&t, GEMMA2_TENSORS, 1, "gemma2", Vec::new()).unwrap() {
            TensorAction::Keep { name, transforms } => {
                assert_eq!(name, "blk.0.ffn_norm.weight");
                assert_eq!(transforms, vec![Transform::AddOne { in_f16: false }]);
            }
            TensorAction::Drop => panic!("dropped"),
        }
        let t = TensorRef {
            name: "lm_head.weight",
            bid: None,
            dtype: DType::F16,
            model_dir: dir,
        };
        assert!(matches!(
            gemma_tensor(&t, GEMMA_TENSORS, 1, "gemma", Vec::new()).unwrap(),
            TensorAction::Drop
        ));
    }
}
