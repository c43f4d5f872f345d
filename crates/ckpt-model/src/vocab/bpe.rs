//! GPT-2 style BPE vocabularies from `tokenizer.json` (the converter's `get_vocab_base` and
//! `get_vocab_base_pre`), using the Rust `tokenizers` crate that backs transformers' fast
//! tokenizers.

use std::collections::HashMap;
use std::path::Path;

use ckpt_core::{Error, Result};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::pre_hashes::KNOWN_PRE_TOKENIZERS;
use super::{looks_special, TokenType};

/// llama.cpp's pre-tokenizer probe text (`chktxt` in `get_vocab_base_pre`).
pub(crate) const CHECK_TEXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1f680} (normal) \u{1f636}\u{200d}\u{1f32b}\u{fe0f} (multiple emojis concatenated) \u{2705} \u{1f999}\u{1f999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17b6}\u{1793}\u{17cb}\u{178f}\u{17c2}\u{1796}\u{17b7}\u{179f}\u{17c1}\u{179f}\u{17a2}\u{17b6}\u{1785}\u{1f601} ?\u{6211}\u{60f3}\u{5728}apple\u{5de5}\u{4f5c}1314151\u{5929}\u{ff5e} ------======= \u{43d}\u{435}\u{449}\u{43e} \u{43d}\u{430} \u{411}\u{44a}\u{43b}\u{433}\u{430}\u{440}\u{441}\u{43a}\u{438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

pub(crate) struct BpeVocab {
    pub tokens: Vec<String>,
    pub types: Vec<TokenType>,
    pub pre: String,
}

/// Loads a `tokenizer.json` with the `tokenizers` crate; fails when the file cannot be read or
/// is not a tokenizer that crate understands.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = ckpt_core::hf::read_side_file(path)?;
    Tokenizer::from_bytes(bytes)
        .map_err(|e| Error::invalid(path, format!("cannot load the tokenizer: {e}")))
}

/// sha256 of Python's `str(ids)` for the probe text, as the converter computes it with
/// transformers' `AutoTokenizer.encode`: truncation and padding off, whatever `tokenizer.json`
/// stores (sentence-transformers models ship `"truncation": {"max_length": 128, ...}`, which
/// transformers' fast tokenizer turns off for a plain `encode`).
pub fn pre_tokenizer_hash(tokenizer: &Tokenizer, path: &Path) -> Result<String> {
    let mut tokenizer = tokenizer.clone();
    tokenizer
        .with_truncation(None)
        .map_err(|e| Error::invalid(path, format!("cannot turn truncation off: {e}")))?;
    tokenizer.with_padding(None);
    let enc = tokenizer
        .encode(CHECK_TEXT, true)
        .map_err(|e| Error::invalid(path, format!("cannot encode the probe text: {e}")))?;
    let ids: Vec<String> = enc.get_ids().iter().map(u32::to_string).collect();
    let text = format!("[{}]", ids.join(", "));
    Ok(hex(&Sha256::digest(text.as_bytes())))
}

/// Every (fingerprint, pre-tokenizer name) pair (`tokenizer.ggml.pre`) the converter knows, in its order.
pub fn known_pre_tokenizers() -> &'static [(&'static str, &'static str)] {
    KNOWN_PRE_TOKENIZERS
}

pub(crate) fn known_pre_tokenizer(hash: &str) -> Option<&'static str> {
    KNOWN_PRE_TOKENIZERS
        .iter()
        .rev()
        .find(|(h, _)| *h == hash)
        .map(|(_, n)| *n)
}

/// The pre-tokenizer name: the override when given, else the one the converter lists for
/// `hash`, else an error naming the hash (the converter refuses an unknown one too).
pub(crate) fn resolve_pre(hash: &str, pre_override: Option<&str>, path: &Path) -> Result<String> {
    match (pre_override, known_pre_tokenizer(hash)) {
        (Some(p), _) => Ok(p.to_string()),
        (None, Some(p)) => Ok(p.to_string()),
        (None, None) => Err(Error::Unsupported(format!(
            "{}: the BPE pre-tokenizer was not recognized (hash {hash}); if you know which llama.cpp \
             pre-tokenizer it uses, pass it with the pre-tokenizer override (--pre-tokenizer NAME)",
            path.display()
        ))),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tokens and types for ids 0..vocab_size, plus the pre-tokenizer name.
pub(crate) fn load(
    dir: &Path,
    vocab_size: Option<usize>,
    pre_override: Option<&str>,
) -> Result<BpeVocab> {
    let path = dir.join("tokenizer.json");
    let tokenizer = load_tokenizer(&path)?;
    let vocab: HashMap<String, u32> = tokenizer.get_vocab(true);
    let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
    let vocab_size = vocab_size.unwrap_or(vocab.len());
    if max_id >= vocab_size {
        return Err(Error::invalid(
            &path,
            format!(
                "the tokenizer has token id {max_id} but config.json vocab_size is {vocab_size}"
            ),
        ));
    }
    let pre_hash = pre_tokenizer_hash(&tokenizer, &path)?;
    let pre = resolve_pre(&pre_hash, pre_override, &path)?;
    let mut reverse: Vec<Option<&str>> = vec![None; vocab_size];
    for (tok, &id) in &vocab {
        reverse[id as usize] = Some(tok);
    }
    let added = tokenizer.get_added_tokens_decoder();
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for (id, tok) in reverse.iter().enumerate() {
        let Some(tok) = tok else {
            tokens.push(format!("[PAD{id}]"));
            types.push(TokenType::Unused);
            continue;
        };
        let mut token = tok.to_string();
        match added.get(&(id as u32)).filter(|a| a.content == token) {
            Some(a) => {
                if !a.normalized {
                    // llama.cpp expects added tokens pre-normalized: round-trip through the tokenizer.
                    let enc = tokenizer.encode(token.as_str(), false).map_err(|e| {
                        Error::invalid(&path, format!("cannot encode added token {token:?}: {e}"))
                    })?;
                    token = tokenizer.decode(enc.get_ids(), false).map_err(|e| {
                        Error::invalid(&path, format!("cannot decode added token {token:?}: {e}"))
                    })?;
                }
                if a.special || looks_special(&token) {
                    types.push(TokenType::Control);
                } else {
                    token = token.replace('\u{2581}', " ");
                    types.push(TokenType::UserDefined);
                }
            }
            None => types.push(TokenType::Normal),
        }
        tokens.push(token);
    }
    Ok(BpeVocab { tokens, types, pre })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_text_is_llama_cpp_chktxt() {
        assert_eq!(CHECK_TEXT.chars().count(), 350);
        assert_eq!(
            hex(&Sha256::digest(CHECK_TEXT.as_bytes())),
            "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
        );
    }

    #[test]
    fn last_listed_name_wins() {
        assert_eq!(
            known_pre_tokenizer("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166"),
            Some("olmo")
        );
        assert_eq!(
            known_pre_tokenizer("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249"),
            Some("smollm")
        );
        assert_eq!(known_pre_tokenizer("00"), None);
    }
}
