//! gguf-py's `SpecialVocab`: merges, special token ids, add_bos/add_eos/add_sep flags, chat
//! template and normalizer flags gathered from tokenizer.json, tokenizer_config.json,
//! chat_template.jinja/.json and config.json, in the converter's precedence and key order.

use std::path::Path;

use ckpt_core::{Error, Result};
use ckpt_gguf::GgufValue;
use serde_json::{Map, Value};

use crate::hparams::{read_json_object, read_optional_json};
use crate::kv::KvList;

/// The special-token metadata of a tokenizer folder, as gguf-py's `SpecialVocab` gathers it.
pub struct SpecialVocab {
    pub(crate) merges: Vec<String>,
    load_merges: bool,
    n_vocab: Option<usize>,
    types: Vec<&'static str>,
    /// (type, id) in the order they were found.
    pub(crate) ids: Vec<(&'static str, u32)>,
    pub(crate) add: Vec<(&'static str, bool)>,
    pub(crate) chat_template: Option<Value>,
    lowercase: Option<bool>,
    strip_accents: Option<bool>,
    pub(crate) warnings: Vec<String>,
}

const DEFAULT_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

fn str_of<'a>(cfg: &'a Option<Map<String, Value>>, key: &str) -> Option<&'a str> {
    cfg.as_ref()?.get(key)?.as_str().filter(|s| !s.is_empty())
}

impl SpecialVocab {
    /// `SpecialVocab(dir, load_merges, n_vocab=n_vocab)` with the default token types (bos,
    /// eos, unk, sep, pad, cls, mask); ids at or above `n_vocab` are left out with a warning.
    /// Fails when one of the files cannot be read or parsed, or gives a negative token id.
    pub fn load(dir: &Path, load_merges: bool, n_vocab: Option<usize>) -> Result<SpecialVocab> {
        Self::load_with_types(dir, load_merges, n_vocab, &DEFAULT_TYPES)
    }

    /// `SpecialVocab(dir, special_token_types=types)`.
    pub(crate) fn load_with_types(
        dir: &Path,
        load_merges: bool,
        n_vocab: Option<usize>,
        types: &[&'static str],
    ) -> Result<SpecialVocab> {
        let mut sv = SpecialVocab {
            merges: Vec::new(),
            load_merges,
            n_vocab,
            types: types.to_vec(),
            ids: Vec::new(),
            add: Vec::new(),
            chat_template: None,
            lowercase: None,
            strip_accents: None,
            warnings: Vec::new(),
        };
        sv.load_tokenizer_files(dir)?;
        sv.load_config_json(dir)?;
        if sv.load_merges && sv.merges.is_empty() {
            sv.load_merges_txt(dir)?;
        }
        Ok(sv)
    }

    fn set_add(&mut self, typ: &'static str, v: bool) {
        match self.add.iter_mut().find(|(t, _)| *t == typ) {
            Some(slot) => slot.1 = v,
            None => self.add.push((typ, v)),
        }
    }

    fn add_default(&mut self, typ: &'static str, v: bool) {
        if !self.add.iter().any(|(t, _)| *t == typ) {
            self.add.push((typ, v));
        }
    }

    pub(crate) fn set_special(
        &mut self,
        typ: &'static str,
        id: Option<&Value>,
        source: &Path,
    ) -> Result<()> {
        let Some(id) = id.and_then(Value::as_i64) else {
            return Ok(());
        };
        if id < 0 {
            return Err(Error::invalid(
                source,
                format!("invalid value for special token type {typ}: {id}"),
            ));
        }
        if self.n_vocab.is_none_or(|n| (id as u64) < n as u64) {
            if !self.ids.iter().any(|(t, _)| *t == typ) {
                self.ids.push((typ, id as u32));
            }
        } else {
            self.warnings.push(format!(
                "special token type {typ}, id {id} out of range, must be under {} - skipping",
                self.n_vocab.unwrap()
            ));
        }
        Ok(())
    }

    fn parse_normalizer(&mut self, n: &Value) {
        match n.get("type").and_then(Value::as_str) {
            Some("Lowercase") => self.lowercase = Some(true),
            Some("StripAccents") => self.strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(v) = n.get("lowercase") {
                    self.lowercase = v.as_bool();
                }
                if let Some(v) = n.get("strip_accents") {
                    self.strip_accents = v.as_bool();
                }
            }
            Some("Sequence") => {
                for sub in n
                    .get("normalizers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.parse_normalizer(sub);
                }
            }
            _ => {}
        }
    }

    fn load_tokenizer_files(&mut self, dir: &Path) -> Result<()> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = read_optional_json(&tokenizer_path)?;
        let mut added_tokens: Vec<Value> = Vec::new();
        if let Some(tok) = &tokenizer {
            if self.load_merges {
                if let Some(Value::Array(merges)) = tok.get("model").and_then(|m| m.get("merges")) {
                    self.merges = convert_merges(merges, &tokenizer_path)?;
                }
            }
            if let Some(n) = tok.get("normalizer").filter(|n| !n.is_null()) {
                self.parse_normalizer(n);
            }
            if let Some(Value::Array(a)) = tok.get("added_tokens") {
                added_tokens = a.clone();
            }
        }
        let config_path = dir.join("tokenizer_config.json");
        let mut config = read_optional_json(&config_path)?;
        if let Some(tok) = &tokenizer {
            self.read_post_processor(tok, &mut config);
        }
        let Some(config) = config.filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        self.chat_template = load_chat_template(dir, &config)?;
        let types = self.types.clone();
        for typ in types {
            if let Some(Value::Bool(b)) = config.get(&format!("add_{typ}_token")) {
                match self.add.iter().find(|(t, _)| *t == typ) {
                    None => self.add.push((typ, *b)),
                    Some((_, v)) if v != b => self.warnings.push(format!(
                        "tokenizer_config add_{typ}_token({b}) disagrees with the tokenizer post_processor ({v}); using the latter"
                    )),
                    _ => {}
                }
            }
            let content = match config.get(&format!("{typ}_token")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Value::as_str) == Some(&content))
                .and_then(|a| a.get("id"))
                .cloned();
            self.set_special(typ, id.as_ref(), &config_path)?;
        }
        Ok(())
    }

    /// The converter's crude reading of the post-processor (ByteLevel, RobertaProcessing,
    /// TemplateProcessing), which may also rewrite bos/eos/cls/sep entries of tokenizer_config.
    fn read_post_processor(
        &mut self,
        tok: &Map<String, Value>,
        config: &mut Option<Map<String, Value>>,
    ) {
        let Some(pp) = tok.get("post_processor").filter(|p| !p.is_null()) else {
            return;
        };
        let has_config = config.as_ref().is_some_and(|c| !c.is_empty());
        let mut bos = str_of(config, "bos_token").map(str::to_string);
        let mut cls = str_of(config, "cls_token").map(str::to_string);
        let mut eos = str_of(config, "eos_token").map(str::to_string);
        let mut sep = str_of(config, "sep_token").map(str::to_string);
        let set_cfg = |config: &mut Option<Map<String, Value>>, key: &str, v: &str| {
            if let Some(c) = config.as_mut().filter(|c| !c.is_empty()) {
                c.insert(key.to_string(), Value::String(v.to_string()));
            }
        };
        if bos.is_none() && cls.is_some() && has_config {
            bos = cls.clone();
            set_cfg(config, "bos_token", bos.as_deref().unwrap());
        }
        if eos.is_none() && sep.is_some() && has_config {
            eos = sep.clone();
            set_cfg(config, "eos_token", eos.as_deref().unwrap());
        }
        let processors: Vec<Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.clone(),
            None => vec![pp.clone()],
        };
        let special_id = |v: Option<&Value>| -> Option<String> {
            v.and_then(|e| e.get("SpecialToken"))
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let seq_id = |v: Option<&Value>| -> Option<String> {
            v.and_then(|e| e.get("Sequence"))
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        for p in processors {
            match p.get("type").and_then(Value::as_str) {
                Some("ByteLevel") => {
                    self.add_default("bos", false);
                    self.add_default("eos", false);
                }
                Some("RobertaProcessing") => {
                    self.set_add("bos", true);
                    self.set_add("eos", true);
                    self.set_add("sep", true);
                    if cls.is_none() && has_config {
                        cls = p
                            .get("cls")
                            .and_then(|c| c.get(0))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or(bos.clone());
                        if let Some(c) = &cls {
                            set_cfg(config, "cls_token", c);
                        }
                    }
                    if sep.is_none() && has_config {
                        sep = p
                            .get("sep")
                            .and_then(|c| c.get(0))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or(eos.clone());
                        if let Some(s) = &sep {
                            set_cfg(config, "sep_token", s);
                        }
                    }
                }
                Some("TemplateProcessing") => {
                    let single: Vec<Value> = p
                        .get("single")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let pair: Vec<Value> = p
                        .get("pair")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let mut first = None;
                    let mut last = None;
                    if single.len() > 1 {
                        first = special_id(single.first());
                        if let Some(f) = &first {
                            let known = Some(f) == bos.as_ref() || Some(f) == cls.as_ref();
                            if !has_config {
                                bos = Some(f.clone());
                            } else if !known {
                                if bos.is_none() {
                                    bos = Some(f.clone());
                                    set_cfg(config, "bos_token", f);
                                }
                                if cls.is_none() {
                                    cls = Some(f.clone());
                                    set_cfg(config, "cls_token", f);
                                }
                            }
                            let known = Some(f) == bos.as_ref() || Some(f) == cls.as_ref();
                            self.set_add("bos", known);
                        }
                        last = special_id(single.last());
                        if let Some(l) = &last {
                            if !has_config {
                                eos = Some(l.clone());
                            } else if Some(l) != eos.as_ref() {
                                if !self.types.contains(&"eot") {
                                    self.types.push("eot");
                                    if let Some(e) = &eos {
                                        set_cfg(config, "eot_token", e);
                                    }
                                } else if !self.types.contains(&"eom") {
                                    self.types.push("eom");
                                    if let Some(e) = &eos {
                                        set_cfg(config, "eom_token", e);
                                    }
                                }
                                eos = Some(l.clone());
                                set_cfg(config, "eos_token", l);
                            }
                            self.set_add("eos", Some(l) == eos.as_ref());
                        }
                    }
                    if !pair.is_empty() {
                        let start =
                            usize::from(first.is_some() && special_id(pair.first()) == first);
                        let stop_trim =
                            usize::from(last.is_some() && special_id(pair.last()) == last);
                        let inner: Vec<Value> = if pair.len() >= start + stop_trim {
                            pair[start..pair.len() - stop_trim].to_vec()
                        } else {
                            Vec::new()
                        };
                        if !inner.is_empty() {
                            let a = seq_id(inner.first());
                            let b = seq_id(inner.last());
                            if a.as_deref() == Some("A")
                                && b.as_deref() == Some("B")
                                && inner.len() > 2
                            {
                                let middle = &inner[1..inner.len() - 1];
                                let mut add_sep = false;
                                let is_sep =
                                    |s: &Option<String>| s.is_some() && (s == &sep || s == &eos);
                                let entry = special_id(middle.first());
                                if is_sep(&entry) && last.is_none() {
                                    add_sep = true;
                                }
                                if middle.len() == 2 && is_sep(&special_id(middle.get(1))) {
                                    add_sep = true;
                                }
                                self.set_add("sep", add_sep);
                                if add_sep && sep.is_none() && has_config {
                                    if let Some(e) = &eos {
                                        set_cfg(config, "sep_token", e);
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn load_config_json(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("config.json");
        let Some(config) = read_optional_json(&path)? else {
            return Ok(());
        };
        let types = self.types.clone();
        for typ in types {
            let key = format!("{typ}_token_id");
            let id = config
                .get(&key)
                .filter(|v| !v.is_null())
                .or_else(|| config.get("text_config").and_then(|t| t.get(&key)));
            self.set_special(typ, id, &path)?;
        }
        Ok(())
    }

    fn load_merges_txt(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("merges.txt");
        if !path.is_file() {
            return Ok(());
        }
        let text = ckpt_core::hf::read_side_text(&path)?;
        let mut lines = text.lines().peekable();
        if lines.peek().is_some_and(|l| l.trim().starts_with('#')) {
            lines.next();
        }
        self.merges = lines
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                (parts.len() == 2).then(|| format!("{} {}", parts[0], parts[1]))
            })
            .collect();
        Ok(())
    }

    /// Writes the keys in `SpecialVocab.add_to_gguf` order.
    pub fn write(&self, kv: &mut KvList) {
        if !self.merges.is_empty() {
            kv.array(
                "tokenizer.ggml.merges",
                GgufValue::string_array(self.merges.iter().cloned()),
            );
        }
        for (typ, id) in &self.ids {
            let key = match *typ {
                "unk" => "tokenizer.ggml.unknown_token_id".to_string(),
                "sep" => "tokenizer.ggml.seperator_token_id".to_string(),
                "pad" => "tokenizer.ggml.padding_token_id".to_string(),
                "mask" | "bos" | "eos" | "eot" | "eom" => format!("tokenizer.ggml.{typ}_token_id"),
                // gguf-py's writer has no add_<typ>_token_id for cls/prefix/suffix/middle/fsep,
                // so the converter skips them ("No handler").
                _ => continue,
            };
            kv.u32(&key, *id);
        }
        for (typ, v) in &self.add {
            if matches!(*typ, "bos" | "eos" | "sep") {
                kv.bool(&format!("tokenizer.ggml.add_{typ}_token"), *v);
            }
        }
        match &self.chat_template {
            Some(Value::String(s)) => kv.string("tokenizer.chat_template", s),
            Some(Value::Array(list)) => write_named_templates(kv, list),
            _ => {}
        }
        if let Some(v) = self.lowercase {
            kv.bool("tokenizer.ggml.normalizer.lowercase", v);
        }
        if let Some(v) = self.strip_accents {
            kv.bool("tokenizer.ggml.normalizer.strip_accents", v);
        }
    }
}

fn write_named_templates(kv: &mut KvList, list: &[Value]) {
    let mut default = None;
    let mut names: Vec<String> = Vec::new();
    for choice in list {
        let name: String = choice
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let Some(template) = choice.get("template").and_then(Value::as_str) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if name == "default" {
            default = Some(template.to_string());
        } else {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            kv.string(&format!("tokenizer.chat_template.{name}"), template);
        }
    }
    // gguf-py builds this list from a Python set, whose order is not reproducible; ckpt keeps
    // the order of the templates in the file.
    if !names.is_empty() {
        kv.array("tokenizer.chat_templates", GgufValue::string_array(names));
    }
    if let Some(t) = default {
        kv.string("tokenizer.chat_template", &t);
    }
}

fn load_chat_template(dir: &Path, config: &Map<String, Value>) -> Result<Option<Value>> {
    let jinja = dir.join("chat_template.jinja");
    let json = dir.join("chat_template.json");
    let mut alt: Option<Value> = None;
    if jinja.is_file() {
        let text = ckpt_core::hf::read_side_text(&jinja)?;
        let extra_dir = dir.join("additional_chat_templates");
        let mut extra: Vec<std::path::PathBuf> = match std::fs::read_dir(&extra_dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
                .collect(),
            Err(_) => Vec::new(),
        };
        extra.sort();
        if extra.is_empty() {
            alt = Some(Value::String(text));
        } else {
            let mut list = vec![serde_json::json!({"name": "default", "template": text})];
            for p in extra {
                let t = ckpt_core::hf::read_side_text(&p)?;
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                list.push(serde_json::json!({"name": stem, "template": t}));
            }
            alt = Some(Value::Array(list));
        }
    } else if json.is_file() {
        alt = read_json_object(&json)?.get("chat_template").cloned();
    }
    let template = match config.get("chat_template") {
        Some(v) => Some(v.clone()),
        None => alt,
    };
    Ok(template.filter(|t| t.is_string() || t.is_array()))
}

/// tokenizer.json merges: "a b" strings as they are, or [a, b] pairs joined with a space after
/// encoding literal spaces inside a part as U+0120 (what the converter does since transformers 4.45).
pub(crate) fn convert_merges(merges: &[Value], path: &Path) -> Result<Vec<String>> {
    let Some(first) = merges.first() else {
        return Ok(Vec::new());
    };
    if first.is_string() {
        return merges
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::invalid(path, "model.merges mixes strings and pairs"))
            })
            .collect();
    }
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let pair = m
                .as_array()
                .filter(|p| p.len() == 2)
                .and_then(|p| Some((p[0].as_str()?, p[1].as_str()?)));
            let (a, b) = pair.ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("model.merges[{i}] is neither a string nor a pair of strings"),
                )
            })?;
            Ok(format!(
                "{} {}",
                a.replace(' ', "\u{0120}"),
                b.replace(' ', "\u{0120}")
            ))
        })
        .collect()
}
