//! Tokenizer files rebuilt from `tokenizer.ggml.*`: a SentencePiece `tokenizer.model` for
//! llama-style vocabularies (tokens, scores and types are exactly what sentencepiece stores),
//! a byte-level BPE `tokenizer.json` for GPT-2 style ones, and `tokenizer_config.json` with the
//! special tokens and chat template.

use std::collections::HashMap;

use ckpt_core::{Error, Result};
use serde_json::{json, Map, Value};

use crate::config::Kvs;

/// llama.cpp's token types (`tokenizer.ggml.token_type`), numbered like sentencepiece's.
const NORMAL: i64 = 1;
const UNKNOWN: i64 = 2;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// Score the converter gives tokens that come from `added_tokens_decoder` (not from the model).
const ADDED_TOKEN_SCORE: f32 = -1000.0;

pub struct Vocab {
    pub model: String,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    pub types: Vec<i64>,
    pub merges: Vec<String>,
}

impl Vocab {
    pub fn read(kv: &Kvs, gguf: &str) -> Result<Option<Vocab>> {
        let Some(model) = kv.str("tokenizer.ggml.model") else {
            return Ok(None);
        };
        let bad = |what: &str| {
            Error::invalid(
                gguf,
                format!("tokenizer.ggml.{what} is missing or not the expected array"),
            )
        };
        let tokens: Vec<String> = kv
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .and_then(|a| a.as_strings())
            .ok_or_else(|| bad("tokens"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        let scores = match kv.get("tokenizer.ggml.scores") {
            Some(v) => Some(
                v.as_array()
                    .and_then(|a| a.as_f32s())
                    .ok_or_else(|| bad("scores"))?,
            ),
            None => None,
        };
        let types = match kv.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .as_array()
                .and_then(|a| a.as_i64s())
                .ok_or_else(|| bad("token_type"))?,
            None => vec![NORMAL; tokens.len()],
        };
        let merges = match kv.get("tokenizer.ggml.merges") {
            Some(v) => v
                .as_array()
                .and_then(|a| a.as_strings())
                .ok_or_else(|| bad("merges"))?
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        if types.len() != tokens.len() || scores.as_ref().is_some_and(|s| s.len() != tokens.len()) {
            return Err(Error::invalid(
                gguf,
                format!(
                    "tokenizer.ggml.tokens has {} entries but scores/token_type do not match it",
                    tokens.len()
                ),
            ));
        }
        Ok(Some(Vocab {
            model: model.to_string(),
            tokens,
            scores,
            types,
            merges,
        }))
    }

    fn score(&self, id: usize) -> f32 {
        self.scores.as_ref().map_or(0.0, |s| s[id])
    }

    /// Tokens that came from `added_tokens_decoder` in the HF folder: control or user-defined
    /// tokens with the converter's added-token score (SentencePiece), every control or
    /// user-defined token (BPE).
    fn is_added(&self, id: usize) -> bool {
        let t = self.types[id];
        (t == CONTROL || t == USER_DEFINED)
            && (self.model != "llama" || self.score(id) == ADDED_TOKEN_SCORE)
    }
}

fn special_id(kv: &Kvs, typ: &str) -> Option<usize> {
    kv.u64(&format!("tokenizer.ggml.{typ}_token_id"))
        .map(|v| v as usize)
}

// ---- SentencePiece model (protobuf) ----------------------------------------------------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, field << 3 | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
    key(out, field, 2);
    varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    key(out, field, 0);
    varint(out, v as u64); // negative int32 is sign-extended to 10 bytes, as protobuf does
}

/// A sentencepiece `ModelProto` (BPE with byte fallback, as llama's tokenizer.model).
pub fn sentencepiece_model(vocab: &Vocab, kv: &Kvs) -> Vec<u8> {
    let unk = special_id(kv, "unknown")
        .or_else(|| vocab.types.iter().position(|&t| t == UNKNOWN))
        .or_else(|| vocab.tokens.iter().position(|t| t == "<unk>"))
        .unwrap_or(0);
    let mut out = Vec::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        // sentencepiece needs exactly one UNKNOWN piece; the converter may have relabelled it
        // CONTROL through added_tokens_decoder.
        let kind = if id == unk {
            UNKNOWN
        } else if vocab.types[id] == UNKNOWN {
            CONTROL
        } else {
            vocab.types[id].clamp(1, 6)
        };
        let mut piece = Vec::new();
        bytes_field(&mut piece, 1, token.as_bytes());
        key(&mut piece, 2, 5);
        piece.extend_from_slice(&vocab.score(id).to_le_bytes());
        int_field(&mut piece, 3, kind);
        bytes_field(&mut out, 1, &piece);
    }
    let mut trainer = Vec::new();
    int_field(&mut trainer, 3, 2); // model_type: BPE
    int_field(&mut trainer, 4, vocab.tokens.len() as i64);
    int_field(&mut trainer, 35, 1); // byte_fallback
    int_field(&mut trainer, 40, unk as i64);
    int_field(
        &mut trainer,
        41,
        special_id(kv, "bos").map_or(-1, |v| v as i64),
    );
    int_field(
        &mut trainer,
        42,
        special_id(kv, "eos").map_or(-1, |v| v as i64),
    );
    int_field(
        &mut trainer,
        43,
        special_id(kv, "padding").map_or(-1, |v| v as i64),
    );
    bytes_field(&mut out, 2, &trainer);
    let mut normalizer = Vec::new();
    bytes_field(&mut normalizer, 1, b"identity");
    int_field(
        &mut normalizer,
        3,
        kv.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true) as i64,
    );
    int_field(&mut normalizer, 4, 0);
    int_field(&mut normalizer, 5, 1);
    bytes_field(&mut out, 3, &normalizer);
    out
}

// ---- tokenizer.json (byte-level BPE) ---------------------------------------------------------

fn added_token_json(id: usize, content: &str, special: bool) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": !special, "special": special})
}

/// `tokenizer.json` for a GPT-2 style vocabulary. `warnings` gets the approximations made.
pub fn bpe_tokenizer_json(
    vocab: &Vocab,
    kv: &Kvs,
    gguf: &str,
    warnings: &mut Vec<String>,
) -> Result<Value> {
    let mut vocab_map = Map::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        if let Some(first) = seen.insert(token, id) {
            return Err(Error::invalid(gguf, format!("token {token:?} appears twice (ids {first} and {id}); tokenizer.json cannot hold both")));
        }
        vocab_map.insert(token.clone(), json!(id));
    }
    let mut merges = Vec::with_capacity(vocab.merges.len());
    for (i, m) in vocab.merges.iter().enumerate() {
        let (a, b) = m.split_once(' ').ok_or_else(|| {
            Error::invalid(
                gguf,
                format!("tokenizer.ggml.merges[{i}] {m:?} is not two tokens separated by a space"),
            )
        })?;
        merges.push(json!([a, b]));
    }
    let added: Vec<Value> = (0..vocab.tokens.len())
        .filter(|&id| vocab.is_added(id))
        .map(|id| added_token_json(id, &vocab.tokens[id], vocab.types[id] == CONTROL))
        .collect();
    let pre = kv.str("tokenizer.ggml.pre").unwrap_or("default");
    if !matches!(pre, "default" | "gpt-2" | "smollm") {
        warnings.push(format!("pre-tokenizer {pre:?} is written as GPT-2's byte-level pre-tokenizer; its splitting rules may differ"));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": template_processing(vocab, kv),
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab_map, "merges": merges
        }
    }))
}

/// `tokenizer.json` for a SentencePiece-style vocabulary, built the way transformers' GGUF
/// loader (`GGUFLlamaConverter`) builds it: a byte-fallback BPE whose merges are every split of
/// a token into two tokens, ordered by the merged token's score, with LlamaConverter's
/// normalizer (prepend and escape spaces as U+2581) and decoder.
pub fn spm_tokenizer_json(vocab: &Vocab, kv: &Kvs) -> Value {
    let mut score_of: HashMap<&str, f32> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        if score_of.insert(token, vocab.score(id)).is_none() {
            order.push(token);
        }
    }
    let mut vocab_map = Map::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        vocab_map.insert(token.clone(), json!(id));
    }
    let desc = |a: f32, b: f32| b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal);
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for &token in &order {
        let merged_score = score_of[token];
        let mut local: Vec<(&str, &str, f32)> = token
            .char_indices()
            .skip(1)
            .map(|(at, _)| token.split_at(at))
            .filter(|(l, r)| score_of.contains_key(l) && score_of.contains_key(r))
            .map(|(l, r)| (l, r, merged_score))
            .collect();
        // Stable sorts, descending, like Python's sorted(..., reverse=True).
        local.sort_by(|a, b| {
            desc(score_of[a.0], score_of[b.0]).then_with(|| desc(score_of[a.1], score_of[b.1]))
        });
        merges.extend(local);
    }
    merges.sort_by(|a, b| desc(a.2, b.2));
    let merges: Vec<Value> = merges.into_iter().map(|(l, r, _)| json!([l, r])).collect();
    let unk = special_id(kv, "unknown")
        .and_then(|id| vocab.tokens.get(id))
        .cloned();
    let added: Vec<Value> = (0..vocab.tokens.len())
        .filter(|&id| vocab.types[id] == CONTROL || vocab.is_added(id))
        .map(|id| added_token_json(id, &vocab.tokens[id], vocab.types[id] == CONTROL))
        .collect();
    let add_prefix_space = kv.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
    let mut normalizers = Vec::new();
    if add_prefix_space {
        normalizers.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
    }
    normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}));
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_prefix_space {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": null,
        "post_processor": template_processing(vocab, kv),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false, "vocab": vocab_map, "merges": merges
        }
    })
}

/// `tokenizer.json` for a WordPiece (BERT) vocabulary. llama.cpp stores word-initial pieces with
/// a U+2581 prefix and continuation pieces bare; transformers' vocabulary has bare word-initial
/// pieces and `##` continuations.
pub fn wordpiece_tokenizer_json(vocab: &Vocab, kv: &Kvs, gguf: &str) -> Result<Value> {
    let mut vocab_map = Map::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        let word = if vocab.types[id] == CONTROL {
            token.clone()
        } else if let Some(rest) = token.strip_prefix('\u{2581}') {
            rest.to_string()
        } else {
            format!("##{token}")
        };
        if vocab_map.insert(word.clone(), json!(id)).is_some() {
            return Err(Error::invalid(
                gguf,
                format!("WordPiece token {word:?} (id {id}) appears twice"),
            ));
        }
    }
    let added: Vec<Value> = (0..vocab.tokens.len())
        .filter(|&id| vocab.types[id] == CONTROL)
        .map(|id| added_token_json(id, &vocab.tokens[id], true))
        .collect();
    let name = |typ: &str| {
        special_id(kv, typ).and_then(|id| vocab.tokens.get(id).map(|t| (t.clone(), id)))
    };
    let unk = name("unknown")
        .map(|(t, _)| t)
        .unwrap_or_else(|| "[UNK]".into());
    let post = match (name("bos"), name("seperator").or_else(|| name("eos"))) {
        (Some((cls, cls_id)), Some((sep, sep_id))) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": sep, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": sep, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": sep, "type_id": 1}}],
            "special_tokens": {cls.clone(): {"id": cls, "ids": [cls_id], "tokens": [cls]}, sep.clone(): {"id": sep, "ids": [sep_id], "tokens": [sep]}}
        }),
        _ => Value::Null,
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": kv.bool("tokenizer.ggml.normalizer.strip_accents"),
                       "lowercase": kv.bool("tokenizer.ggml.normalizer.lowercase").unwrap_or(true)},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": post,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab_map}
    }))
}

/// BOS/EOS added around each sequence as `tokenizer.ggml.add_bos_token`/`add_eos_token` say.
fn template_processing(vocab: &Vocab, kv: &Kvs) -> Value {
    let token = |typ: &str, flag: &str| -> Option<(String, usize)> {
        let id = special_id(kv, typ)?;
        (kv.bool(&format!("tokenizer.ggml.{flag}")) == Some(true))
            .then(|| (vocab.tokens.get(id).cloned(), id))
            .and_then(|(t, id)| t.map(|t| (t, id)))
    };
    let bos = token("bos", "add_bos_token");
    let eos = token("eos", "add_eos_token");
    let seq = |name: &str, type_id: u32| -> Vec<Value> {
        let mut v = Vec::new();
        if let Some((t, _)) = &bos {
            v.push(json!({"SpecialToken": {"id": t, "type_id": type_id}}));
        }
        v.push(json!({"Sequence": {"id": name, "type_id": type_id}}));
        if let Some((t, _)) = &eos {
            v.push(json!({"SpecialToken": {"id": t, "type_id": type_id}}));
        }
        v
    };
    let mut specials = Map::new();
    for (t, id) in bos.iter().chain(eos.iter()) {
        specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    let single = seq("A", 0);
    let mut pair = single.clone();
    pair.extend(seq("B", 1));
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
}

/// ModernBERT's post-processor: `[CLS] $A [SEP]` and `[CLS] $A [SEP] $B [SEP]`, the CLS being
/// the GGUF's BOS and the closing SEP its EOS (what llama.cpp adds around one sequence, the
/// converter setting add_bos/add_eos), the middle one its separator (EOS when it has none).
pub fn cls_sep_processing(vocab: &Vocab, kv: &Kvs) -> Value {
    let name = |typ: &str| {
        special_id(kv, typ).and_then(|id| vocab.tokens.get(id).map(|t| (t.clone(), id)))
    };
    let (Some((cls, cls_id)), Some((end, end_id))) = (name("bos"), name("eos")) else {
        return template_processing(vocab, kv);
    };
    let (sep, sep_id) = name("seperator").unwrap_or((end.clone(), end_id));
    let special = |t: &str, type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq = |s: &str, type_id: u32| json!({"Sequence": {"id": s, "type_id": type_id}});
    let mut specials = Map::new();
    for (t, id) in [(&cls, cls_id), (&sep, sep_id), (&end, end_id)] {
        specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    json!({
        "type": "TemplateProcessing",
        "single": [special(&cls, 0), seq("A", 0), special(&end, 0)],
        "pair": [special(&cls, 0), seq("A", 0), special(&sep, 0), seq("B", 1), special(&end, 1)],
        "special_tokens": specials
    })
}

/// `tokenizer_config.json`: special tokens by content, added tokens, add_bos/add_eos, chat template.
pub fn tokenizer_config(vocab: &Vocab, kv: &Kvs, context_length: Option<u64>) -> Value {
    let mut c = Map::new();
    for (gguf, hf) in [
        ("add_bos_token", "add_bos_token"),
        ("add_eos_token", "add_eos_token"),
    ] {
        if let Some(b) = kv.bool(&format!("tokenizer.ggml.{gguf}")) {
            c.insert(hf.into(), json!(b));
        }
    }
    let mut decoder = Map::new();
    for id in (0..vocab.tokens.len()).filter(|&id| vocab.is_added(id)) {
        let special = vocab.types[id] == CONTROL;
        let mut entry = added_token_json(id, &vocab.tokens[id], special);
        if let Some(o) = entry.as_object_mut() {
            o.remove("id");
        }
        decoder.insert(id.to_string(), entry);
    }
    c.insert("added_tokens_decoder".into(), Value::Object(decoder));
    // gguf-py's key names (sic "seperator"); WordPiece models use BOS as their [CLS].
    let mut specials = vec![
        ("bos", "bos_token"),
        ("eos", "eos_token"),
        ("unknown", "unk_token"),
        ("padding", "pad_token"),
        ("seperator", "sep_token"),
        ("mask", "mask_token"),
    ];
    if vocab.model == "bert" {
        specials.push(("bos", "cls_token"));
    }
    for (gguf, hf) in specials {
        if let Some(t) = special_id(kv, gguf).and_then(|id| vocab.tokens.get(id)) {
            c.insert(hf.into(), json!(t));
        }
    }
    c.insert("clean_up_tokenization_spaces".into(), json!(false));
    // The generic fast class uses tokenizer.json as written; transformers' LlamaTokenizer would
    // swap the normalizer for its own Metaspace pre-tokenizer, which splits runs of spaces
    // differently from llama.cpp.
    c.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    if let Some(n) = context_length {
        c.insert("model_max_length".into(), json!(n));
    }
    if let Some(t) = kv.str("tokenizer.chat_template") {
        c.insert("chat_template".into(), json!(t));
    }
    Value::Object(c)
}
