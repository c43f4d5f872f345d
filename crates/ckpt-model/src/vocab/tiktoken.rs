//! tiktoken vocabularies (a file of `BASE64-TOKEN RANK` lines) turned into a GPT-2 BPE
//! vocabulary the way the converter does it for families that ship no tokenizer.json (Hunyuan's
//! `hy.tiktoken`): tokens through GPT-2's byte-to-unicode map, merges reverse-engineered from
//! the ranks (`QwenModel.bpe` with `max_rank`), special tokens after the ranks, and the
//! pre-tokenizer fingerprint from tiktoken's own encoding of the probe text.
//!
//! The special tokens and the split pattern of such a family live in the tokenizer's Python
//! module, which ckpt never runs: they are table data here ([`TiktokenScheme`]), and only the
//! vocabulary file is read from the folder.

use std::collections::HashMap;
use std::path::Path;

use ckpt_core::{Error, Result};
use ckpt_gguf::GgufValue;
use sha2::{Digest, Sha256};
use tokenizers::NormalizedString;

use super::bpe::{hex, resolve_pre, CHECK_TEXT};
use super::special::SpecialVocab;
use super::{base64_decode, type_array, TokenType};
use crate::kv::KvList;

/// What a family's tokenizer module fixes in code: the vocabulary file, the pre-tokenizer
/// regex, and the special tokens that follow the ranks.
#[derive(Debug, PartialEq, Eq)]
pub struct TiktokenScheme {
    /// The vocabulary file in the model folder.
    pub file: &'static str,
    /// tiktoken's `pat_str`.
    pub pattern: &'static str,
    /// Special tokens from id `ranks` on, in order...
    pub named: &'static [&'static str],
    /// ...then `{prefix}{i}{suffix}` for i in 0..count.
    pub extras: (&'static str, &'static str, u32),
    /// Whether text is NFC-normalized before encoding.
    pub nfc: bool,
}

impl TiktokenScheme {
    /// The special tokens with their ids, starting after `n_ranks` rank entries.
    pub fn special_tokens(&self, n_ranks: usize) -> Vec<(String, u32)> {
        let (prefix, suffix, count) = self.extras;
        self.named
            .iter()
            .map(|s| s.to_string())
            .chain((0..count).map(|i| format!("{prefix}{i}{suffix}")))
            .enumerate()
            .map(|(i, s)| (s, (n_ranks + i) as u32))
            .collect()
    }
}

/// The mergeable ranks of a tiktoken file: tokens in rank order. A token's rank is its position
/// among the distinct tokens of the file (the number after it is not read, and a repeated token
/// keeps its first rank), as Hunyuan's loader does.
pub struct Ranks {
    pub tokens: Vec<Vec<u8>>,
    pub index: HashMap<Vec<u8>, u32>,
}

impl Ranks {
    pub fn load(path: &Path) -> Result<Ranks> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut tokens = Vec::new();
        let mut index = HashMap::new();
        for (n, line) in data.split_inclusive(|&b| b == b'\n').enumerate() {
            let text = std::str::from_utf8(line).ok();
            let fields: Vec<&str> = text
                .map(|t| t.split_ascii_whitespace().collect())
                .unwrap_or_default();
            let token = match fields.as_slice() {
                [tok, _rank] => base64_decode(tok),
                _ => None,
            };
            let Some(token) = token else {
                return Err(Error::invalid(
                    path,
                    format!(
                        "line {}: expected `BASE64-TOKEN RANK`, found {:?}",
                        n + 1,
                        String::from_utf8_lossy(line).trim_end()
                    ),
                ));
            };
            if !index.contains_key(&token) {
                index.insert(token.clone(), tokens.len() as u32);
                tokens.push(token);
            }
        }
        Ok(Ranks { tokens, index })
    }

    /// `QwenModel.bpe`: the byte-pair merges of `token` by rank (the lowest-ranked adjacent
    /// pair first, the leftmost on ties), stopping before a merge of rank `max_rank` or above.
    /// Without `max_rank` it is tiktoken's encoding of one pre-tokenized piece.
    pub fn bpe<'a>(&self, token: &'a [u8], max_rank: Option<u32>) -> Vec<&'a [u8]> {
        // Part boundaries: part i is token[bounds[i]..bounds[i + 1]].
        let mut bounds: Vec<usize> = (0..=token.len()).collect();
        loop {
            let mut best: Option<(usize, u32)> = None;
            for i in 0..bounds.len().saturating_sub(2) {
                if let Some(&r) = self.index.get(&token[bounds[i]..bounds[i + 2]]) {
                    if best.is_none_or(|(_, b)| r < b) {
                        best = Some((i, r));
                    }
                }
            }
            match best {
                Some((i, r)) if max_rank.is_none_or(|m| r < m) => {
                    bounds.remove(i + 1);
                }
                _ => break,
            }
        }
        bounds.windows(2).map(|w| &token[w[0]..w[1]]).collect()
    }

    /// tiktoken's `encode_ordinary`: split by `pattern`, each piece its rank when it is a token,
    /// else its byte-pair merges.
    pub fn encode_ordinary(&self, pattern: &fancy_regex::Regex, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for m in pattern.find_iter(text) {
            let m = m.map_err(|e| {
                Error::Unsupported(format!("the tiktoken split pattern failed: {e}"))
            })?;
            let piece = m.as_str().as_bytes();
            if let Some(&r) = self.index.get(piece) {
                ids.push(r);
                continue;
            }
            for part in self.bpe(piece, None) {
                let r = self.index.get(part).ok_or_else(|| {
                    Error::Unsupported(format!(
                        "the tiktoken vocabulary cannot encode the bytes {part:?} (a single byte is missing from the ranks)"
                    ))
                })?;
                ids.push(*r);
            }
        }
        Ok(ids)
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others are shifted to
/// U+0100 and up in byte order.
fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable = matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
        out[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap()
        };
    }
    out
}

/// `QwenModel.token_bytes_to_string`.
pub fn token_bytes_to_string(map: &[char; 256], bytes: &[u8]) -> String {
    bytes.iter().map(|&b| map[b as usize]).collect()
}

/// The pre-tokenizer fingerprint: sha256 of Python's `str(ids)` for the tokenizer's encoding
/// of the probe text (NFC first when the scheme says so). The probe has no special token, so
/// `allowed_special="all"` changes nothing; no BOS/EOS is added (transformers' default for a
/// slow tokenizer without a special-token pattern).
pub fn pre_tokenizer_hash(ranks: &Ranks, scheme: &TiktokenScheme) -> Result<String> {
    let pattern = fancy_regex::Regex::new(scheme.pattern).map_err(|e| {
        Error::Unsupported(format!("tiktoken split pattern {:?}: {e}", scheme.pattern))
    })?;
    let text = if scheme.nfc {
        let mut n = NormalizedString::from(CHECK_TEXT);
        n.nfc();
        n.get().to_string()
    } else {
        CHECK_TEXT.to_string()
    };
    let ids: Vec<String> = ranks
        .encode_ordinary(&pattern, &text)?
        .iter()
        .map(u32::to_string)
        .collect();
    Ok(hex(&Sha256::digest(
        format!("[{}]", ids.join(", ")).as_bytes(),
    )))
}

/// The converter's tiktoken branch (Hunyuan's `set_vocab` without tokenizer.json): model
/// "gpt2", the pre-tokenizer, tokens (ranks then special tokens, `[PAD{i}]` for ids neither
/// covers), types (special tokens CONTROL), merges, then `SpecialVocab` without merges.
pub fn write(
    dir: &Path,
    scheme: &TiktokenScheme,
    vocab_size: usize,
    pre_override: Option<&str>,
    kv: &mut KvList,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let path = dir.join(scheme.file);
    if !path.is_file() {
        return Err(Error::Unsupported(format!(
            "{}: neither tokenizer.json nor {} is present",
            dir.display(),
            scheme.file
        )));
    }
    let ranks = Ranks::load(&path)?;
    let specials = scheme.special_tokens(ranks.tokens.len());
    let n_vocab = ranks.tokens.len() + specials.len();
    if n_vocab != vocab_size {
        return Err(Error::invalid(
            &path,
            format!(
                "{} tokens and {} special tokens make {n_vocab}, but config.json vocab_size is {vocab_size} (the converter requires them equal)",
                ranks.tokens.len(),
                specials.len()
            ),
        ));
    }
    let hash = pre_tokenizer_hash(&ranks, scheme)?;
    let pre = resolve_pre(&hash, pre_override, &path)?;
    let chars = byte_chars();
    let mut merges = Vec::new();
    // {**vocab, **special_tokens}: a special token spelled like a rank token takes its entry.
    let mut by_text: Vec<(String, u32)> = Vec::with_capacity(n_vocab);
    let mut pos: HashMap<String, usize> = HashMap::with_capacity(n_vocab);
    for (rank, token) in ranks.tokens.iter().enumerate() {
        let text = token_bytes_to_string(&chars, token);
        if token.len() > 1 {
            let parts = ranks.bpe(token, Some(rank as u32));
            if let [a, b] = parts.as_slice() {
                merges.push(format!(
                    "{} {}",
                    token_bytes_to_string(&chars, a),
                    token_bytes_to_string(&chars, b)
                ));
            }
        }
        pos.insert(text.clone(), by_text.len());
        by_text.push((text, rank as u32));
    }
    for (text, id) in &specials {
        match pos.get(text) {
            Some(&i) => by_text[i].1 = *id,
            None => {
                pos.insert(text.clone(), by_text.len());
                by_text.push((text.clone(), *id));
            }
        }
    }
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut types = vec![TokenType::Unused; vocab_size];
    for (text, id) in by_text {
        tokens[id as usize] = text;
        types[id as usize] = TokenType::Normal;
    }
    for (_, id) in &specials {
        types[*id as usize] = TokenType::Control;
    }
    kv.string("tokenizer.ggml.model", "gpt2");
    kv.string("tokenizer.ggml.pre", &pre);
    kv.array("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
    kv.array("tokenizer.ggml.token_type", type_array(&types));
    kv.array("tokenizer.ggml.merges", GgufValue::string_array(merges));
    let special = SpecialVocab::load(dir, false, None)?;
    warnings.extend(special.warnings.iter().cloned());
    special.write(kv);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(tokens: &[&[u8]]) -> Ranks {
        let tokens: Vec<Vec<u8>> = tokens.iter().map(|t| t.to_vec()).collect();
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ranks { tokens, index }
    }

    #[test]
    fn byte_map_is_gpt2s() {
        let m = byte_chars();
        assert_eq!(m[b'!' as usize], '!');
        assert_eq!(m[b' ' as usize], '\u{120}');
        assert_eq!(m[b'\n' as usize], '\u{10a}');
        assert_eq!(m[0xad], '\u{143}');
        assert_eq!(m[0], '\u{100}');
    }

    #[test]
    fn bpe_merges_lowest_rank_first_and_stops_at_max_rank() {
        let r = ranks(&[b"a", b"b", b"c", b"bc", b"ab", b"abc"]);
        // "bc" (3) before "ab" (4); then "a"+"bc" = "abc" (5).
        assert_eq!(r.bpe(b"abc", None), vec![&b"abc"[..]]);
        assert_eq!(r.bpe(b"abc", Some(5)), vec![&b"a"[..], &b"bc"[..]]);
        assert_eq!(
            r.bpe(b"abc", Some(3)),
            vec![&b"a"[..], &b"b"[..], &b"c"[..]]
        );
    }

    #[test]
    fn special_tokens_follow_the_ranks() {
        let s = TiktokenScheme {
            file: "x",
            pattern: ".",
            named: &["<a>"],
            extras: ("<e", ">", 2),
            nfc: false,
        };
        assert_eq!(
            s.special_tokens(10),
            vec![("<a>".into(), 10), ("<e0>".into(), 11), ("<e1>".into(), 12)]
        );
    }

    #[test]
    fn ranks_skip_repeated_tokens_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.tiktoken");
        std::fs::write(&p, "YQ== 0\nYg== 1\nYQ== 2\nYWI= 3\n").unwrap();
        let r = Ranks::load(&p).unwrap();
        assert_eq!(r.tokens, vec![b"a".to_vec(), b"b".to_vec(), b"ab".to_vec()]);
        std::fs::write(&p, "YQ== 0\n\nYg== 1\n").unwrap();
        let e = Ranks::load(&p).err().unwrap().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
