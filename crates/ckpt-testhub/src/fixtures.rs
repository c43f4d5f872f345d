//! What several crates' tests build the same way: the tensor values of the checkpoints that the
//! MoE fixture generator wrote (`tests/fixtures/arch-moe`), so tests can build the same
//! checkpoints without reading them, and a tiny WordPiece `tokenizer.json`.

use ckpt_core::{DType, Tensor};
use serde_json::json;

/// The `k`-th tensor of a generated MoE checkpoint, computed lazily: element `i` is
/// `((i + 5k) % 13) * 0.125` as F32; MXFP4 `*_blocks` and `*_scales` tensors (U8) hold
/// `(7i + 3k) % 256` and `118 + (i + k) % 8`.
///
/// ```
/// use ckpt_testhub::fixtures::moe_tensor;
///
/// let t = moe_tensor("model.norm.weight", vec![4], 1);
/// let bytes = t.bytes().unwrap();
/// let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
/// assert_eq!(first, 5.0 * 0.125);
/// ```
pub fn moe_tensor(name: &str, shape: Vec<u64>, k: u64) -> Tensor {
    let n: u64 = shape.iter().product();
    if name.ends_with("_blocks") || name.ends_with("_scales") {
        let blocks = name.ends_with("_blocks");
        return Tensor::computed(name, DType::U8, shape, move || {
            Ok((0..n)
                .map(|i| {
                    if blocks {
                        ((7 * i + 3 * k) % 256) as u8
                    } else {
                        (118 + (i + k) % 8) as u8
                    }
                })
                .collect())
        });
    }
    Tensor::computed(name, DType::F32, shape, move || {
        Ok((0..n)
            .flat_map(|i| (((i + 5 * k) % 13) as f32 * 0.125).to_le_bytes())
            .collect())
    })
}

/// A BERT-style WordPiece `tokenizer.json` (as transformers saves one) of 12 tokens: the five
/// specials `[PAD] [UNK] [CLS] [SEP] [MASK]`, then `hello world ##lo ##s a b c`; `[CLS] A [SEP]`
/// post-processing. See [`wordpiece_tokenizer_json_of`] for other words.
///
/// ```
/// let t = ckpt_testhub::fixtures::wordpiece_tokenizer_json();
/// assert_eq!(t["model"]["vocab"]["hello"], 5);
/// ```
pub fn wordpiece_tokenizer_json() -> serde_json::Value {
    wordpiece_tokenizer_json_of(
        &["hello", "world", "##lo", "##s", "a", "b", "c"],
        serde_json::Value::Null,
        serde_json::Value::Null,
    )
}

/// A BERT-style WordPiece `tokenizer.json` whose vocabulary is the five specials
/// `[PAD] [UNK] [CLS] [SEP] [MASK]` followed by `words`, with the stored `truncation` and
/// `padding` given (`null` for none, as `tokenizers` saves them).
///
/// ```
/// use serde_json::{json, Value};
/// let t = ckpt_testhub::fixtures::wordpiece_tokenizer_json_of(
///     &["hi"],
///     json!({"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}),
///     Value::Null,
/// );
/// assert_eq!(t["model"]["vocab"]["hi"], 5);
/// assert_eq!(t["truncation"]["max_length"], 8);
/// ```
pub fn wordpiece_tokenizer_json_of(
    words: &[&str],
    truncation: serde_json::Value,
    padding: serde_json::Value,
) -> serde_json::Value {
    const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let vocab: serde_json::Map<String, serde_json::Value> = SPECIALS
        .iter()
        .chain(words)
        .enumerate()
        .map(|(i, w)| (w.to_string(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"id": i, "content": w, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0", "truncation": truncation, "padding": padding, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    })
}
