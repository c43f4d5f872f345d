//! `ollama create`, done directly in the store: the same layers, config blob and manifest
//! Ollama's `CreateHandler` writes for a GGUF import (server/create.go), in the same order.
//!
//! Conversion of Hugging Face checkpoints and quantization are not done here: they go through a
//! [`ModelPreparer`] supplied by the caller, so `--from MODEL_DIR --quantize q4_K_M` plugs in
//! without changing this module. Ollama ≥ 0.30 additionally rewrites every imported GGUF with
//! its bundled `llama-quantize` (COPY mode), which changes the blob digest; we store the GGUF as
//! given (the behaviour of earlier versions). Like Ollama >= 0.30, a layer imported from a file has
//! no `from` (Ollama's `/save` would try to pull such a "model"); only layers inherited from
//! another model (`FROM existing-model`) name it there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{OllamaError, Result};
use crate::gguf_meta::{self, GgufHeader};
use crate::gojson;
use crate::modelfile::{self, Modelfile, Parameters};
use crate::name::ModelName;
use crate::store::{self, BlobInfo, Digest, Layer, Manifest, Store};
use crate::templates;

/// Where the model weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A GGUF file, imported as is (or quantized through the [`ModelPreparer`]).
    Gguf(PathBuf),
    /// A Hugging Face checkpoint directory; needs [`ModelPreparer::convert`].
    HfDir(PathBuf),
    /// Named files (relative name → local path), as `/api/create` `files` gives them: GGUFs
    /// (a model plus projectors) or a safetensors checkpoint (converted by the preparer).
    Files(Vec<(String, PathBuf)>),
    /// Another model in the same store (Ollama's `FROM llama3.2`); never pulled.
    Model(String),
}

/// What a [`ModelPreparer`] is asked to convert.
#[derive(Debug, Clone, Copy)]
pub enum ConvertInput<'a> {
    /// A Hugging Face checkpoint folder ([`ModelSource::HfDir`]).
    Dir(&'a Path),
    /// Uploaded files, relative name → local path ([`ModelSource::Files`]).
    Files(&'a [(String, PathBuf)]),
}

/// The quantization levels Ollama's `ollama create --quantize` accepts (`ggml.ParseFileType`).
#[allow(non_camel_case_types)] // the names users type and Ollama prints
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizeLevel {
    /// 32-bit floats (`F32`).
    F32,
    /// IEEE half floats (`F16`).
    F16,
    /// bfloat16 (`BF16`).
    BF16,
    /// llama.cpp's 8-bit `Q8_0` blocks.
    Q8_0,
    /// llama.cpp's `Q4_K_S` mix.
    Q4_K_S,
    /// llama.cpp's `Q4_K_M` mix (also what `Q4_K` means).
    Q4_K_M,
}

impl QuantizeLevel {
    /// Case-insensitive; `Q4_K` means `Q4_K_M`. The error text is Ollama's.
    pub fn parse(s: &str) -> Result<QuantizeLevel> {
        Ok(match s.to_uppercase().as_str() {
            "F32" => QuantizeLevel::F32,
            "F16" => QuantizeLevel::F16,
            "BF16" => QuantizeLevel::BF16,
            "Q8_0" => QuantizeLevel::Q8_0,
            "Q4_K_S" => QuantizeLevel::Q4_K_S,
            "Q4_K_M" | "Q4_K" => QuantizeLevel::Q4_K_M,
            other => {
                return Err(OllamaError::bad_request(format!(
                    "unsupported quantization type {other} - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"
                )))
            }
        })
    }

    /// Ollama's name, also the `file_type` written to the config (llama-quantize's name).
    pub fn name(self) -> &'static str {
        self.ftype().name()
    }

    /// The llama.cpp mix this level is (ckpt-quant's `llama_ftype` table).
    pub fn ftype(self) -> ckpt_quant::Ftype {
        use ckpt_quant::Ftype;
        match self {
            QuantizeLevel::F32 => Ftype::F32,
            QuantizeLevel::F16 => Ftype::F16,
            QuantizeLevel::BF16 => Ftype::BF16,
            QuantizeLevel::Q8_0 => Ftype::Q8_0,
            QuantizeLevel::Q4_K_S => Ftype::Q4_K_S,
            QuantizeLevel::Q4_K_M => Ftype::Q4_K_M,
        }
    }

    /// llama.cpp's `llama_ftype` number (`general.file_type`).
    pub fn llama_ftype(self) -> u32 {
        self.ftype().id()
    }
}

/// Status lines as Ollama streams them (`api.ProgressResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// The status line (`parsing GGUF`, `using existing layer sha256:…`, `success`, …).
    pub status: String,
    /// The blob digest the line is about (`sha256:<hex>`), when there is one.
    pub digest: Option<String>,
    /// Bytes to process in this step, when known.
    pub total: Option<u64>,
    /// Bytes processed so far in this step.
    pub completed: Option<u64>,
}

impl Progress {
    /// A line with only a status.
    pub fn status(s: impl Into<String>) -> Progress {
        Progress {
            status: s.into(),
            ..Progress::default()
        }
    }

    /// The JSON object Ollama sends (struct order, empty fields omitted).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("status".into(), json!(self.status));
        if let Some(d) = &self.digest {
            m.insert("digest".into(), json!(d));
        }
        if let Some(t) = self.total.filter(|t| *t != 0) {
            m.insert("total".into(), json!(t));
        }
        if let Some(c) = self.completed.filter(|c| *c != 0) {
            m.insert("completed".into(), json!(c));
        }
        Value::Object(m)
    }
}

/// One conversion a [`ModelPreparer`] is asked for.
#[derive(Debug, Clone, Copy)]
pub struct ConvertJob<'a> {
    /// The checkpoint: a folder, or uploaded files under their names.
    pub input: ConvertInput<'a>,
    /// A LoRA adapter rather than a model.
    pub adapter: bool,
    /// For an adapter: the GGUF of the model it applies to, if known.
    pub base_model: Option<&'a Path>,
    /// The (private, scratch) folder to write the GGUFs into.
    pub out_dir: &'a Path,
    /// The model part of the name being created, so a converter that names the GGUF
    /// (`general.name`) can use it.
    pub model_name: &'a str,
}

/// Converts checkpoints to GGUF and quantizes GGUFs for [`create_with`]. The CLI implements it
/// with the ckpt converter and quantizer; every method defaults to "not supported yet".
pub trait ModelPreparer: Send + Sync {
    /// Writes the GGUFs converting `job.input` gives into `job.out_dir` and returns their paths,
    /// the model first: a vision model's projector (`general.type` mmproj) follows it and
    /// becomes an `application/vnd.ollama.image.projector` layer.
    fn convert(
        &self,
        job: ConvertJob<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<PathBuf>> {
        let _ = progress;
        Err(OllamaError::not_implemented(if job.adapter {
            "converting a safetensors adapter is not supported yet (no converter is wired into this build)"
        } else {
            "converting a safetensors model is not supported yet (no converter is wired into this build)"
        }))
    }

    /// Writes `gguf` quantized to `level` into `out_dir` and returns its path.
    fn quantize(
        &self,
        gguf: &Path,
        level: QuantizeLevel,
        out_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf> {
        let _ = (gguf, out_dir, progress);
        Err(OllamaError::not_implemented(format!(
            "quantizing to {} is not supported yet (no quantizer is wired into this build)",
            level.name()
        )))
    }
}

/// The preparer used when none is given: every conversion/quantization is refused clearly.
pub(crate) struct NoPreparer;
impl ModelPreparer for NoPreparer {}

/// A chat message stored in the `messages` layer (`api.Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The message text.
    #[serde(default)]
    pub content: String,
    /// The model's reasoning text, for thinking models.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Base64-encoded images attached to the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The tool calls an assistant message makes, as Ollama's JSON objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
    /// For a `tool` message: the tool that answered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

impl Message {
    /// A message with only a role and content (a Modelfile's `MESSAGE role content`).
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
            ..Message::default()
        }
    }

    /// Go struct order, empty optional fields omitted.
    pub(crate) fn to_go_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), json!(self.role));
        m.insert("content".into(), json!(self.content));
        if !self.thinking.is_empty() {
            m.insert("thinking".into(), json!(self.thinking));
        }
        if !self.images.is_empty() {
            m.insert("images".into(), json!(self.images));
        }
        if !self.tool_calls.is_empty() {
            m.insert(
                "tool_calls".into(),
                Value::Array(self.tool_calls.iter().map(gojson::sorted).collect()),
            );
        }
        if !self.tool_name.is_empty() {
            m.insert("tool_name".into(), json!(self.tool_name));
        }
        if !self.tool_call_id.is_empty() {
            m.insert("tool_call_id".into(), json!(self.tool_call_id));
        }
        Value::Object(m)
    }
}

/// Everything `ollama create` takes besides the name.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpec {
    /// The model weights (Modelfile `FROM`).
    pub source: ModelSource,
    /// A LoRA adapter: a GGUF, or a safetensors adapter for the preparer.
    pub adapter: Option<ModelSource>,
    /// `q4_K_M`, `q8_0`, ... (checked with Ollama's rules).
    pub quantize: Option<String>,
    /// Go template text; replaces the auto-detected one.
    pub template: Option<String>,
    /// Pick a named template (and its stop list) from the GGUF's `tokenizer.chat_template`, as
    /// Ollama always does for file imports.
    pub detect_template: bool,
    /// The system prompt (Modelfile `SYSTEM`), stored as a system layer.
    pub system: Option<String>,
    /// Merged over inherited/detected parameters (a given key replaces the old value).
    pub parameters: Map<String, Value>,
    /// License texts (Modelfile `LICENSE`), one license layer each.
    pub licenses: Vec<String>,
    /// A conversation to start from (Modelfile `MESSAGE`), stored as the messages layer.
    pub messages: Vec<Message>,
    /// Ollama's built-in prompt renderer to use instead of the template (Modelfile
    /// `RENDERER`), written to the config.
    pub renderer: Option<String>,
    /// Ollama's built-in output parser (Modelfile `PARSER`), written to the config.
    pub parser: Option<String>,
    /// The minimum Ollama version the model needs (Modelfile `REQUIRES`, without a leading `v`).
    pub requires: Option<String>,
}

impl CreateSpec {
    /// A spec for `source` with nothing else set, the template detected from the GGUF.
    pub fn new(source: ModelSource) -> CreateSpec {
        CreateSpec {
            source,
            adapter: None,
            quantize: None,
            template: None,
            detect_template: true,
            system: None,
            parameters: Map::new(),
            licenses: Vec::new(),
            messages: Vec::new(),
            renderer: None,
            parser: None,
            requires: None,
        }
    }

    /// Uses one of Ollama's named templates (`chatml`, `llama3-instruct`, … see
    /// [`templates::names`]) with its stop list, as auto-detection would.
    pub fn use_named_template(&mut self, name: &str) -> Result<()> {
        let named = templates::named(name).ok_or_else(|| {
            OllamaError::bad_request(format!(
                "unknown template {name:?}; Ollama's named templates are: {}",
                templates::names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        self.template = Some(named.template);
        if let Some(Some(stop)) = named.stop {
            self.parameters.entry("stop").or_insert_with(|| json!(stop));
        }
        Ok(())
    }

    /// Adds a `KEY=VALUE` parameter with the Modelfile's typing rules (`stop` accumulates a
    /// list, numbers and bools are typed, unknown keys are errors). Returns a warning for
    /// deprecated keys, which are ignored as Ollama does.
    pub fn set_parameter(&mut self, assignment: &str) -> Result<Option<String>> {
        let mut params: Parameters = std::mem::take(&mut self.parameters).into_iter().collect();
        let result = modelfile::add_parameter_assignment(&mut params, assignment);
        self.parameters = params.into_iter().collect();
        result
    }

    /// Builds the request the Ollama CLI would build from a Modelfile (paths relative to
    /// `base_dir`; a FROM that is not an existing path names a model). Returns the spec and the
    /// warnings Ollama prints (deprecated parameters).
    pub fn from_modelfile(
        modelfile: &Modelfile,
        base_dir: &Path,
    ) -> Result<(CreateSpec, Vec<String>)> {
        let mut spec = CreateSpec::new(ModelSource::Files(Vec::new()));
        let mut params = Parameters::new();
        let mut warnings = Vec::new();
        let mut gguf_files: Vec<(String, PathBuf)> = Vec::new();
        let mut source: Option<ModelSource> = None;
        for cmd in &modelfile.commands {
            match cmd.name.as_str() {
                "model" => {
                    let path = expand_path(&cmd.args, base_dir);
                    if !path.exists() {
                        source = Some(ModelSource::Model(cmd.args.clone()));
                        continue;
                    }
                    match source_for_path(&path)? {
                        ModelSource::Gguf(p) => {
                            let key = p
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            gguf_files.push((key, p));
                        }
                        ModelSource::Files(files) => gguf_files.extend(files),
                        other => source = Some(other),
                    }
                }
                "adapter" => {
                    let path = expand_path(&cmd.args, base_dir);
                    if !path.exists() {
                        return Err(OllamaError::bad_request(format!(
                            "stat {}: no such file or directory",
                            path.display()
                        )));
                    }
                    spec.adapter = Some(match source_for_path(&path)? {
                        ModelSource::Files(files) if files.len() == 1 => {
                            ModelSource::Gguf(files[0].1.clone())
                        }
                        other => other,
                    });
                }
                "template" => spec.template = Some(cmd.args.clone()),
                "system" => spec.system = Some(cmd.args.clone()),
                "license" => spec.licenses.push(cmd.args.clone()),
                "renderer" => spec.renderer = Some(cmd.args.clone()),
                "parser" => spec.parser = Some(cmd.args.clone()),
                "requires" => spec.requires = Some(cmd.args.trim_start_matches('v').to_string()),
                "draft" => {
                    return Err(OllamaError::not_implemented(
                        "DRAFT models are not supported yet",
                    ))
                }
                "message" => {
                    let (role, content) = cmd.args.split_once(": ").unwrap_or((&cmd.args, ""));
                    spec.messages.push(Message::new(role, content));
                }
                name => {
                    if let Some(w) = modelfile::add_parameter(&mut params, name, &cmd.args)? {
                        warnings.push(w);
                    }
                }
            }
        }
        spec.source =
            match (source, gguf_files.len()) {
                (Some(s), 0) => s,
                (None, 1) => ModelSource::Gguf(gguf_files.remove(0).1),
                (None, n) if n > 1 => ModelSource::Files(gguf_files),
                (Some(_), _) => return Err(OllamaError::bad_request(
                    "a Modelfile may combine several FROM lines only when they are all GGUF files",
                )),
                (None, _) => {
                    return Err(OllamaError::bad_request(
                        "no Modelfile or safetensors files found",
                    ))
                }
            };
        spec.parameters = params.into_iter().collect();
        Ok((spec, warnings))
    }
}

fn expand_path(arg: &str, base_dir: &Path) -> PathBuf {
    if let Some(rest) = arg.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = Path::new(arg);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// What an existing path holds, with the CLI's file choice for directories: safetensors (or
/// torch files) make it a checkpoint to convert, otherwise its `*.gguf` files.
fn source_for_path(path: &Path) -> Result<ModelSource> {
    if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".safetensors") {
            return Ok(ModelSource::Files(vec![(name, path.to_path_buf())]));
        }
        return Ok(ModelSource::Gguf(path.to_path_buf()));
    }
    let mut ggufs = Vec::new();
    let mut has_checkpoint = false;
    let entries = std::fs::read_dir(path).map_err(|e| OllamaError::io("open", path, &e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors")
            || (name.starts_with("pytorch_model") && name.ends_with(".bin"))
            || name == "adapter_model.bin"
            || name.ends_with(".pth")
        {
            has_checkpoint = true;
        } else if name.ends_with(".gguf") {
            ggufs.push((name, entry.path()));
        }
    }
    if has_checkpoint {
        return Ok(ModelSource::HfDir(path.to_path_buf()));
    }
    ggufs.sort();
    match ggufs.len() {
        0 => Err(OllamaError::bad_request(
            "no Modelfile or safetensors files found",
        )),
        _ => Ok(ModelSource::Files(ggufs)),
    }
}

/// Options that are not part of the model description.
pub struct CreateOptions<'a> {
    /// Converts checkpoints and quantizes GGUFs; the default refuses both.
    pub preparer: &'a dyn ModelPreparer,
    /// Keep blobs of a replaced manifest (Ollama's `OLLAMA_NOPRUNE`).
    pub no_prune: bool,
    /// Also write `rootfs: {type: "layers", diff_ids: [layer digests]}` in the config blob, as
    /// Ollama up to v0.32.9 did (removed in v0.32.10, commit 5a173edb6). Ollama reads both.
    pub config_rootfs: bool,
}

impl Default for CreateOptions<'_> {
    fn default() -> Self {
        CreateOptions {
            preparer: &NoPreparer,
            no_prune: std::env::var_os("OLLAMA_NOPRUNE").is_some_and(|v| !v.is_empty()),
            config_rootfs: false,
        }
    }
}

/// What [`create`] wrote.
#[derive(Debug, Clone)]
pub struct CreateReport {
    /// The full name the model was stored under (the stored spelling of an existing name).
    pub name: ModelName,
    /// Hex SHA-256 of the manifest (the model id; `ollama list` shows the first 12 digits).
    pub manifest_digest: String,
    /// The manifest written.
    pub manifest: Manifest,
    /// The named template picked from the GGUF chat template, if any.
    pub detected_template: Option<String>,
    /// Every status line, in the order Ollama would stream them (ends with `success`).
    pub statuses: Vec<String>,
}

struct BaseLayer {
    layer: Layer,
    status: String,
    header: Option<GgufHeader>,
    /// The local file behind the layer (for quantization).
    path: PathBuf,
    /// Already quantized (or checked) while importing files.
    quantized: bool,
}

/// Creates (or replaces) model `name` in `store` without converting or quantizing.
pub fn create(store: &Store, name: &str, spec: &CreateSpec) -> Result<CreateReport> {
    create_with(store, name, spec, &CreateOptions::default(), &mut |_| {})
}

/// Creates (or replaces) model `name`, reporting each status line to `progress` as it happens.
pub fn create_with(
    store: &Store,
    name: &str,
    spec: &CreateSpec,
    opts: &CreateOptions<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<CreateReport> {
    let name = ModelName::parse(name)?;
    let _lock = store.lock()?;
    let name = store.existing_name(&name)?;
    let old_manifest = store.read_manifest(&name).ok().flatten();
    let scratch = Scratch(store.scratch_dir()?);
    let mut statuses: Vec<String> = Vec::new();
    let mut emit = |p: Progress, statuses: &mut Vec<String>| {
        statuses.push(p.status.clone());
        progress(p);
    };

    let mut config = Map::new();
    let mut families: Option<Vec<String>> = None;
    let mut base_layers: Vec<BaseLayer> = Vec::new();
    let mut detected_template = None;

    // 1. Base layers: the model (and projectors), or the layers of an existing model.
    match &spec.source {
        ModelSource::Model(from) => {
            base_layers = layers_from_model(store, from, &mut config)?;
        }
        source => {
            let files = gguf_inputs(
                source,
                false,
                None,
                &name.model,
                opts,
                &scratch.0,
                &mut |p| emit(p, &mut statuses),
            )?;
            for (key, path, converted) in files {
                // Ollama parses (and says so) only GGUF inputs, not its converter's output.
                if !converted {
                    emit(Progress::status("parsing GGUF"), &mut statuses);
                }
                // Quantize before importing, so an F16 source is never copied into the store
                // only to be replaced.
                let header = GgufHeader::open(&path)?;
                let is_model = header.kind() != "adapter" && !header.is_projector();
                let quantized = match quantize_level(spec)? {
                    Some(want) if is_model => {
                        quantize_if_needed(&header, &path, want, opts, &scratch.0, &mut |p| {
                            emit(p, &mut statuses)
                        })?
                    }
                    _ => None,
                };
                let mut layer = match quantized {
                    Some(out) => gguf_layer(store, "", &out, true, &scratch.0)?,
                    None => gguf_layer(store, &key, &path, converted, &scratch.0)?,
                };
                layer.quantized = is_model && spec.quantize.is_some();
                base_layers.push(layer);
            }
            if spec.detect_template {
                let folder_template = converter_chat_template(source);
                let mut extra = Vec::new();
                for base in &base_layers {
                    let jinja = match (&folder_template, &base.header) {
                        // A folder Ollama converts itself: the template its converter stores
                        // (the projector it converts has none).
                        (Some(t), Some(h)) if !h.is_projector() => t.as_deref(),
                        (Some(_), _) => None,
                        (None, h) => h.as_ref().and_then(|h| h.chat_template()),
                    };
                    let Some(jinja) = jinja else {
                        continue;
                    };
                    let Some((named, _distance)) = templates::detect(jinja) else {
                        continue;
                    };
                    let blob = store.write_blob_bytes(named.template.as_bytes())?;
                    extra.push(text_layer(
                        store::MEDIA_TEMPLATE,
                        &blob,
                        Some(format!("using autodetected template {}", named.name)),
                    ));
                    detected_template = Some(named.name.to_string());
                    if let Some(stop) = named.stop {
                        let params = match stop {
                            Some(list) => json!({ "stop": list }),
                            None => json!({ "stop": null }),
                        };
                        let blob = store.write_blob_bytes(&gojson::encode_line(&params))?;
                        extra.push(text_layer(store::MEDIA_PARAMS, &blob, None));
                    }
                }
                base_layers.extend(extra);
            }
        }
    }

    // 2. Adapters come after the model layers.
    if let Some(adapter) = &spec.adapter {
        let base_model = base_layers
            .iter()
            .find(|b| b.layer.media_type == store::MEDIA_MODEL)
            .map(|b| b.path.clone());
        let files = gguf_inputs(
            adapter,
            true,
            base_model.as_deref(),
            &name.model,
            opts,
            &scratch.0,
            &mut |p| emit(p, &mut statuses),
        )?;
        if files.len() != 1 {
            return Err(OllamaError::bad_request(
                "only one adapter is currently supported",
            ));
        }
        for (key, path, converted) in files {
            if !converted {
                emit(Progress::status("parsing GGUF"), &mut statuses);
            }
            check_adapter(&path, base_model.as_deref())?;
            let mut layer = gguf_layer(store, &key, &path, converted, &scratch.0)?;
            layer.layer.media_type = store::MEDIA_ADAPTER.to_string();
            base_layers.push(layer);
        }
    }

    // 3. Quantize an inherited model layer if asked, and fill the config from the model.
    let mut parameters = spec.parameters.clone();
    let want = quantize_level(spec)?;
    for base in base_layers.iter_mut() {
        if base.layer.media_type != store::MEDIA_MODEL {
            continue;
        }
        let Some(header) = base.header.clone() else {
            continue;
        };
        if let (Some(want), false) = (want, base.quantized) {
            if let Some(out) =
                quantize_if_needed(&header, &base.path, want, opts, &scratch.0, &mut |p| {
                    emit(p, &mut statuses)
                })?
            {
                let mut quantized = gguf_layer(store, "", &out, true, &scratch.0)?;
                quantized.layer.media_type = store::MEDIA_MODEL.to_string();
                *base = quantized;
            }
        }
        let header = base
            .header
            .as_ref()
            .expect("GGUF layers carry their header");
        let arch = header.architecture().to_string();
        config
            .entry("model_format")
            .or_insert_with(|| json!("gguf"));
        config.entry("model_family").or_insert_with(|| json!(arch));
        config.entry("model_type").or_insert_with(|| {
            json!(gguf_meta::human_number(
                header.parameter_count().unwrap_or(0)
            ))
        });
        config
            .entry("file_type")
            .or_insert_with(|| json!(header.file_type_name()));
        families.get_or_insert_with(Vec::new).push(arch.clone());
        // Architecture defaults Ollama applies when the request names no renderer/parser.
        let (renderer, parser) = match arch.as_str() {
            "gemma4" => {
                if !parameters.contains_key("stop") {
                    parameters.insert("stop".into(), json!(["<turn|>"]));
                }
                (Some("gemma4"), Some("gemma4"))
            }
            "laguna" => (Some("laguna"), Some("laguna")),
            "nemotron_h" | "nemotron_h_moe" | "nemotron_h_omni" => {
                (Some("nemotron-3-nano"), Some("nemotron-3-nano"))
            }
            _ => (None, None),
        };
        if spec.renderer.is_none() && !config.contains_key("renderer") {
            if let Some(r) = renderer {
                config.insert("renderer".into(), json!(r));
            }
        }
        if spec.parser.is_none() && !config.contains_key("parser") {
            if let Some(p) = parser {
                config.insert("parser".into(), json!(p));
            }
        }
    }

    let mut layers: Vec<(Layer, String)> = base_layers
        .into_iter()
        .map(|b| (b.layer, b.status))
        .collect();

    // 4. Text layers, replacing inherited or detected ones like Ollama's set* helpers.
    if let Some(t) = spec.template.as_deref().filter(|t| !t.is_empty()) {
        check_template(t)?;
        remove_layers(store, &mut layers, store::MEDIA_TEMPLATE)?;
        let blob = store.write_blob_bytes(t.as_bytes())?;
        layers.push(new_text_layer(store::MEDIA_TEMPLATE, &blob));
    }
    if let Some(s) = spec.system.as_deref().filter(|s| !s.is_empty()) {
        remove_layers(store, &mut layers, store::MEDIA_SYSTEM)?;
        let blob = store.write_blob_bytes(s.as_bytes())?;
        layers.push(new_text_layer(store::MEDIA_SYSTEM, &blob));
    }
    for license in spec.licenses.iter() {
        let blob = store.write_blob_bytes(license.as_bytes())?;
        layers.push(new_text_layer(store::MEDIA_LICENSE, &blob));
    }
    // Parameters: inherited/detected values are kept unless the request sets the same key.
    for (layer, _) in layers
        .iter()
        .filter(|(l, _)| l.media_type == store::MEDIA_PARAMS)
    {
        let existing: Map<String, Value> = read_json_blob(store, &layer.digest)?;
        for (k, v) in existing {
            parameters.entry(k).or_insert(v);
        }
    }
    if !parameters.is_empty() {
        remove_layers(store, &mut layers, store::MEDIA_PARAMS)?;
        let bytes = gojson::encode_line(&gojson::sorted(&Value::Object(parameters)));
        let blob = store.write_blob_bytes(&bytes)?;
        layers.push(new_text_layer(store::MEDIA_PARAMS, &blob));
    }
    if !spec.messages.is_empty() {
        remove_layers(store, &mut layers, store::MEDIA_MESSAGES)?;
        let msgs: Vec<Value> = spec.messages.iter().map(Message::to_go_json).collect();
        let blob = store.write_blob_bytes(&gojson::encode_line(&Value::Array(msgs)))?;
        layers.push(new_text_layer(store::MEDIA_MESSAGES, &blob));
    }

    // 5. Config blob, then the manifest.
    if let Some(r) = &spec.renderer {
        config.insert("renderer".into(), json!(r));
    }
    if let Some(p) = &spec.parser {
        config.insert("parser".into(), json!(p));
    }
    if let Some(r) = &spec.requires {
        config.insert("requires".into(), json!(r));
    }
    let rootfs: Option<Vec<String>> = opts
        .config_rootfs
        .then(|| layers.iter().map(|(l, _)| l.digest.clone()).collect());
    let config_bytes = config_json(&config, families.as_deref(), rootfs.as_deref());
    let config_blob = store.write_blob_bytes(&config_bytes)?;
    let config_layer = Layer::new(store::MEDIA_CONFIG, &config_blob.digest, config_blob.size);

    for (_, status) in &layers {
        if !status.is_empty() {
            emit(Progress::status(status.clone()), &mut statuses);
        }
    }
    emit(Progress::status("writing manifest"), &mut statuses);
    let manifest = Manifest::new(config_layer, layers.into_iter().map(|(l, _)| l).collect());
    let manifest_digest = store.write_manifest(&name, &manifest)?;

    if !opts.no_prune {
        if let Some(old) = old_manifest {
            let old_digests: Vec<String> = old.manifest.all_digests().map(String::from).collect();
            store.remove_unreferenced(&old_digests)?;
        }
    }
    emit(Progress::status("success"), &mut statuses);
    Ok(CreateReport {
        name,
        manifest_digest,
        manifest,
        detected_template,
        statuses,
    })
}

/// `ollama create NAME -f Modelfile [-q LEVEL]`: parses `modelfile_text` (paths relative to
/// `base_dir`), applies `quantize` over the Modelfile, and creates the model. Returns the report
/// and the warnings Ollama prints (deprecated parameters).
pub fn create_from_modelfile(
    store: &Store,
    name: &str,
    modelfile_text: &str,
    base_dir: &Path,
    quantize: Option<&str>,
    opts: &CreateOptions<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(CreateReport, Vec<String>)> {
    let modelfile = Modelfile::parse(modelfile_text)?;
    let (mut spec, warnings) = CreateSpec::from_modelfile(&modelfile, base_dir)?;
    if let Some(q) = quantize {
        spec.quantize = Some(q.to_string());
    }
    Ok((create_with(store, name, &spec, opts, progress)?, warnings))
}

fn quantize_level(spec: &CreateSpec) -> Result<Option<QuantizeLevel>> {
    spec.quantize
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(QuantizeLevel::parse)
        .transpose()
}

/// Ollama's rule: only F16/BF16/F32 models are quantized, and not when already at `want`.
/// Returns the quantized GGUF, if one was made.
fn quantize_if_needed(
    header: &GgufHeader,
    path: &Path,
    want: QuantizeLevel,
    opts: &CreateOptions<'_>,
    scratch: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<PathBuf>> {
    let have = header.file_type_name();
    if !matches!(have, "F16" | "BF16" | "F32") {
        return Err(OllamaError::bad_request(
            "quantization is only supported for F16, BF16 and F32 models",
        ));
    }
    if have == want.name() {
        return Ok(None);
    }
    progress(Progress::status(format!(
        "quantizing {have} model to {}",
        want.name()
    )));
    opts.preparer
        .quantize(path, want, scratch, progress)
        .map(Some)
}

/// Removes the scratch directory (converter/quantizer outputs) when create finishes.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The GGUF files a source yields: (name for the layer's `from`, path, made by the preparer).
fn gguf_inputs(
    source: &ModelSource,
    adapter: bool,
    base_model: Option<&Path>,
    model_name: &str,
    opts: &CreateOptions<'_>,
    scratch: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<(String, PathBuf, bool)>> {
    let convert_status = if adapter {
        "converting adapter"
    } else {
        "converting model"
    };
    match source {
        ModelSource::Gguf(path) => {
            let key = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(vec![(key, path.clone(), false)])
        }
        ModelSource::HfDir(dir) => {
            progress(Progress::status(convert_status));
            let outs = opts.preparer.convert(ConvertJob { input: ConvertInput::Dir(dir), adapter, base_model, out_dir: scratch, model_name }, progress)?;
            Ok(outs.into_iter().map(|out| (String::new(), out, true)).collect())
        }
        ModelSource::Files(files) => {
            if files.is_empty() {
                return Err(OllamaError::bad_request("no files provided to convert"));
            }
            match detect_files_type(files) {
                Some(FilesType::Safetensors) => {
                    progress(Progress::status(convert_status));
                    let outs = opts.preparer.convert(ConvertJob { input: ConvertInput::Files(files), adapter, base_model, out_dir: scratch, model_name }, progress)?;
                    Ok(outs.into_iter().map(|out| (String::new(), out, true)).collect())
                }
                Some(FilesType::Gguf) => {
                    let mut sorted = files.clone();
                    sorted.sort_by(|a, b| a.0.cmp(&b.0));
                    group_split_shards(sorted, scratch)
                }
                None => Err(OllamaError::bad_request("unknown type")),
            }
        }
        ModelSource::Model(name) => Err(OllamaError::bad_request(format!(
            "{name:?} names a model, not files: an adapter must be a GGUF file or a safetensors directory"
        ))),
    }
}

/// `<prefix>-NNNNN-of-MMMMM.gguf` (llama.cpp's split names): (prefix, count).
fn split_name(key: &str) -> Option<(String, String)> {
    let base = key.rsplit('/').next()?;
    let stem = base.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(index) && digits(count)).then(|| (prefix.to_string(), count.to_string()))
}

/// A split set's name prefix and shard count.
type SplitGroup = (String, String);

/// Uploaded files that are shards of one split GGUF (Ollama groups them by name and
/// `split.count`) are linked under their names in a scratch folder, so the set is read as one
/// model from its first shard; single files keep their place and groups follow them, as in
/// Ollama's create.
fn group_split_shards(
    files: Vec<(String, PathBuf)>,
    scratch: &Path,
) -> Result<Vec<(String, PathBuf, bool)>> {
    let mut singles = Vec::new();
    let mut groups: Vec<(SplitGroup, Vec<(String, PathBuf)>)> = Vec::new();
    for (key, path) in files {
        let shard =
            gguf_meta::is_gguf(&path) && GgufHeader::open(&path).is_ok_and(|h| h.is_split_shard());
        match split_name(&key).filter(|_| shard) {
            Some(group) => match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push((key, path)),
                None => groups.push((group, vec![(key, path)])),
            },
            None if shard => {
                return Err(OllamaError::bad_request(format!(
                    "split GGUF {} must use llama.cpp split filename pattern",
                    gojson::go_quote(&key)
                )))
            }
            None => singles.push((key, path, false)),
        }
    }
    for (i, (_, members)) in groups.into_iter().enumerate() {
        let dir = scratch.join(format!("split-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| OllamaError::io("mkdir", &dir, &e))?;
        let mut first: Option<(String, PathBuf)> = None;
        for (key, path) in &members {
            let base = key.rsplit('/').next().unwrap_or(key);
            let link = dir.join(base);
            std::os::unix::fs::symlink(path, &link)
                .map_err(|e| OllamaError::io("link", &link, &e))?;
            if first.as_ref().is_none_or(|(k, _)| key < k) {
                first = Some((key.clone(), link));
            }
        }
        if let Some((key, link)) = first {
            singles.push((key, link, false));
        }
    }
    Ok(singles)
}

/// For a source converted from a Hugging Face checkpoint, the chat template Ollama's converter
/// stores in its GGUF (`convert/tokenizer.go` `parseTokenizer`), which is what Ollama's template
/// detection then reads: `chat_template` of `tokenizer_config.json` — a string, or from a list of
/// named templates the one named "default" — and nothing else (a `chat_template.jinja` beside
/// it is not read, unlike llama.cpp's converter, whose GGUF ckpt writes). `Some(None)`: a
/// converted source without one. `None`: a GGUF source (its own `tokenizer.chat_template`
/// counts).
fn converter_chat_template(source: &ModelSource) -> Option<Option<String>> {
    let config = match source {
        ModelSource::HfDir(dir) => Some(dir.join("tokenizer_config.json")),
        ModelSource::Files(files)
            if matches!(detect_files_type(files), Some(FilesType::Safetensors)) =>
        {
            files
                .iter()
                .find(|(name, _)| name == "tokenizer_config.json")
                .map(|(_, path)| path.clone())
        }
        _ => return None,
    };
    let parsed: Option<Value> = config
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let template = match parsed.as_ref().and_then(|c| c.get("chat_template")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(named)) => named
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|e| e.get("template").and_then(Value::as_str))
            .map(str::to_string),
        _ => None,
    };
    Some(template.filter(|t| !t.is_empty()))
}

enum FilesType {
    Safetensors,
    Gguf,
}

/// Ollama's `detectModelTypeFromFiles`: by extension, else by the GGUF magic.
fn detect_files_type(files: &[(String, PathBuf)]) -> Option<FilesType> {
    if files.iter().any(|(k, _)| k.ends_with(".safetensors")) {
        return Some(FilesType::Safetensors);
    }
    if files
        .iter()
        .any(|(k, p)| k.ends_with(".gguf") || gguf_meta::is_gguf(p))
    {
        return Some(FilesType::Gguf);
    }
    None
}

/// A GGUF given as an adapter must be a LoRA adapter (`general.type` adapter, `adapter.type`
/// lora) for the base model's architecture: llama.cpp refuses anything else when it loads it.
fn check_adapter(path: &Path, base_model: Option<&Path>) -> Result<()> {
    let header = GgufHeader::open(path)?;
    let name = path.display();
    if header.kind() != "adapter" {
        return Err(OllamaError::bad_request(format!(
            "{name} is not a LoRA adapter: its general.type is {:?}, expected \"adapter\"",
            header.kind()
        )));
    }
    match header.get_str("adapter.type") {
        Some("lora") => {}
        other => {
            return Err(OllamaError::bad_request(format!(
                "{name}: adapter.type is {other:?}, expected \"lora\" (only LoRA adapters are supported)"
            )))
        }
    }
    if let Some(base) = base_model {
        let base_header = GgufHeader::open(base)?;
        if base_header.architecture() != header.architecture() {
            return Err(OllamaError::bad_request(format!(
                "{name}: the adapter is for architecture {:?}, but the base model is {:?}",
                header.architecture(),
                base_header.architecture()
            )));
        }
    }
    Ok(())
}

/// Imports one GGUF as a blob and makes its layer (model, adapter or projector by its KVs).
fn gguf_layer(
    store: &Store,
    key: &str,
    path: &Path,
    converted: bool,
    scratch: &Path,
) -> Result<BaseLayer> {
    let mut header = GgufHeader::open(path)?;
    let mut path = path.to_path_buf();
    let mut converted = converted;
    if header.is_split_shard() {
        // Ollama imports the shards of a split GGUF as one model layer. A shard named by
        // llama.cpp's pattern finds its siblings next to it; the set is written as one GGUF.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if split_name(&name).is_none() {
            let shown = if key.is_empty() { &name } else { key };
            return Err(OllamaError::bad_request(format!(
                "split GGUF {} must use llama.cpp split filename pattern",
                gojson::go_quote(shown)
            )));
        }
        let (merged_header, split) = GgufHeader::open_split(&path)?;
        let merged = scratch.join(format!("merged-{}.gguf", std::process::id()));
        gguf_meta::merge_split(&split, &merged)?;
        drop(split);
        header = GgufHeader {
            path: merged.clone(),
            split_paths: merged_header.split_paths,
            ..GgufHeader::open(&merged)?
        };
        path = merged;
        converted = true;
    }
    let path = path.as_path();
    let media = if header.kind() == "adapter" {
        store::MEDIA_ADAPTER
    } else if header.is_projector() {
        store::MEDIA_PROJECTOR
    } else {
        store::MEDIA_MODEL
    };
    // Converter/quantizer outputs written into our scratch directory are moved, not copied;
    // anything else (user files, a preparer's cache) is copied.
    let blob = if converted && path.starts_with(scratch) {
        store.adopt_file(path)?
    } else {
        store.import_file(path)?
    };
    let layer = Layer::new(media, &blob.digest, blob.size);
    // No `from` on an imported file (Ollama >= 0.30 writes none); the status says what happened
    // (an uploaded blob is "existing", a file copied into a fresh store is a new layer).
    let _ = key;
    let verb = if blob.created {
        "creating new layer"
    } else {
        "using existing layer"
    };
    let status = format!("{verb} {}", blob.digest);
    let stored_path = store.blob_path(&blob.digest);
    Ok(BaseLayer {
        layer,
        status,
        header: Some(header),
        path: stored_path,
        quantized: false,
    })
}

fn text_layer(media: &str, blob: &BlobInfo, status: Option<String>) -> BaseLayer {
    let (layer, default_status) = new_text_layer(media, blob);
    BaseLayer {
        layer,
        status: status.unwrap_or(default_status),
        header: None,
        path: PathBuf::new(),
        quantized: false,
    }
}

fn new_text_layer(media: &str, blob: &BlobInfo) -> (Layer, String) {
    let verb = if blob.created {
        "creating new layer"
    } else {
        "using existing layer"
    };
    (
        Layer::new(media, &blob.digest, blob.size),
        format!("{verb} {}", blob.digest),
    )
}

/// Drops layers of `media` and deletes their blobs when no manifest uses them (Ollama's
/// `removeLayer`).
fn remove_layers(store: &Store, layers: &mut Vec<(Layer, String)>, media: &str) -> Result<()> {
    let removed: Vec<String> = layers
        .iter()
        .filter(|(l, _)| l.media_type == media)
        .map(|(l, _)| l.digest.clone())
        .collect();
    layers.retain(|(l, _)| l.media_type != media);
    let still_used: Vec<&str> = layers.iter().map(|(l, _)| l.digest.as_str()).collect();
    let orphans: Vec<String> = removed
        .into_iter()
        .filter(|d| !still_used.contains(&d.as_str()))
        .collect();
    store.remove_unreferenced(&orphans)?;
    Ok(())
}

fn read_json_blob<T: serde::de::DeserializeOwned>(store: &Store, digest: &str) -> Result<T> {
    let path = store.blob_path(&Digest::parse(digest)?);
    let bytes = std::fs::read(&path).map_err(|e| OllamaError::io("open", &path, &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OllamaError::internal(format!("{}: {e}", path.display())))
}

/// The config blob in `model.ConfigV2` field order, ending in a newline like json.Encoder.
fn config_json(
    fields: &Map<String, Value>,
    families: Option<&[String]>,
    rootfs: Option<&[String]>,
) -> Vec<u8> {
    let get = |k: &str| fields.get(k).cloned().unwrap_or_else(|| json!(""));
    let mut m = Map::new();
    m.insert("model_format".into(), get("model_format"));
    m.insert("model_family".into(), get("model_family"));
    m.insert(
        "model_families".into(),
        families.map(|f| json!(f)).unwrap_or(Value::Null),
    );
    m.insert("model_type".into(), get("model_type"));
    m.insert("file_type".into(), get("file_type"));
    for key in [
        "renderer",
        "parser",
        "requires",
        "remote_host",
        "remote_model",
        "capabilities",
        "context_length",
        "embedding_length",
        "base_name",
        "draft",
    ] {
        if let Some(v) = fields.get(key) {
            let empty = matches!(v, Value::Null)
                || v.as_str() == Some("")
                || v.as_array().is_some_and(|a| a.is_empty())
                || v.as_u64() == Some(0);
            if !empty {
                m.insert(key.into(), v.clone());
            }
        }
    }
    m.insert("architecture".into(), json!("amd64"));
    m.insert("os".into(), json!("linux"));
    if let Some(diff_ids) = rootfs {
        m.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
    }
    gojson::encode_line(&Value::Object(m))
}

/// Layers of a local model as a base (`FROM existing-model`): same blobs, `from` = its name.
fn layers_from_model(
    store: &Store,
    from: &str,
    config: &mut Map<String, Value>,
) -> Result<Vec<BaseLayer>> {
    let name = ModelName::parse(from)?;
    let name = store.existing_name(&name)?;
    let stored = store.read_manifest(&name)?.ok_or_else(|| {
        OllamaError::not_found(format!(
            "model '{from}' not found in {}; pulling models from a registry is Ollama's job (run `ollama pull {from}`)",
            store.root().display()
        ))
    })?;
    if let Ok(base) = read_json_blob::<Map<String, Value>>(store, &stored.manifest.config.digest) {
        for key in [
            "renderer",
            "parser",
            "requires",
            "model_format",
            "capabilities",
        ] {
            if let Some(v) = base.get(key) {
                config.insert(key.into(), v.clone());
            }
        }
    }
    let short = name.display_shortest();
    let mut out = Vec::new();
    for src in &stored.manifest.layers {
        let digest = Digest::parse(&src.digest)?;
        let path = store.blob_path(&digest);
        let size = std::fs::metadata(&path)
            .map_err(|e| OllamaError::io("stat", &path, &e))?
            .len();
        let mut layer = Layer::new(&src.media_type, &digest, size);
        layer.from = short.clone();
        layer.name = src.name.clone();
        let header = match src.media_type.as_str() {
            store::MEDIA_MODEL | store::MEDIA_PROJECTOR | store::MEDIA_ADAPTER => {
                Some(GgufHeader::open(&path)?)
            }
            _ => None,
        };
        out.push(BaseLayer {
            layer,
            status: format!("using existing layer {digest}"),
            header,
            path,
            quantized: false,
        });
    }
    Ok(out)
}

/// Checks a template as Ollama does when it stores one: Go's `text/template` parser with Go's
/// builtins and Ollama's functions, then Ollama's variable walk ([`crate::gotemplate`]). A
/// refusal is Ollama's 400 `template error: …` with Go's message.
pub fn check_template(t: &str) -> Result<()> {
    crate::gotemplate::check_ollama_template(t)
        .map_err(|e| OllamaError::bad_request(format!("template error: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_levels() {
        assert_eq!(QuantizeLevel::parse("q4_k").unwrap(), QuantizeLevel::Q4_K_M);
        assert_eq!(QuantizeLevel::parse("q8_0").unwrap().name(), "Q8_0");
        assert_eq!(
            QuantizeLevel::parse("q3_k_m").unwrap_err().message,
            "unsupported quantization type Q3_K_M - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"
        );
    }

    #[test]
    fn template_checks() {
        for t in templates::names() {
            check_template(&templates::named(t).unwrap().template).unwrap();
        }
        // Go lexes the lone `}` as a character token inside the still-open action.
        assert_eq!(
            check_template("{{ .Prompt }").unwrap_err().message,
            "template error: template: :1: unexpected \"}\" in operand"
        );
        assert_eq!(
            check_template("{{ if .System }}x\n").unwrap_err().message,
            "template error: template: :2: unexpected EOF"
        );
        assert_eq!(
            check_template("a\n{{ end }}").unwrap_err().message,
            "template error: template: :2: unexpected {{end}}"
        );
        assert!(check_template("{{ end }}").is_err());
        check_template("{{ \"}}\" }} {{/* }} */}}").unwrap();
    }
}
