//! The pre-tokenizer fingerprint (llama.cpp's `get_vocab_base_pre`) is computed as
//! transformers' `AutoTokenizer.encode` does: a `truncation` or `padding` stored in
//! `tokenizer.json` is turned off, so it changes neither the fingerprint nor the GGUF.

use std::path::Path;

use ckpt_core::{Checkpoint, DType, Format, Tensor};
use ckpt_model::vocab::bpe::{load_tokenizer, pre_tokenizer_hash};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use serde_json::{json, Value};

/// A small BERT (WordPiece) tokenizer.json, as `tokenizers` saves it.
fn wordpiece(truncation: Value, padding: Value) -> Value {
    let words = [
        "hello", "world", "##lo", "##s", "a", "b", "c", "3", "33", "!", "?", "i", "'", "ve", "been",
    ];
    ckpt_testhub::fixtures::wordpiece_tokenizer_json_of(&words, truncation, padding)
}

fn truncation() -> Value {
    // What sentence-transformers models ship.
    json!({"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0})
}

fn short_truncation() -> Value {
    json!({"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0})
}

fn padding() -> Value {
    json!({"strategy": {"Fixed": 512}, "direction": "Right", "pad_to_multiple_of": null,
           "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"})
}

fn fingerprint(dir: &Path, tok: &Value) -> String {
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, tok.to_string()).unwrap();
    pre_tokenizer_hash(&load_tokenizer(&p).unwrap(), &p).unwrap()
}

#[test]
fn stored_truncation_and_padding_do_not_change_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let plain = fingerprint(dir.path(), &wordpiece(Value::Null, Value::Null));
    for (what, tok) in [
        ("truncation 128", wordpiece(truncation(), Value::Null)),
        ("truncation 8", wordpiece(short_truncation(), Value::Null)),
        ("padding 512", wordpiece(Value::Null, padding())),
        ("both", wordpiece(short_truncation(), padding())),
    ] {
        assert_eq!(fingerprint(dir.path(), &tok), plain, "{what}");
    }
}

fn bert_checkpoint() -> Checkpoint {
    let shapes: &[(&str, Vec<u64>)] = &[
        ("bert.embeddings.word_embeddings.weight", vec![20, 32]),
        ("bert.embeddings.position_embeddings.weight", vec![16, 32]),
        ("bert.embeddings.token_type_embeddings.weight", vec![2, 32]),
        ("bert.embeddings.LayerNorm.weight", vec![32]),
        ("bert.embeddings.LayerNorm.bias", vec![32]),
        (
            "bert.encoder.layer.0.attention.self.query.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.self.key.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.self.value.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.output.dense.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            vec![32],
        ),
        (
            "bert.encoder.layer.0.intermediate.dense.weight",
            vec![64, 32],
        ),
        ("bert.encoder.layer.0.output.dense.weight", vec![32, 64]),
        ("bert.encoder.layer.0.output.LayerNorm.weight", vec![32]),
    ];
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = shapes
        .iter()
        .map(|(n, s)| {
            let n_el: u64 = s.iter().product();
            Tensor::computed(*n, DType::F32, s.clone(), move || {
                Ok((0..n_el)
                    .flat_map(|i| ((i % 7) as f32).to_le_bytes())
                    .collect())
            })
        })
        .collect();
    ck
}

/// A BERT folder whose tokenizer.json stores a truncation converts to the same GGUF bytes as
/// one without.
#[test]
fn bert_with_stored_truncation_converts_like_one_without() {
    let convert = |tok: Value| -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        // The same folder name each time (the GGUF's general.name comes from it).
        let dir = tmp.path().join("bert-model");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            json!({
                "architectures": ["BertModel"], "hidden_size": 32, "intermediate_size": 64,
                "num_attention_heads": 2, "num_hidden_layers": 1, "max_position_embeddings": 16,
                "layer_norm_eps": 1e-12, "vocab_size": 20, "type_vocab_size": 2, "pad_token_id": 0
            })
            .to_string(),
        )
        .unwrap();
        std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
        let out = tmp.path().join("out.gguf");
        convert_hf_to_gguf(
            &dir,
            &bert_checkpoint(),
            &out,
            &HfToGgufOptions {
                outtype: OutType::F32,
                pre_tokenizer: Some("bert-bge".into()),
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::read(out).unwrap()
    };
    let plain = convert(wordpiece(Value::Null, Value::Null));
    assert!(
        convert(wordpiece(truncation(), Value::Null)) == plain,
        "truncation 128: same GGUF"
    );
    assert!(
        convert(wordpiece(short_truncation(), Value::Null)) == plain,
        "truncation 8: same GGUF"
    );
}
