//! `general.*` metadata as gguf-py's `Metadata` derives it: model name and size label from the
//! config's `_name_or_path` or the folder name (the "model id" heuristics), sampling defaults
//! from `generation_config.json`, and the size label from the parameter count.

use std::path::Path;

use ckpt_gguf::GgufValue;
use serde_json::{Map, Value};

use crate::kv::KvList;

/// The `general.*` keys of one model (or LoRA adapter), derived like gguf-py's `Metadata.load`
/// followed by the converter's defaults.
#[derive(Default, Debug, Clone)]
pub struct ModelMetadata {
    pub(crate) name: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) organization: Option<String>,
    pub(crate) finetune: Option<String>,
    pub(crate) basename: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) size_label: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) license_name: Option<String>,
    pub(crate) license_link: Option<String>,
    pub(crate) source_url: Option<String>,
    pub(crate) source_doi: Option<String>,
    pub(crate) source_uuid: Option<String>,
    pub(crate) source_repo_url: Option<String>,
    /// Entries of `base_model` / `datasets`: (field, value) pairs in gguf-py's field order.
    pub(crate) base_models: Option<Vec<Vec<(&'static str, String)>>>,
    pub(crate) datasets: Option<Vec<Vec<(&'static str, String)>>>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) languages: Option<Vec<String>>,
    sampling: Vec<(&'static str, GgufValue)>,
    pub(crate) warnings: Vec<String>,
}

/// Parts of a Hugging Face style id `org/Name-7B-Instruct-v0.2`.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct IdComponents {
    pub(crate) full_name: Option<String>,
    pub(crate) org: Option<String>,
    pub(crate) basename: Option<String>,
    pub(crate) finetune: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) size_label: Option<String>,
}

fn card_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn card_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}

/// `base_model` / `datasets` entries as the converter expands them.
fn source_entries(
    values: Vec<Value>,
    total_params: i64,
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for v in values {
        let Value::String(id) = v else {
            warnings.push(format!(
                "model card {what} entry {v} is not a plain id; skipped"
            ));
            continue;
        };
        let mut e: Vec<(&'static str, String)> = Vec::new();
        let is_url = ["http://", "https://", "ssh://"]
            .iter()
            .any(|p| id.starts_with(p));
        // A Hugging Face id, given directly or as https://huggingface.co/<org>/<name>.
        let hf_id = if is_url {
            e.push(("repo_url", id.clone()));
            id.strip_prefix("https://huggingface.co/")
                .or_else(|| id.strip_prefix("http://huggingface.co/"))
                .filter(|r| r.split('/').count() == 2 && r.split('/').all(|p| !p.is_empty()))
                .map(str::to_string)
        } else {
            Some(id.clone())
        };
        if let Some(hf) = hf_id {
            let c = id_components(&hf, total_params);
            if let Some(n) = &c.full_name {
                e.push(("name", id_to_title(n)));
            }
            if let Some(o) = &c.org {
                e.push(("organization", id_to_title(o)));
            }
            if let Some(v) = &c.version {
                e.push(("version", v.clone()));
            }
            if let (false, Some(o), Some(n)) = (is_url, &c.org, &c.full_name) {
                e.push(("repo_url", format!("https://huggingface.co/{o}/{n}")));
            }
        }
        // gguf-py writes the fields in a fixed order.
        let order = [
            "name",
            "author",
            "version",
            "organization",
            "description",
            "url",
            "doi",
            "uuid",
            "repo_url",
        ];
        e.sort_by_key(|(k, _)| order.iter().position(|o| o == k));
        out.push(e);
    }
    out
}

impl ModelMetadata {
    /// Derives the metadata of the model folder `model_dir` from its `README.md` model card,
    /// its `config` (config.json's object), its `generation_config.json` object and its
    /// parameter count (which gives `general.size_label` when the name has none). Never fails:
    /// what cannot be read is skipped, or noted among the warnings the conversion reports.
    pub fn derive(
        model_dir: &Path,
        config: &Map<String, Value>,
        generation: Option<&Map<String, Value>>,
        total_params: u64,
    ) -> ModelMetadata {
        Self::derive_with_experts(model_dir, config, generation, total_params, None)
    }

    /// [`derive`](Self::derive) for a LoRA adapter: gguf-py is given the negated parameter
    /// count of the matrices the adapter changes (`-total`), so size labels in the folder name
    /// are kept unless much smaller, a `lora` part is not a finetune name, and no size label
    /// is made up from the count.
    pub(crate) fn derive_adapter(
        adapter_dir: &Path,
        config: &Map<String, Value>,
        generation: Option<&Map<String, Value>>,
        total_params: u64,
    ) -> ModelMetadata {
        Self::derive_signed(
            adapter_dir,
            config,
            generation,
            -(total_params.min(i64::MAX as u64) as i64),
            None,
        )
    }

    /// [`derive`](Self::derive) for a model with stacked experts: `experts` is gguf-py's
    /// (shared params, params of one expert, expert count), whose default size label is
    /// `{count}x{shared + one expert}`.
    pub(crate) fn derive_with_experts(
        model_dir: &Path,
        config: &Map<String, Value>,
        generation: Option<&Map<String, Value>>,
        total_params: u64,
        experts: Option<(u64, u64, u64)>,
    ) -> ModelMetadata {
        Self::derive_signed(
            model_dir,
            config,
            generation,
            total_params.min(i64::MAX as u64) as i64,
            experts,
        )
    }

    fn derive_signed(
        model_dir: &Path,
        config: &Map<String, Value>,
        generation: Option<&Map<String, Value>>,
        total_params: i64,
        experts: Option<(u64, u64, u64)>,
    ) -> ModelMetadata {
        let mut md = ModelMetadata::default();
        if let Ok(card) = ckpt_core::hf::read_side_text(&model_dir.join("README.md")) {
            if let Some(fm) = crate::model_card::parse(&card) {
                md.apply_card(&fm, total_params);
            }
        }
        if let Some(Value::String(id)) = config.get("_name_or_path") {
            if id.matches('/').count() <= 1 {
                md.fill_from_id(id, total_params);
            }
        }
        let folder = model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        md.fill_from_id(&folder, total_params);
        if md.name.is_none() {
            md.name = Some(folder);
        }
        if md.size_label.is_none() && total_params > 0 {
            md.size_label = Some(match experts {
                Some((shared, expert, count)) if count > 0 => {
                    format!("{count}x{}", size_label(shared + expert))
                }
                _ => size_label(total_params as u64),
            });
        }
        if let Some(gen) = generation {
            md.sampling = sampling_keys(gen);
        }
        md
    }

    fn apply_card(&mut self, fm: &crate::model_card::FrontMatter, total_params: i64) {
        let card = &fm.values;
        for key in &fm.skipped {
            if [
                "base_model",
                "base_models",
                "base_model_sources",
                "datasets",
                "dataset",
                "dataset_sources",
                "tags",
                "language",
                "languages",
                "license",
            ]
            .contains(&key.as_str())
            {
                self.warnings.push(format!("README.md: model card key {key} has a structure ckpt does not read; it is not exported"));
            }
        }
        let rules: [(&str, &str); 27] = [
            ("name", "name"),
            ("author", "author"),
            ("version", "version"),
            ("organization", "organization"),
            ("description", "description"),
            ("finetune", "finetune"),
            ("basename", "basename"),
            ("size_label", "size_label"),
            ("source_url", "url"),
            ("source_doi", "doi"),
            ("source_uuid", "uuid"),
            ("source_repo_url", "repo_url"),
            ("name", "model_name"),
            ("author", "model_author"),
            ("version", "model_version"),
            ("organization", "model_organization"),
            ("description", "model_description"),
            ("finetune", "model_finetune"),
            ("basename", "model_basename"),
            ("size_label", "model_size_label"),
            ("source_url", "model_url"),
            ("source_doi", "model_doi"),
            ("source_uuid", "model_uuid"),
            ("source_repo_url", "model_repo_url"),
            ("name", "model_name"),
            ("author", "model_creator"),
            ("basename", "model_type"),
        ];
        for (field, key) in rules {
            let Some(v) = card.get(key) else { continue };
            let slot = match field {
                "name" => &mut self.name,
                "author" => &mut self.author,
                "version" => &mut self.version,
                "organization" => &mut self.organization,
                "description" => &mut self.description,
                "finetune" => &mut self.finetune,
                "basename" => &mut self.basename,
                "size_label" => &mut self.size_label,
                "source_url" => &mut self.source_url,
                "source_doi" => &mut self.source_doi,
                "source_uuid" => &mut self.source_uuid,
                _ => &mut self.source_repo_url,
            };
            fill(slot, card_string(v));
        }
        if let Some(v) = card
            .get("base_model")
            .or_else(|| card.get("base_models"))
            .or_else(|| card.get("base_model_sources"))
        {
            let entries = source_entries(
                card_list(Some(v)),
                total_params,
                "base_model",
                &mut self.warnings,
            );
            self.base_models
                .get_or_insert_with(Vec::new)
                .extend(entries);
        } else if ["base_model", "base_models", "base_model_sources"]
            .iter()
            .any(|k| card.contains_key(*k))
        {
            self.base_models.get_or_insert_with(Vec::new);
        }
        if let Some(v) = card
            .get("datasets")
            .or_else(|| card.get("dataset"))
            .or_else(|| card.get("dataset_sources"))
        {
            let entries = source_entries(
                card_list(Some(v)),
                total_params,
                "datasets",
                &mut self.warnings,
            );
            self.datasets.get_or_insert_with(Vec::new).extend(entries);
        }
        fill(
            &mut self.license,
            card.get("license").and_then(|v| match v {
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(card_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => card_string(other),
            }),
        );
        fill(
            &mut self.license_name,
            card.get("license_name").and_then(card_string),
        );
        fill(
            &mut self.license_link,
            card.get("license_link").and_then(card_string),
        );
        for (key, list) in [
            ("tags", 0),
            ("pipeline_tag", 0),
            ("languages", 1),
            ("language", 1),
        ] {
            let Some(v) = card.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let target = if list == 0 {
                &mut self.tags
            } else {
                &mut self.languages
            };
            let items: Vec<String> = card_list(Some(v)).iter().filter_map(card_string).collect();
            target.get_or_insert_with(Vec::new).extend(items);
        }
    }

    fn fill_from_id(&mut self, id: &str, total_params: i64) {
        let c = id_components(id, total_params);
        fill(&mut self.name, c.full_name.map(|n| id_to_title(&n)));
        fill(&mut self.organization, c.org.map(|o| id_to_title(&o)));
        fill(&mut self.basename, c.basename);
        fill(&mut self.finetune, c.finetune);
        fill(&mut self.version, c.version);
        fill(&mut self.size_label, c.size_label);
    }

    /// Writes the keys in `Metadata.set_gguf_meta_model` order.
    pub fn write(&self, kv: &mut KvList) {
        for (key, value) in &self.sampling {
            kv.set(key, value.clone());
        }
        let strings = [
            ("general.name", &self.name),
            ("general.author", &self.author),
            ("general.version", &self.version),
            ("general.organization", &self.organization),
            ("general.finetune", &self.finetune),
            ("general.basename", &self.basename),
            ("general.description", &self.description),
            ("general.size_label", &self.size_label),
            ("general.license", &self.license),
            ("general.license.name", &self.license_name),
            ("general.license.link", &self.license_link),
            ("general.source.url", &self.source_url),
            ("general.source.doi", &self.source_doi),
            ("general.source.uuid", &self.source_uuid),
            ("general.source.repo_url", &self.source_repo_url),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                kv.string(key, v);
            }
        }
        for (prefix, list) in [
            ("general.base_model", &self.base_models),
            ("general.dataset", &self.datasets),
        ] {
            if let Some(entries) = list {
                kv.u32(&format!("{prefix}.count"), entries.len() as u32);
                for (i, e) in entries.iter().enumerate() {
                    for (field, value) in e {
                        kv.string(&format!("{prefix}.{i}.{field}"), value);
                    }
                }
            }
        }
        if let Some(tags) = &self.tags {
            kv.array(
                "general.tags",
                GgufValue::string_array(tags.iter().cloned()),
            );
        }
        if let Some(langs) = &self.languages {
            kv.array(
                "general.languages",
                GgufValue::string_array(langs.iter().cloned()),
            );
        }
    }
}

fn fill(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// generation_config.json keys that become `general.sampling.*` (in gguf-py's order).
fn sampling_keys(gen: &Map<String, Value>) -> Vec<(&'static str, GgufValue)> {
    enum Kind {
        Str,
        Int,
        Float,
    }
    let table: [(&[&str], &'static str, Kind); 12] = [
        (&["sequence"], "general.sampling.sequence", Kind::Str),
        (&["top_k"], "general.sampling.top_k", Kind::Int),
        (&["top_p"], "general.sampling.top_p", Kind::Float),
        (&["min_p"], "general.sampling.min_p", Kind::Float),
        (
            &["xtc_probability"],
            "general.sampling.xtc_probability",
            Kind::Float,
        ),
        (
            &["xtc_threshold"],
            "general.sampling.xtc_threshold",
            Kind::Float,
        ),
        (&["temperature"], "general.sampling.temp", Kind::Float),
        (
            &["penalty_last_n"],
            "general.sampling.penalty_last_n",
            Kind::Int,
        ),
        (
            &["penalty_repeat", "repetition_penalty"],
            "general.sampling.penalty_repeat",
            Kind::Float,
        ),
        (&["mirostat"], "general.sampling.mirostat", Kind::Int),
        (
            &["mirostat_tau"],
            "general.sampling.mirostat_tau",
            Kind::Float,
        ),
        (
            &["mirostat_eta"],
            "general.sampling.mirostat_eta",
            Kind::Float,
        ),
    ];
    let mut out = Vec::new();
    for (keys, gguf_key, kind) in table {
        let Some(v) = keys
            .iter()
            .find_map(|k| gen.get(*k))
            .filter(|v| !v.is_null())
        else {
            continue;
        };
        let value = match kind {
            Kind::Str => v.as_str().map(GgufValue::string),
            Kind::Int => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(GgufValue::I32),
            Kind::Float => v.as_f64().map(|f| GgufValue::F32(f as f32)),
        };
        if let Some(value) = value {
            out.push((gguf_key, value));
        }
    }
    out
}

/// gguf-py's `model_weight_count_rounded_notation(n, min_digits=2)`.
pub(crate) fn size_label(params: u64) -> String {
    let n = params as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let rounded = python_round(scaled).to_string();
    let digits = rounded.trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// Python's round() to an integer: ties to even.
fn python_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// gguf-py's `Metadata.id_to_title`.
pub(crate) fn id_to_title(s: &str) -> String {
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if is_lower(w) && !is_version_or_number(w) {
                title(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_lower(w: &str) -> bool {
    w.chars().any(|c| c.is_lowercase() || c.is_uppercase()) && !w.chars().any(|c| c.is_uppercase())
}

/// `^(v\d+(?:\.\d+)*|\d.*)$`
fn is_version_or_number(w: &str) -> bool {
    if w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return true;
    }
    match w.strip_prefix('v') {
        Some(rest) => dotted_digits(rest),
        None => false,
    }
}

fn dotted_digits(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Python's str.title(): a cased character after an uncased one starts a word.
fn title(w: &str) -> String {
    let mut out = String::new();
    let mut prev_cased = false;
    for c in w.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased && !prev_cased {
            out.extend(c.to_uppercase());
        } else if cased {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

#[derive(Default, Clone)]
struct Tags {
    basename: bool,
    size_label: bool,
    finetune: bool,
    version: bool,
    kind: bool,
}

impl Tags {
    fn is_empty(&self) -> bool {
        !(self.basename || self.size_label || self.finetune || self.version || self.kind)
    }
    fn count(&self) -> usize {
        [
            self.basename,
            self.size_label,
            self.finetune,
            self.version,
            self.kind,
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// gguf-py's `Metadata.get_model_id_components` (the tests compare it with gguf-py's).
#[cfg(test)]
pub(crate) fn model_id_components(model_id: &str, total_params: u64) -> IdComponents {
    id_components(model_id, total_params.min(i64::MAX as u64) as i64)
}

/// `model_id_components` with gguf-py's signed count (negative for a LoRA adapter).
fn id_components(model_id: &str, total_params: i64) -> IdComponents {
    if model_id.contains(' ') {
        return IdComponents {
            full_name: Some(model_id.to_string()),
            ..Default::default()
        };
    }
    let (mut org, full) = match model_id.split_once('/') {
        Some((o, n)) => (Some(o.to_string()), n.to_string()),
        None => (None, model_id.to_string()),
    };
    if org.as_deref().is_some_and(|o| o.starts_with('.')) {
        org = None;
    }
    let mut parts: Vec<String> = full
        .split('-')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut tags = vec![Tags::default(); parts.len()];
    for i in 0..parts.len() {
        let part = parts[i].clone();
        if is_version(&part) {
            tags[i].version = true;
        } else if is_quant_type(&part) {
            tags[i].kind = true;
            parts[i] = part.to_uppercase();
        } else if i > 0 && is_size(&part) {
            let mut p = part.replace('_', ".");
            let chars: Vec<char> = p.chars().collect();
            if chars.last().is_some_and(|c| c.is_ascii_digit()) && chars.len() >= 2 {
                // bloom-7b1 -> 7.1B
                let n = chars.len();
                p = format!(
                    "{}.{}{}",
                    chars[..n - 2].iter().collect::<String>(),
                    chars[n - 1],
                    chars[n - 2]
                );
            }
            let chars: Vec<char> = p.chars().collect();
            if chars.len() > 1
                && chars[chars.len() - 2].is_ascii_digit()
                && "kmbt".contains(chars[chars.len() - 1])
            {
                let n = chars.len();
                p = format!(
                    "{}{}",
                    chars[..n - 1].iter().collect::<String>(),
                    chars[n - 1].to_ascii_uppercase()
                );
            }
            if total_params != 0 {
                let chars: Vec<char> = p.chars().collect();
                let head: String = chars[..chars.len() - 1].iter().collect();
                if let Ok(v) = head.parse::<f64>() {
                    let scale = " KMBT"
                        .find(chars[chars.len() - 1])
                        .map(|i| 1000f64.powi(i as i32))
                        .unwrap_or(1.0 / 1000.0);
                    let label = v * scale;
                    let total = total_params as f64;
                    let far = if total_params < 0 {
                        label < (total_params.unsigned_abs() / 8) as f64
                    } else {
                        (label - total).abs() > (7 * total_params / 8) as f64
                    };
                    if far {
                        tags[i].finetune = true;
                        let n = chars.len();
                        p = format!("{}{}", head, chars[n - 1].to_lowercase());
                    }
                }
            }
            if tags[i].is_empty() {
                tags[i].size_label = true;
            }
            parts[i] = p;
        } else if i > 0
            && ["chat", "instruct", "vision", "lora"].contains(&part.to_lowercase().as_str())
        {
            if total_params < 0 && part.eq_ignore_ascii_case("lora") {
                // a redundant "lora" in an adapter's name
                tags[i].kind = true;
            } else {
                tags[i].finetune = true;
            }
        }
    }
    let numeric_size = parts
        .iter()
        .zip(&tags)
        .any(|(p, t)| t.size_label && p.chars().any(|c| c.is_ascii_digit()));
    if numeric_size {
        for (p, t) in parts.iter().zip(tags.iter_mut()) {
            if t.size_label && p.chars().all(char::is_alphabetic) {
                t.size_label = false;
            }
        }
    }
    let mut at_start = true;
    for (p, t) in parts.iter().zip(tags.iter_mut()) {
        if at_start
            && ((t.is_empty() && p.chars().next().is_some_and(char::is_alphabetic)) || t.version)
        {
            t.basename = true;
        } else {
            at_start = false;
            if t.is_empty() {
                t.finetune = true;
            }
        }
    }
    for t in tags.iter_mut().rev() {
        if t.basename && t.count() > 1 {
            t.basename = false;
        } else {
            break;
        }
    }
    let join = |f: &dyn Fn(&Tags) -> bool| {
        let v: Vec<&str> = parts
            .iter()
            .zip(&tags)
            .filter(|(_, t)| f(t))
            .map(|(p, _)| p.as_str())
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(v.join("-"))
        }
    };
    let mut basename = join(&|t| t.basename);
    let size_label = {
        let mut seen: Vec<&str> = Vec::new();
        for (p, t) in parts.iter().zip(&tags) {
            if t.size_label && !seen.contains(&p.as_str()) {
                seen.push(p);
            }
        }
        if seen.is_empty() {
            None
        } else {
            Some(seen.join("-"))
        }
    };
    let finetune = join(&|t| t.finetune);
    let version = join(&|t| t.version && !t.basename);
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    IdComponents {
        full_name: Some(full),
        org,
        basename,
        finetune,
        version,
        size_label,
    }
}

/// `(v|iter)?\d+([.]\d+)*`, case-insensitive.
fn is_version(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    let rest = l
        .strip_prefix("iter")
        .or_else(|| l.strip_prefix('v'))
        .unwrap_or(&l);
    dotted_digits(rest)
}

/// `i?q\d(_\w)*|b?fp?(16|32)`, case-insensitive.
fn is_quant_type(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    let q = l.strip_prefix('i').unwrap_or(&l);
    if let Some(rest) = q.strip_prefix('q') {
        let mut chars = rest.chars();
        if chars.next().is_some_and(|c| c.is_ascii_digit()) {
            let tail: String = chars.collect();
            // (_\w)* : pairs of '_' followed by one word character
            let b: Vec<char> = tail.chars().collect();
            if b.len().is_multiple_of(2)
                && b.chunks(2)
                    .all(|c| c[0] == '_' && (c[1].is_alphanumeric() || c[1] == '_'))
            {
                return true;
            }
        }
    }
    let f = l.strip_prefix('b').unwrap_or(&l);
    let f = match f.strip_prefix('f') {
        Some(r) => r,
        None => return false,
    };
    let f = f.strip_prefix('p').unwrap_or(f);
    f == "16" || f == "32"
}

/// `(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)`, case-insensitive.
fn is_size(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    if ["small", "mini", "medium", "large", "xl", "xxl"].contains(&l.as_str()) {
        return true;
    }
    let b = l.as_bytes();
    // Try each way the optional prefix can match, then the numeric body.
    let mut starts = vec![0usize];
    if b.first() == Some(&b'a') {
        starts.push(1);
    }
    let digits_end = |from: usize| {
        (from..b.len())
            .find(|&i| !b[i].is_ascii_digit())
            .unwrap_or(b.len())
    };
    let d = digits_end(0);
    if d > 0 && b.get(d) == Some(&b'x') {
        starts.push(d + 1);
    }
    starts.into_iter().any(|s| size_body(&b[s..]))
}

fn size_body(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == 0 {
        return false;
    }
    let try_rest = |j: usize| -> bool {
        if j < b.len() && b"kmbt".contains(&b[j]) {
            let r = &b[j + 1..];
            r.is_empty() || (r.len() == 1 && r[0].is_ascii_digit())
        } else {
            false
        }
    };
    if try_rest(i) {
        return true;
    }
    if i < b.len() && (b[i] == b'.' || b[i] == b'_') {
        let mut j = i + 1;
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > start && try_rest(j) {
            return true;
        }
    }
    // a greedy digit run may have swallowed the optional trailing digit: 7b1 is handled above,
    // but "1b5" style already passes; nothing else to try.
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(id_to_title("tiny-llama-spm"), "Tiny Llama Spm");
        let c = model_id_components("tiny-llama-spm", 3_410_176);
        assert_eq!(c.basename, None);
        assert_eq!(c.size_label, None);
        let c = model_id_components("meta-llama/Llama-2-7b-chat-hf", 6_738_415_616);
        assert_eq!(c.org.as_deref(), Some("meta-llama"));
        assert_eq!(c.basename.as_deref(), Some("Llama-2"));
        assert_eq!(c.size_label.as_deref(), Some("7B"));
        assert_eq!(c.finetune.as_deref(), Some("chat-hf"));
        assert_eq!(id_to_title("Llama-2-7b-chat-hf"), "Llama 2 7b Chat Hf");
    }

    #[test]
    fn model_card_keys() {
        let dir = std::env::temp_dir().join(format!("ckpt-model-card-{}", std::process::id()));
        let dir = dir.join("Tiny-Chat-v1.5");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("README.md"),
            "---\nlicense: mit\nbase_model: Org/Base-1B\nlanguage:\n- en\ntags:\n- chat\npipeline_tag: text-generation\n---\n",
        )
        .unwrap();
        let md = ModelMetadata::derive(&dir, &Map::new(), None, 1_000_000_000);
        let mut kv = KvList::new();
        md.write(&mut kv);
        let keys: Vec<&str> = kv.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.name",
                "general.version",
                "general.finetune",
                "general.basename",
                "general.size_label",
                "general.license",
                "general.base_model.count",
                "general.base_model.0.name",
                "general.base_model.0.organization",
                "general.base_model.0.repo_url",
                "general.tags",
                "general.languages"
            ]
        );
        assert_eq!(
            kv.get("general.base_model.0.repo_url"),
            Some(&GgufValue::string("https://huggingface.co/Org/Base-1B"))
        );
        assert_eq!(
            kv.get("general.tags"),
            Some(&GgufValue::string_array(["chat", "text-generation"]))
        );
        assert_eq!(
            kv.get("general.name"),
            Some(&GgufValue::string("Tiny Chat v1.5"))
        );
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(3_410_176), "3.4M");
        assert_eq!(size_label(393_808), "394K");
        assert_eq!(size_label(6_738_415_616), "6.7B");
        assert_eq!(size_label(134_515_008), "135M");
    }

    /// Expected values printed by gguf-py 0.19.0's `Metadata.get_model_id_components`,
    /// `Metadata.id_to_title` and `size_label`.
    #[test]
    fn agrees_with_gguf_py_heuristics() {
        let cases: &[(&str, u64, [Option<&str>; 6], &str)] = &[
            (
                "tiny-llama-spm",
                3410176,
                [Some("tiny-llama-spm"), None, None, None, None, None],
                "Tiny Llama Spm",
            ),
            (
                "meta-llama/Llama-2-7b-chat-hf",
                6738415616,
                [
                    Some("Llama-2-7b-chat-hf"),
                    Some("meta-llama"),
                    Some("Llama-2"),
                    Some("chat-hf"),
                    None,
                    Some("7B"),
                ],
                "Llama 2 7b Chat Hf",
            ),
            (
                "Qwen/Qwen2.5-0.5B-Instruct",
                494032768,
                [
                    Some("Qwen2.5-0.5B-Instruct"),
                    Some("Qwen"),
                    Some("Qwen2.5"),
                    Some("Instruct"),
                    None,
                    Some("0.5B"),
                ],
                "Qwen2.5 0.5B Instruct",
            ),
            (
                "mistralai/Mistral-7B-Instruct-v0.3",
                7248023552,
                [
                    Some("Mistral-7B-Instruct-v0.3"),
                    Some("mistralai"),
                    Some("Mistral"),
                    Some("Instruct"),
                    Some("v0.3"),
                    Some("7B"),
                ],
                "Mistral 7B Instruct v0.3",
            ),
            (
                "HuggingFaceTB/SmolLM2-135M",
                134515008,
                [
                    Some("SmolLM2-135M"),
                    Some("HuggingFaceTB"),
                    Some("SmolLM2"),
                    None,
                    None,
                    Some("135M"),
                ],
                "SmolLM2 135M",
            ),
            (
                "bigscience/bloom-7b1",
                7069016064,
                [
                    Some("bloom-7b1"),
                    Some("bigscience"),
                    Some("bloom"),
                    None,
                    None,
                    Some("7.1B"),
                ],
                "Bloom 7b1",
            ),
            (
                "google/gemma-2-9b-it",
                9241705984,
                [
                    Some("gemma-2-9b-it"),
                    Some("google"),
                    Some("gemma-2"),
                    Some("it"),
                    None,
                    Some("9B"),
                ],
                "Gemma 2 9b It",
            ),
            (
                "microsoft/Phi-3-mini-128k-instruct",
                3821079552,
                [
                    Some("Phi-3-mini-128k-instruct"),
                    Some("microsoft"),
                    Some("Phi-3"),
                    Some("128k-instruct"),
                    None,
                    Some("mini"),
                ],
                "Phi 3 Mini 128k Instruct",
            ),
            (
                "openai-community/gpt2",
                124439808,
                [
                    Some("gpt2"),
                    Some("openai-community"),
                    None,
                    None,
                    None,
                    None,
                ],
                "Gpt2",
            ),
            (
                "BAAI/bge-small-en-v1.5",
                33360000,
                [
                    Some("bge-small-en-v1.5"),
                    Some("BAAI"),
                    Some("bge"),
                    Some("en"),
                    Some("v1.5"),
                    Some("small"),
                ],
                "Bge Small En v1.5",
            ),
            (
                "TheBloke/Mixtral-8x7B-v0.1-GGUF",
                46702792704,
                [
                    Some("Mixtral-8x7B-v0.1-GGUF"),
                    Some("TheBloke"),
                    Some("Mixtral"),
                    Some("GGUF"),
                    Some("v0.1"),
                    Some("8x7B"),
                ],
                "Mixtral 8x7B v0.1 GGUF",
            ),
            (
                "Llama-3.1-8B-Instruct-Q4_K_M",
                8030261248,
                [
                    Some("Llama-3.1-8B-Instruct-Q4_K_M"),
                    None,
                    Some("Llama-3.1"),
                    Some("Instruct"),
                    None,
                    Some("8B"),
                ],
                "Llama 3.1 8B Instruct Q4_K_M",
            ),
        ];
        for (id, params, want, title) in cases {
            let c = model_id_components(id, *params);
            let got = [
                &c.full_name,
                &c.org,
                &c.basename,
                &c.finetune,
                &c.version,
                &c.size_label,
            ]
            .map(|v| v.as_deref());
            assert_eq!(&got, want, "{id}");
            assert_eq!(id_to_title(c.full_name.as_deref().unwrap()), *title, "{id}");
        }
        assert_eq!(size_label(3410176), "3.4M");
        assert_eq!(size_label(393808), "394K");
        assert_eq!(size_label(999999), "1000K");
        assert_eq!(size_label(1000001), "1.0M");
        assert_eq!(size_label(1500000000), "1.5B");
        assert_eq!(size_label(123), "0.12K");
        assert_eq!(size_label(7248023552), "7.2B");
        assert_eq!(size_label(46702792704), "47B");
    }
}
