//! `ollama show`, `ollama list`, `ollama rm` and `ollama cp` on the store, with the fields and
//! error texts of Ollama's handlers (server/routes.go, server/images.go).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::create::Message;
use crate::error::{OllamaError, Result};
use crate::gguf_meta::{self, GgufHeader};
use crate::gojson;
use crate::modelfile::{Command, Modelfile};
use crate::name::ModelName;
use crate::store::{self, Digest, Store, StoredManifest};

/// The template Ollama uses when a model has no template layer.
pub(crate) const DEFAULT_TEMPLATE: &str = "{{ .Prompt }}";

/// `details` of `/api/tags` and `/api/show` (`api.ModelDetails`), read from the config blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelDetails {
    /// The model the weights layer was inherited from (its `from`), empty for an import.
    pub parent_model: String,
    /// `model_format` of the config (`gguf`).
    pub format: String,
    /// `model_family`: the GGUF architecture (`llama`, `qwen2`, …).
    pub family: String,
    /// `model_families`, when the config has them.
    pub families: Option<Vec<String>>,
    /// `model_type`: the parameter count as Ollama prints it (`8.0B`, `494.03M`).
    pub parameter_size: String,
    /// `file_type`: the weights' type by llama.cpp's name (`Q4_K_M`, `F16`).
    pub quantization_level: String,
}

impl ModelDetails {
    /// The `details` JSON object, in Ollama's field order.
    pub fn to_json(&self) -> Value {
        json!({
            "parent_model": self.parent_model,
            "format": self.format,
            "family": self.family,
            "families": self.families,
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        })
    }
}

/// One row of `ollama list`.
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// The full name.
    pub name: ModelName,
    /// `name:tag` without default parts, as shown by `ollama list`.
    pub display_name: String,
    /// Hex SHA-256 of the manifest; `ollama list` ID = its first 12 digits.
    pub digest: String,
    /// The model's size: its layers and config blob, in bytes (`ollama list` SIZE).
    pub size: u64,
    /// When the manifest was last written (`ollama list` MODIFIED).
    pub modified: SystemTime,
    /// What the config blob says about the model.
    pub details: ModelDetails,
}

impl ListEntry {
    /// The model id `ollama list` shows: the first 12 hex digits of the manifest's SHA-256.
    pub fn id(&self) -> &str {
        &self.digest[..12.min(self.digest.len())]
    }

    /// One model of `/api/tags` (`api.ListModelResponse`).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.display_name,
            "model": self.display_name,
            "modified_at": rfc3339_nano(self.modified),
            "size": self.size,
            "digest": self.digest,
            "details": self.details.to_json(),
        })
    }
}

fn read_details(store: &Store, m: &StoredManifest) -> ModelDetails {
    let mut d = ModelDetails::default();
    if let Ok(digest) = Digest::parse(&m.manifest.config.digest) {
        if let Ok(bytes) = std::fs::read(store.blob_path(&digest)) {
            if let Ok(cfg) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
                let s = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                d.format = s("model_format");
                d.family = s("model_family");
                d.families = cfg
                    .get("model_families")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    });
                d.parameter_size = s("model_type");
                d.quantization_level = s("file_type");
            }
        }
    }
    d.parent_model = m
        .manifest
        .layers
        .iter()
        .find(|l| l.media_type == store::MEDIA_MODEL)
        .map(|l| l.from.clone())
        .unwrap_or_default();
    d
}

/// All models, most recently modified first (`ollama list`, `GET /api/tags`).
pub fn list(store: &Store) -> Result<Vec<ListEntry>> {
    let mut out: Vec<ListEntry> = store
        .manifests()?
        .iter()
        .map(|m| ListEntry {
            name: m.name.clone(),
            display_name: m.name.display_shortest(),
            digest: m.digest.clone(),
            size: m.manifest.total_size(),
            modified: m.modified,
            details: read_details(store, m),
        })
        .collect();
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    out.sort_by_key(|e| std::cmp::Reverse(secs(e.modified)));
    Ok(out)
}

/// What `ollama show` reports (`api.ShowResponse`).
#[derive(Debug, Clone)]
pub struct ShowInfo {
    /// The full name.
    pub name: ModelName,
    /// The Modelfile `ollama show --modelfile` prints (FROM the blob paths in this store).
    pub modelfile: String,
    /// `PARAMETER`s as `%-30s %#v` lines (sorted by key; Ollama's order is Go map order).
    pub parameters: String,
    /// The parameters layer as JSON (typed values; `stop` a list).
    pub parameters_map: Map<String, Value>,
    /// The Go template (Ollama's default `{{ .Prompt }}` when the model has none).
    pub template: String,
    /// The system prompt, empty when none.
    pub system: String,
    /// The license layers joined with newlines (`api.ShowResponse.License`).
    pub license: String,
    /// Each license layer's text.
    pub licenses: Vec<String>,
    /// The messages layer.
    pub messages: Vec<Message>,
    /// The config's `renderer`, empty when none.
    pub renderer: String,
    /// The config's `parser`, empty when none.
    pub parser: String,
    /// The config's `requires` (minimum Ollama version), empty when none.
    pub requires: String,
    /// What the config blob says about the model.
    pub details: ModelDetails,
    /// What the model can do (`completion` or `embedding`, `tools`, `thinking`, `insert`,
    /// `vision`, `audio`), in the order Ollama derives them.
    pub capabilities: Vec<String>,
    /// When the manifest was last written.
    pub modified: SystemTime,
    /// The model GGUF's KVs as JSON (`general.name` and the chat template left out; long
    /// arrays emptied unless verbose), plus `general.parameter_count`.
    pub model_info: Map<String, Value>,
    /// The projector GGUF's KVs, for a model with a projector layer.
    pub projector_info: Option<Map<String, Value>>,
    /// The model GGUF's tensors as `{name, type, shape}` objects.
    pub tensors: Vec<Value>,
}

impl ShowInfo {
    /// The `/api/show` response body, fields in Ollama's order with its `omitempty` rules.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let put_str = |m: &mut Map<String, Value>, k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.into(), json!(v));
            }
        };
        put_str(&mut m, "license", &self.license);
        put_str(&mut m, "modelfile", &self.modelfile);
        put_str(&mut m, "parameters", &self.parameters);
        put_str(&mut m, "template", &self.template);
        put_str(&mut m, "system", &self.system);
        put_str(&mut m, "renderer", &self.renderer);
        put_str(&mut m, "parser", &self.parser);
        m.insert("details".into(), self.details.to_json());
        if !self.messages.is_empty() {
            m.insert(
                "messages".into(),
                Value::Array(
                    self.messages
                        .iter()
                        .map(|x| json!({"role": x.role, "content": x.content}))
                        .collect(),
                ),
            );
        }
        m.insert(
            "model_info".into(),
            gojson::sorted(&Value::Object(self.model_info.clone())),
        );
        if let Some(p) = &self.projector_info {
            m.insert(
                "projector_info".into(),
                gojson::sorted(&Value::Object(p.clone())),
            );
        }
        if !self.tensors.is_empty() {
            m.insert("tensors".into(), Value::Array(self.tensors.clone()));
        }
        if !self.capabilities.is_empty() {
            m.insert("capabilities".into(), json!(self.capabilities));
        }
        m.insert("modified_at".into(), json!(rfc3339_nano(self.modified)));
        put_str(&mut m, "requires", &self.requires);
        Value::Object(m)
    }
}

fn read_blob_string(store: &Store, digest: &str) -> Result<String> {
    let path = store.blob_path(&Digest::parse(digest)?);
    let bytes = std::fs::read(&path).map_err(|e| OllamaError::io("open", &path, &e))?;
    String::from_utf8(bytes)
        .map_err(|_| OllamaError::internal(format!("{}: not UTF-8 text", path.display())))
}

fn gguf_info(header: &GgufHeader, verbose: bool) -> Map<String, Value> {
    let mut info = Map::new();
    for (k, v) in &header.kvs {
        if k == "general.name" || k == "tokenizer.chat_template" {
            continue;
        }
        let value = match v {
            gguf_meta::GgufValue::Array(a) if !verbose && a.items.len() > 5 => json!([]),
            other => gguf_meta::value_json(other),
        };
        info.insert(k.clone(), value);
    }
    info.insert(
        "general.parameter_count".into(),
        json!(header.parameter_count().unwrap_or(0)),
    );
    info
}

/// Resolves a user-given name to the stored model, with Ollama's 400/404 texts.
fn find_model(store: &Store, raw: &str) -> Result<StoredManifest> {
    let name = ModelName::parse(raw)?;
    let name = store.existing_name(&name)?;
    store.read_manifest(&name)?.ok_or_else(|| {
        OllamaError::not_found(format!("model '{}' not found", name.display_shortest()))
    })
}

/// `ollama show NAME` (`POST /api/show`); `verbose` keeps long GGUF arrays in `model_info`.
pub fn show(store: &Store, raw_name: &str, verbose: bool) -> Result<ShowInfo> {
    let stored = find_model(store, raw_name)?;
    let details = read_details(store, &stored);
    let config: Map<String, Value> = Digest::parse(&stored.manifest.config.digest)
        .ok()
        .and_then(|d| std::fs::read(store.blob_path(&d)).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let cfg_str = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };

    let mut model_path = String::new();
    let mut adapters = Vec::new();
    let mut projectors = Vec::new();
    let mut template: Option<String> = None;
    let mut system = String::new();
    let mut params = Map::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut licenses = Vec::new();
    let mut model_header = None;
    let mut projector_header = None;
    for layer in &stored.manifest.layers {
        let digest = Digest::parse(&layer.digest)?;
        let path = store.blob_path(&digest);
        match layer.media_type.as_str() {
            store::MEDIA_MODEL => {
                model_path = path.display().to_string();
                model_header = GgufHeader::open(&path).ok();
            }
            store::MEDIA_ADAPTER => adapters.push(path.display().to_string()),
            store::MEDIA_PROJECTOR => {
                projectors.push(path.display().to_string());
                if projector_header.is_none() {
                    projector_header = GgufHeader::open(&path).ok();
                }
            }
            store::MEDIA_TEMPLATE | store::MEDIA_PROMPT => {
                template = Some(read_blob_string(store, &layer.digest)?)
            }
            store::MEDIA_SYSTEM => system = read_blob_string(store, &layer.digest)?,
            store::MEDIA_PARAMS => {
                params = serde_json::from_str(&read_blob_string(store, &layer.digest)?)
                    .map_err(|e| OllamaError::internal(format!("{}: {e}", path.display())))?
            }
            store::MEDIA_MESSAGES => {
                let mut parsed: Vec<Message> =
                    serde_json::from_str(&read_blob_string(store, &layer.digest)?)
                        .map_err(|e| OllamaError::internal(format!("{}: {e}", path.display())))?;
                for m in parsed.iter_mut() {
                    m.role = m.role.to_lowercase();
                }
                messages = parsed;
            }
            store::MEDIA_LICENSE => licenses.push(read_blob_string(store, &layer.digest)?),
            _ => {}
        }
    }
    let has_go_template = template.is_some();
    let template = template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());

    // The Modelfile, command by command as Ollama's Model.String() builds it.
    let mut commands = vec![Command {
        name: "model".into(),
        args: model_path,
    }];
    commands.extend(adapters.iter().map(|a| Command {
        name: "adapter".into(),
        args: a.clone(),
    }));
    commands.extend(projectors.iter().map(|p| Command {
        name: "model".into(),
        args: p.clone(),
    }));
    commands.push(Command {
        name: "template".into(),
        args: template.clone(),
    });
    if !system.is_empty() {
        commands.push(Command {
            name: "system".into(),
            args: system.clone(),
        });
    }
    for key in ["renderer", "parser"] {
        let v = cfg_str(key);
        if !v.is_empty() {
            commands.push(Command {
                name: key.into(),
                args: v,
            });
        }
    }
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    let mut param_lines = Vec::new();
    for k in &keys {
        match &params[*k] {
            Value::Array(items) => {
                for item in items {
                    commands.push(Command {
                        name: (*k).clone(),
                        args: gojson::fmt_v(item),
                    });
                    param_lines.push(format!("{k:<30} {}", gojson::fmt_sharp_v(item)));
                }
            }
            v => {
                commands.push(Command {
                    name: (*k).clone(),
                    args: gojson::fmt_v(v),
                });
                param_lines.push(format!("{k:<30} {}", gojson::fmt_sharp_v(v)));
            }
        }
    }
    commands.extend(licenses.iter().map(|l| Command {
        name: "license".into(),
        args: l.clone(),
    }));
    commands.extend(messages.iter().map(|m| Command {
        name: "message".into(),
        args: format!("{}: {}", m.role, m.content),
    }));
    let short = stored.name.display_shortest();
    let modelfile = format!(
        "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {short}\n\n{}",
        Modelfile { commands }
    );

    let mut details = details;
    if matches!(details.quantization_level.as_str(), "" | "unknown") {
        if let Some(h) = &model_header {
            let ft = h.file_type_name();
            if ft != "unknown" {
                details.quantization_level = ft.to_string();
            }
        }
    }

    // Capabilities in the order Ollama derives them (server/images.go capabilitiesForTemplate):
    // the GGUF's chat template when no Go template is stored, then completion or embedding,
    // vision, audio, projectors, then the Go template's variables.
    let mut capabilities: Vec<String> = Vec::new();
    let mut add = |c: &str| {
        if !capabilities.iter().any(|x| x == c) {
            capabilities.push(c.to_string());
        }
    };
    if let Some(h) = &model_header {
        if !has_go_template {
            if let Some(jinja) = h.chat_template().filter(|j| !j.is_empty()) {
                if jinja.contains("tools") || jinja.contains("tool_call") {
                    add("tools");
                }
                let split = jinja.contains("content.split('</think>')")
                    || jinja.contains("content.split(\"</think>\")");
                if (jinja.contains("<think>") && jinja.contains("</think>"))
                    || (split
                        && !jinja.contains("reasoning_content")
                        && !jinja.contains("<SPECIAL_12>"))
                {
                    add("thinking");
                }
            }
        }
        if h.arch_uint("pooling_type").is_some() {
            add("embedding");
        } else {
            add("completion");
        }
        if h.arch_uint("vision.block_count").is_some() {
            add("vision");
        }
        if h.arch_uint("audio.block_count").is_some() {
            add("audio");
        }
    }
    if !projectors.is_empty() {
        add("vision");
    }
    if let Ok(vars) = crate::gotemplate::ollama_vars(&template) {
        if vars.iter().any(|v| v == "tools") {
            add("tools");
        }
        if vars.iter().any(|v| v == "suffix") {
            add("insert");
        }
        // Ollama infers thinking tags from a `.Thinking` inside a range over `.Messages`.
        if vars.iter().any(|v| v == "thinking") && vars.iter().any(|v| v == "messages") {
            add("thinking");
        }
    }
    if matches!(cfg_str("model_family").as_str(), "gptoss" | "gpt-oss") {
        add("thinking");
    }

    let tensors = model_header
        .as_ref()
        .map(|h| {
            h.tensors
                .iter()
                .map(|t| json!({"name": t.name, "type": gguf_meta::tensor_type_name(t.ggml_type), "shape": t.ne}))
                .collect()
        })
        .unwrap_or_default();

    Ok(ShowInfo {
        name: stored.name.clone(),
        modelfile,
        parameters: param_lines.join("\n"),
        parameters_map: params,
        template,
        system,
        license: licenses.join("\n"),
        licenses,
        messages,
        renderer: cfg_str("renderer"),
        parser: cfg_str("parser"),
        requires: cfg_str("requires"),
        details,
        capabilities,
        modified: stored.modified,
        model_info: model_header
            .as_ref()
            .map(|h| gguf_info(h, verbose))
            .unwrap_or_default(),
        projector_info: projector_header.as_ref().map(|h| gguf_info(h, verbose)),
        tensors,
    })
}

/// What `ollama rm` deleted.
#[derive(Debug, Clone)]
pub struct RemoveReport {
    /// The full name removed.
    pub name: ModelName,
    /// Blobs deleted because no other manifest uses them (`sha256:<hex>`).
    pub removed_blobs: Vec<String>,
}

/// `ollama rm NAME` (`DELETE /api/delete`): deletes the manifest, prunes empty manifest
/// directories, then deletes the layers and config no other manifest references.
pub fn remove(store: &Store, raw_name: &str) -> Result<RemoveReport> {
    let name = ModelName::parse(raw_name).map_err(|_| {
        OllamaError::bad_request(format!("name {} is invalid", gojson::go_quote(raw_name)))
    })?;
    let _lock = store.lock()?;
    let name = store.existing_name(&name)?;
    let stored = store
        .read_manifest(&name)?
        .ok_or_else(|| OllamaError::not_found(format!("model '{raw_name}' not found")))?;
    std::fs::remove_file(&stored.path).map_err(|e| OllamaError::io("remove", &stored.path, &e))?;
    store.prune_manifest_dirs();
    let digests: Vec<String> = stored.manifest.all_digests().map(String::from).collect();
    let removed_blobs = store.remove_unreferenced(&digests)?;
    Ok(RemoveReport {
        name,
        removed_blobs,
    })
}

/// `ollama cp SRC DST` (`POST /api/copy`): the destination gets the same manifest bytes (same
/// id); no blob is copied.
pub fn copy(store: &Store, source: &str, destination: &str) -> Result<ModelName> {
    let src = ModelName::parse(source).map_err(|_| {
        OllamaError::bad_request(format!("source {} is invalid", gojson::go_quote(source)))
    })?;
    let dst = ModelName::parse(destination).map_err(|_| {
        OllamaError::bad_request(format!(
            "destination {} is invalid",
            gojson::go_quote(destination)
        ))
    })?;
    let _lock = store.lock()?;
    let src = store.existing_name(&src)?;
    let dst = store.existing_name(&dst)?;
    let path = store.manifest_path(&src);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OllamaError::not_found(format!(
                "model {} not found",
                gojson::go_quote(source)
            )))
        }
        Err(e) => return Err(OllamaError::io("open", &path, &e)),
    };
    store.write_manifest_bytes(&dst, &bytes)?;
    Ok(dst)
}

/// Ollama's `format.HumanBytes` (decimal units: "4.7 GB", "19 KB", "512 B").
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let Some(&(div, unit)) = UNITS.iter().find(|(div, _)| b >= *div) else {
        return format!("{b} B");
    };
    let value = b as f64 / div as f64;
    if value >= 10.0 || value == value.trunc() {
        format!("{} {unit}", value as u64)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Ollama's `format.HumanTime`: "Less than a second ago", "5 minutes ago", "2 days ago", …
pub(crate) fn human_time(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", human_duration(d.as_secs_f64())),
        Err(e) => format!("{} from now", human_duration(e.duration().as_secs_f64())),
    }
}

fn human_duration(secs: f64) -> String {
    let seconds = secs as u64;
    match seconds {
        0 => return "Less than a second".into(),
        1 => return "1 second".into(),
        2..=59 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".into(),
        2..=59 => return format!("{minutes} minutes"),
        _ => {}
    }
    let hours = (secs / 3600.0).round() as u64;
    match hours {
        1 => "About an hour".into(),
        h if h < 48 => format!("{h} hours"),
        h if h < 24 * 7 * 2 => format!("{} days", h / 24),
        h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", (secs / 3600.0) as u64 / 24 / 365),
    }
}

/// The `ollama list` table: NAME, ID, SIZE, MODIFIED, left-aligned, columns 4 spaces apart.
pub fn format_list(entries: &[ListEntry], now: SystemTime) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "ID".into(),
        "SIZE".into(),
        "MODIFIED".into(),
    ]];
    for e in entries {
        rows.push([
            e.display_name.clone(),
            e.id().to_string(),
            human_bytes(e.size),
            human_time(e.modified, now),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("    ").trim_end());
        out.push('\n');
    }
    out
}

/// RFC 3339 with nanoseconds, trailing zeros trimmed, in UTC (Go's `time.Time` JSON form).
pub(crate) fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{mi:02}:{s:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

// ---------------------------------------------------------------------------------------------
// `ollama show NAME` as a terminal summary (cmd/cmd.go showInfo, tables drawn by tablewriter
// without borders, left-aligned, four spaces after every cell).

/// Display width of a cell (one column per character).
fn cell_width(s: &str) -> usize {
    s.chars().count()
}

/// Splits a cell into lines of at most `lim` columns at spaces, choosing the breaks that
/// minimise the squared slack of every line but the last (tablewriter's WrapString).
fn wrap_cell(s: &str, lim: usize) -> Vec<String> {
    let joined = s.replace('\n', " ");
    let words: Vec<&str> = joined.split(' ').collect();
    let lim = words.iter().map(|w| cell_width(w)).fold(lim, usize::max) as i64;
    let n = words.len();
    let widths: Vec<i64> = words.iter().map(|w| cell_width(w) as i64).collect();
    // line_len(i, j): width of words i..=j joined by single spaces.
    let line_len = |i: usize, j: usize| widths[i..=j].iter().sum::<i64>() + (j - i) as i64;
    const PENALTY: i64 = 100_000;
    let mut cost = vec![i64::from(i32::MAX); n];
    let mut brk = vec![n; n];
    for i in (0..n).rev() {
        if line_len(i, n - 1) <= lim {
            cost[i] = 0;
            brk[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = line_len(i, j - 1);
            let d = lim - len;
            let mut c = d * d + cost[j];
            if len > lim {
                c += PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                brk[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..brk[i]].join(" "));
        i = brk[i];
    }
    lines
}

/// One titled table of the summary.
fn render_table(out: &mut String, header: &str, rows: &[Vec<String>]) {
    out.push_str("  ");
    out.push_str(header);
    out.push('\n');
    let max_width = match header {
        "Template" | "System" | "License" => 100,
        _ => 30,
    };
    // Wrap each cell, then size each column by its widest line.
    let cells: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| {
                    let w = cell_width(c).min(max_width);
                    wrap_cell(c, w)
                })
                .collect()
        })
        .collect();
    let ncols = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for row in &cells {
        for (x, lines) in row.iter().enumerate() {
            for l in lines {
                widths[x] = widths[x].max(cell_width(l));
            }
        }
    }
    for row in &cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(0);
        for y in 0..height {
            for (x, lines) in row.iter().enumerate() {
                let cell = lines.get(y).map(String::as_str).unwrap_or("");
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[x] - cell_width(cell)));
                out.push_str("    ");
            }
            out.push('\n');
        }
    }
    out.push('\n');
}

/// Go's `%g`/`%v` of a float64: the shortest digits, with an exponent when the decimal
/// exponent is below -4 or at least 6 (`8e+09`, `1e-05`, `151936`).
fn go_g(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// Go's `%v` of a JSON-decoded value (model_info values as the CLI receives them).
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_g(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_v).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_v(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn go_f(f: f64) -> String {
    format!("{f}")
}

fn head_rows(s: &str, n: usize) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut count = 0;
    for line in s.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        count += 1;
        if count <= n {
            rows.push(vec![String::new(), t.to_string()]);
        }
    }
    if count > n {
        rows.push(vec![String::new(), "...".into()]);
    }
    rows
}

/// `ollama show NAME` (and `-v`): the Model, Capabilities, Projector, Parameters, [Metadata,
/// Tensors,] System and License tables, as Ollama's CLI prints them from `/api/show`.
pub fn format_show(info: &ShowInfo, verbose: bool) -> String {
    let mut out = String::new();
    let mi = &info.model_info;
    let num = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);

    let mut rows: Vec<Vec<String>> = Vec::new();
    let row = |a: &str, b: String| vec![String::new(), a.to_string(), b];
    if mi.is_empty() {
        // No model_info in the reply (Ollama omits an empty one): the details stand in.
        rows.push(row("architecture", info.details.family.clone()));
        rows.push(row("parameters", info.details.parameter_size.clone()));
    }
    let arch = mi
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !arch.is_empty() {
        rows.push(row("architecture", arch.clone()));
    }
    let params = if mi.is_empty() {
        String::new()
    } else if !info.details.parameter_size.is_empty() {
        info.details.parameter_size.clone()
    } else if let Some(n) = num(mi, "general.parameter_count") {
        gguf_meta::human_number(n as u64)
    } else {
        String::new()
    };
    if !params.is_empty() {
        rows.push(row("parameters", params));
    }
    if let Some(f) = num(mi, &format!("{arch}.context_length")) {
        rows.push(row("context length", go_f(f)));
    }
    if let Some(f) = num(mi, &format!("{arch}.embedding_length")) {
        rows.push(row("embedding length", go_f(f)));
    }
    rows.push(row("quantization", info.details.quantization_level.clone()));
    if !info.requires.is_empty() {
        rows.push(row("requires", info.requires.clone()));
    }
    render_table(&mut out, "Model", &rows);

    if !info.capabilities.is_empty() {
        let rows: Vec<Vec<String>> = info
            .capabilities
            .iter()
            .map(|c| vec![String::new(), c.clone()])
            .collect();
        render_table(&mut out, "Capabilities", &rows);
    }

    if let Some(pi) = &info.projector_info {
        let mut rows = Vec::new();
        let parch = pi
            .get("general.architecture")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !parch.is_empty() {
            rows.push(row("architecture", parch.clone()));
        }
        if let Some(n) = num(pi, "general.parameter_count") {
            rows.push(row("parameters", gguf_meta::human_number(n as u64)));
        }
        let pv = |suffix: &str| {
            ["vision", "audio"]
                .iter()
                .find_map(|m| num(pi, &format!("{parch}.{m}.{suffix}")))
        };
        if let Some(v) = pv("embedding_length") {
            rows.push(row("embedding length", go_f(v)));
        }
        if let Some(v) = pv("projection_dim") {
            rows.push(row("dimensions", go_f(v)));
        }
        render_table(&mut out, "Projector", &rows);
    }

    if !info.parameters.is_empty() {
        let rows: Vec<Vec<String>> = info
            .parameters
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                std::iter::once(String::new())
                    .chain(l.split_whitespace().map(String::from))
                    .collect()
            })
            .collect();
        render_table(&mut out, "Parameters", &rows);
    }

    if verbose {
        let mut keys: Vec<&String> = mi.keys().collect();
        keys.sort();
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                let v = match &mi[*k] {
                    Value::Bool(b) => b.to_string(),
                    Value::String(s) => s.clone(),
                    Value::Number(n) => go_g(n.as_f64().unwrap_or(0.0)),
                    Value::Array(items) => {
                        // As many items as fit in 10 columns, then "...+N more]".
                        let mut shown = 0;
                        let mut total = 1;
                        for (i, it) in items.iter().enumerate() {
                            let mut w = cell_width(&go_v(it));
                            if i > 0 {
                                w += 2;
                            }
                            if total + w > 10 && i > 0 {
                                break;
                            }
                            total += w;
                            shown += 1;
                        }
                        if shown < items.len() {
                            let head = go_v(&Value::Array(items[..shown].to_vec()));
                            format!(
                                "{} ...+{} more]",
                                head.trim_end_matches(']'),
                                items.len() - shown
                            )
                        } else {
                            go_v(&mi[*k])
                        }
                    }
                    Value::Object(_) => "map[string]interface {}".into(),
                    Value::Null => "<nil>".into(),
                };
                row(k, v)
            })
            .collect();
        render_table(&mut out, "Metadata", &rows);
        if !info.tensors.is_empty() {
            let rows: Vec<Vec<String>> = info
                .tensors
                .iter()
                .map(|t| {
                    vec![
                        String::new(),
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["type"].as_str().unwrap_or("").to_string(),
                        go_v(&t["shape"]),
                    ]
                })
                .collect();
            render_table(&mut out, "Tensors", &rows);
        }
    }

    if !info.system.is_empty() {
        render_table(&mut out, "System", &head_rows(&info.system, 2));
    }
    if !info.license.is_empty() {
        render_table(&mut out, "License", &head_rows(&info.license, 2));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_formats_like_ollama() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_500), "1.5 KB");
        assert_eq!(human_bytes(19_000), "19 KB");
        assert_eq!(human_bytes(4_661_224_676), "4.7 GB");
        assert_eq!(human_bytes(2_000_000), "2 MB");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(human_time(now, now), "Less than a second ago");
        assert_eq!(
            human_time(now - Duration::from_secs(90), now),
            "About a minute ago"
        );
        assert_eq!(
            human_time(now - Duration::from_secs(5 * 3600), now),
            "5 hours ago"
        );
        assert_eq!(
            human_time(now - Duration::from_secs(3 * 86400), now),
            "3 days ago"
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_795_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2026-11-18T11:06:40.12Z");
    }
}
