//! Tokenizer metadata: SentencePiece (`tokenizer.model`), GPT-2 BPE (`tokenizer.json`) and
//! tiktoken (`*.tiktoken`) vocabularies plus gguf-py's special-token handling, written as the converter writes them.

pub mod bpe;
mod pre_hashes;
pub mod special;
pub(crate) mod spm;
pub(crate) mod tiktoken;

use std::path::Path;

use ckpt_core::{Error, Result};
use ckpt_gguf::GgufValue;
use serde_json::Value;

use crate::hparams::read_optional_json;
use crate::kv::KvList;
use special::SpecialVocab;
use spm::{PieceType, SentencePieceModel};

/// llama.cpp's `llama_token_type` as stored in `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// The converter's `does_token_look_special`: added tokens some models forget to mark special.
pub(crate) fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<\u{ff5c}") && token.ends_with("\u{ff5c}>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

pub(crate) struct SpmVocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<TokenType>,
}

/// `_create_vocab_sentencepiece`: pieces of tokenizer.model, then added_tokens.json and the
/// `added_tokens_decoder` of tokenizer_config.json, padded to the config's vocab size.
pub(crate) fn sentencepiece_vocab(
    dir: &Path,
    vocab_size: Option<usize>,
    warnings: &mut Vec<String>,
) -> Result<SpmVocab> {
    let model_path = dir.join("tokenizer.model");
    let model = SentencePieceModel::load(&model_path)?;
    let vocab_size = vocab_size.unwrap_or(model.pieces.len());
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; vocab_size];
    let mut types = vec![TokenType::Unused; vocab_size];
    for (id, piece) in model.pieces.iter().enumerate() {
        if id >= vocab_size {
            warnings.push(format!(
                "{}: ignoring pieces from id {id}: config.json vocab_size is {vocab_size}",
                model_path.display()
            ));
            break;
        }
        tokens[id] = piece.text.clone();
        scores[id] = piece.score;
        // sentencepiece's IsUnknown/IsControl/IsUnused/IsByte; USER_DEFINED pieces stay NORMAL.
        types[id] = match piece.kind {
            PieceType::Unknown => TokenType::Unknown,
            PieceType::Control => TokenType::Control,
            PieceType::Unused => TokenType::Unused,
            PieceType::Byte => TokenType::Byte,
            PieceType::Normal | PieceType::UserDefined => TokenType::Normal,
        };
    }
    let added_path = dir.join("added_tokens.json");
    if let Some(added) = read_optional_json(&added_path)? {
        for (text, id) in added {
            let id = id.as_u64().ok_or_else(|| {
                Error::invalid(&added_path, format!("id of {text:?} is not an integer"))
            })? as usize;
            if id >= vocab_size {
                warnings.push(format!(
                    "{}: ignoring token {id}: out of range",
                    added_path.display()
                ));
                continue;
            }
            tokens[id] = text;
            scores[id] = -1000.0;
            types[id] = TokenType::UserDefined;
        }
    }
    let config_path = dir.join("tokenizer_config.json");
    if let Some(config) = read_optional_json(&config_path)? {
        if let Some(Value::Object(decoder)) = config.get("added_tokens_decoder") {
            for (id_text, data) in decoder {
                let id: usize = id_text.parse().map_err(|_| {
                    Error::invalid(
                        &config_path,
                        format!("added_tokens_decoder key {id_text:?} is not a token id"),
                    )
                })?;
                let content = data.get("content").and_then(Value::as_str).ok_or_else(|| {
                    Error::invalid(
                        &config_path,
                        format!("added_tokens_decoder[{id_text}] has no content"),
                    )
                })?;
                if id >= vocab_size {
                    warnings.push(format!(
                        "{}: ignoring token {id}: out of range",
                        config_path.display()
                    ));
                    continue;
                }
                let special = data
                    .get("special")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let mut token = content.to_string();
                if special || looks_special(&token) {
                    types[id] = TokenType::Control;
                } else {
                    token = token.replace('\u{2581}', " ");
                    types[id] = TokenType::UserDefined;
                }
                scores[id] = -1000.0;
                tokens[id] = token;
            }
        }
    }
    Ok(SpmVocab {
        tokens,
        scores,
        types,
    })
}

fn type_array(types: &[TokenType]) -> GgufValue {
    GgufValue::i32_array(types.iter().map(|t| *t as i32))
}

/// `_set_vocab_sentencepiece`.
pub(crate) fn write_sentencepiece(
    dir: &Path,
    vocab_size: Option<usize>,
    kv: &mut KvList,
    warnings: &mut Vec<String>,
) -> Result<SpmVocab> {
    let v = sentencepiece_vocab(dir, vocab_size, warnings)?;
    kv.string("tokenizer.ggml.model", "llama");
    kv.string("tokenizer.ggml.pre", "default");
    kv.array(
        "tokenizer.ggml.tokens",
        GgufValue::string_array(v.tokens.iter().cloned()),
    );
    kv.array(
        "tokenizer.ggml.scores",
        GgufValue::f32_array(v.scores.iter().copied()),
    );
    kv.array("tokenizer.ggml.token_type", type_array(&v.types));
    let special = SpecialVocab::load(dir, false, Some(v.tokens.len()))?;
    warnings.extend(special.warnings.iter().cloned());
    special.write(kv);
    Ok(v)
}

/// The converter's `_xlmroberta_set_vocab` for a folder with `sentencepiece.bpe.model`: the
/// Unigram pieces with fairseq's id shift (`<s> <pad> </s> <unk>` first, the rest moved up by
/// one, the last dropped), for llama.cpp's "t5" tokenizer, with the normalizer settings;
/// `mask_at` puts `<mask>` at that id (nomic-bert-moe).
pub(crate) fn write_xlmroberta(
    dir: &Path,
    vocab_size: Option<usize>,
    type_count: u32,
    mask_at: Option<usize>,
    kv: &mut KvList,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let path = dir.join("sentencepiece.bpe.model");
    if !path.is_file() {
        return write_unigram_from_json(dir, vocab_size, type_count, kv, warnings);
    }
    let model = SentencePieceModel::load(&path)?;
    if model.model_type != 1 {
        return Err(Error::Unsupported(format!(
            "{}: sentencepiece model type {} is not Unigram (1), which XLM-RoBERTa needs",
            path.display(),
            model.model_type
        )));
    }
    let n = vocab_size.unwrap_or(0).max(model.pieces.len());
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![TokenType::Unused; n];
    for (id, piece) in model.pieces.iter().enumerate() {
        tokens[id] = piece.text.clone();
        scores[id] = piece.score;
        types[id] = match piece.kind {
            PieceType::Unknown => TokenType::Unknown,
            PieceType::Control => TokenType::Control,
            PieceType::Unused => TokenType::Unused,
            PieceType::Byte => TokenType::Byte,
            PieceType::Normal | PieceType::UserDefined => TokenType::Normal,
        };
    }
    if n < 4 {
        return Err(Error::invalid(
            &path,
            format!("{n} pieces, XLM-RoBERTa needs at least 4"),
        ));
    }
    // fairseq's ids: [<s>, <pad>, </s>, <unk>] + pieces[3..n-1].
    let head = ["<s>", "<pad>", "</s>", "<unk>"].map(String::from);
    let tokens: Vec<String> = head.into_iter().chain(tokens.drain(3..n - 1)).collect();
    let scores: Vec<f32> = [0.0; 4]
        .into_iter()
        .chain(scores[3..n - 1].iter().copied())
        .collect();
    let types: Vec<TokenType> = [
        TokenType::Control,
        TokenType::Control,
        TokenType::Control,
        TokenType::Unknown,
    ]
    .into_iter()
    .chain(types[3..n - 1].iter().copied())
    .collect();
    let (mut tokens, mut scores, mut types) = (tokens, scores, types);
    if let Some(id) = mask_at {
        // nomic-bert-moe: `tokens[250001] = b'<mask>'` (an IndexError there when shorter).
        if id >= tokens.len() {
            return Err(Error::Unsupported(format!(
                "{}: the converter writes <mask> at id {id}, but the vocabulary has {} tokens",
                path.display(),
                tokens.len()
            )));
        }
        tokens[id] = "<mask>".into();
        scores[id] = 0.0;
        types[id] = TokenType::Control;
    }
    kv.string("tokenizer.ggml.model", "t5");
    kv.string("tokenizer.ggml.pre", "default");
    kv.array(
        "tokenizer.ggml.tokens",
        GgufValue::string_array(tokens.iter().cloned()),
    );
    kv.array("tokenizer.ggml.scores", GgufValue::f32_array(scores));
    kv.array("tokenizer.ggml.token_type", type_array(&types));
    kv.bool("tokenizer.ggml.add_space_prefix", model.add_dummy_prefix);
    kv.u32("tokenizer.ggml.token_type_count", type_count);
    kv.bool(
        "tokenizer.ggml.remove_extra_whitespaces",
        model.remove_extra_whitespaces,
    );
    if !model.precompiled_charsmap.is_empty() {
        kv.array(
            "tokenizer.ggml.precompiled_charsmap",
            GgufValue::u8_array(model.precompiled_charsmap.iter().copied()),
        );
    }
    let special = SpecialVocab::load(dir, false, Some(tokens.len()))?;
    warnings.extend(special.warnings.iter().cloned());
    special.write(kv);
    Ok(())
}

/// The converter's `_xlmroberta_set_vocab` for a folder with only `tokenizer.json` (a Unigram
/// model): pieces and scores from `model.vocab` in id order (no fairseq shift: the JSON already
/// has fairseq's ids), the unknown token, special tokens as control and other added tokens as
/// user-defined, the normalizer's precompiled charsmap, `add_prefix_space` and
/// `clean_up_tokenization_spaces` of tokenizer_config.json.
fn write_unigram_from_json(
    dir: &Path,
    vocab_size: Option<usize>,
    type_count: u32,
    kv: &mut KvList,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let path = dir.join("tokenizer.json");
    let Some(tok) = read_optional_json(&path)? else {
        return Err(Error::Unsupported(format!(
            "{}: neither sentencepiece.bpe.model nor tokenizer.json is present",
            dir.display()
        )));
    };
    let model = tok.get("model").cloned().unwrap_or(Value::Null);
    if model.get("type").and_then(Value::as_str) != Some("Unigram") {
        return Err(Error::Unsupported(format!(
            "{}: expected a Unigram model (XLM-RoBERTa), found {}",
            path.display(),
            model.get("type").unwrap_or(&Value::Null)
        )));
    }
    let pieces = model
        .get("vocab")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(&path, "model.vocab is not a list"))?;
    let mut base: Vec<(String, f32)> = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.iter().enumerate() {
        let (Some(t), Some(sc)) = (
            p.get(0).and_then(Value::as_str),
            p.get(1).and_then(Value::as_f64),
        ) else {
            return Err(Error::invalid(
                &path,
                format!("model.vocab[{i}] is not [piece, score]"),
            ));
        };
        base.push((t.to_string(), sc as f32));
    }
    let charsmap = tok
        .get("normalizer")
        .and_then(|n| n.get("precompiled_charsmap"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "{}: the converter reads normalizer.precompiled_charsmap, which this tokenizer.json lacks",
                path.display()
            ))
        })?;
    let charsmap = base64_decode(charsmap)
        .ok_or_else(|| Error::invalid(&path, "normalizer.precompiled_charsmap is not base64"))?;
    let config = read_optional_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    let mut added: Vec<(String, usize)> = Vec::new();
    for a in tok
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(c), Some(id)) = (
            a.get("content").and_then(Value::as_str),
            a.get("id").and_then(Value::as_u64),
        ) {
            added.push((c.to_string(), id as usize));
        }
    }
    let id_of = |text: &str| -> Option<usize> {
        added
            .iter()
            .find(|(c, _)| c == text)
            .map(|(_, id)| *id)
            .or_else(|| base.iter().position(|(t, _)| t == text))
    };
    let token_text = |v: &Value| -> Option<String> {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.get("content").and_then(Value::as_str).map(str::to_string))
    };
    let unk_text = config.get("unk_token").and_then(token_text);
    let unk_id = unk_text
        .as_deref()
        .and_then(|u| added.iter().find(|(c, _)| c == u).map(|(_, id)| *id))
        .or_else(|| {
            model
                .get("unk_id")
                .and_then(Value::as_u64)
                .map(|v| v as usize)
        })
        .unwrap_or(3);
    let mut special_ids: Vec<usize> = Vec::new();
    for key in [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ] {
        if let Some(id) = config.get(key).and_then(token_text).and_then(|t| id_of(&t)) {
            special_ids.push(id);
        }
    }
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        for v in config
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = token_text(v).and_then(|t| id_of(&t)) {
                special_ids.push(id);
            }
        }
    }
    // transformers' vocab_size of a fast tokenizer: the model's vocabulary without added tokens.
    let n_model = base.len();
    let n = vocab_size.unwrap_or(0).max(n_model);
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![TokenType::Unused; n];
    for (id, (text, score)) in base.iter().enumerate() {
        // _convert_id_to_token: an added token's content where it has this id.
        tokens[id] = added
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| text.clone());
        scores[id] = *score;
        types[id] = if id == unk_id {
            TokenType::Unknown
        } else if special_ids.contains(&id) {
            TokenType::Control
        } else if added.iter().any(|(_, i)| *i == id) {
            TokenType::UserDefined
        } else {
            TokenType::Normal
        };
    }
    let flag = |k: &str, d: bool| config.get(k).and_then(Value::as_bool).unwrap_or(d);
    kv.string("tokenizer.ggml.model", "t5");
    kv.string("tokenizer.ggml.pre", "default");
    kv.array(
        "tokenizer.ggml.tokens",
        GgufValue::string_array(tokens.iter().cloned()),
    );
    kv.array("tokenizer.ggml.scores", GgufValue::f32_array(scores));
    kv.array("tokenizer.ggml.token_type", type_array(&types));
    kv.bool(
        "tokenizer.ggml.add_space_prefix",
        flag("add_prefix_space", true),
    );
    kv.u32("tokenizer.ggml.token_type_count", type_count);
    kv.bool(
        "tokenizer.ggml.remove_extra_whitespaces",
        flag("clean_up_tokenization_spaces", false),
    );
    if !charsmap.is_empty() {
        kv.array(
            "tokenizer.ggml.precompiled_charsmap",
            GgufValue::u8_array(charsmap),
        );
    }
    let special = SpecialVocab::load(dir, false, Some(tokens.len()))?;
    warnings.extend(special.warnings.iter().cloned());
    special.write(kv);
    Ok(())
}

/// Standard base64 (with `=` padding), as Python's `b64decode`.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// `_set_vocab_gpt2`.
pub(crate) fn write_gpt2(
    dir: &Path,
    vocab_size: Option<usize>,
    pre_override: Option<&str>,
    kv: &mut KvList,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let v = bpe::load(dir, vocab_size, pre_override)?;
    kv.string("tokenizer.ggml.model", "gpt2");
    kv.string("tokenizer.ggml.pre", &v.pre);
    kv.array("tokenizer.ggml.tokens", GgufValue::string_array(v.tokens));
    kv.array("tokenizer.ggml.token_type", type_array(&v.types));
    let special = SpecialVocab::load(dir, true, None)?;
    if special.merges.is_empty() {
        warnings.push(
            "adding merges was requested but no merges were found; the output may not tokenize"
                .into(),
        );
    }
    warnings.extend(special.warnings.iter().cloned());
    special.write(kv);
    Ok(())
}

/// Whether tokenizer.json is a SentencePiece-style BPE (byte fallback), which the converter
/// reads through transformers' LlamaTokenizer ("LlamaHfVocab") rather than as GPT-2 BPE.
pub(crate) fn is_llama_hf_tokenizer(dir: &Path) -> Result<bool> {
    let path = dir.join("tokenizer.json");
    let Some(tok) = read_optional_json(&path)? else {
        return Ok(false);
    };
    let model = tok.get("model");
    let is_bpe = model.and_then(|m| m.get("type")).and_then(Value::as_str) == Some("BPE");
    let byte_fallback = model
        .and_then(|m| m.get("byte_fallback"))
        .and_then(Value::as_bool);
    let ignore_merges = model
        .and_then(|m| m.get("ignore_merges"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if is_bpe && ignore_merges && !byte_fallback.unwrap_or(true) {
        return Ok(false); // Llama 3 style: GPT-2 BPE
    }
    let decoder_seq = tok
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        == Some("Sequence");
    Ok(is_bpe && byte_fallback.unwrap_or(false) && decoder_seq)
}
