//! The operations: inspect, convert, quantize, merge_lora, diff, verify, scan, pull, push and
//! ollama_create. Each returns the command line's `--json` document as text.

use std::path::{Path, PathBuf};

use ckpt::convert::{ConvertKind, OutputFormat};
use ckpt::{Error, GgmlType};
use pyo3::prelude::*;
use serde_json::Value;

use crate::{detached, path_list, Callback};

fn text(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("reports serialise")
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn parse_dtype(s: Option<&str>) -> ckpt::Result<Option<ckpt::DType>> {
    s.map(ckpt::crates::convert::cast::parse_float_dtype)
        .transpose()
}

/// The byte order `bigendian=True` asks for (the converters' `--bigendian`).
fn byte_order(bigendian: bool) -> ckpt::crates::gguf::ByteOrder {
    if bigendian {
        ckpt::crates::gguf::ByteOrder::Big
    } else {
        ckpt::crates::gguf::ByteOrder::Little
    }
}

fn parse_outtype(s: Option<&str>) -> ckpt::Result<ckpt::OutType> {
    let Some(s) = s else {
        return Ok(ckpt::OutType::Auto);
    };
    s.parse()
        .map_err(|_| usage(format!("unknown outtype '{s}' ({})", ckpt::OUTTYPE_CHOICES)))
}

/// `ckpt inspect --json PATH`: a file, folder, index or `hf://` URI, read from headers only.
#[pyfunction]
#[pyo3(signature = (path, *, key=None, summary=false))]
fn inspect(py: Python<'_>, path: PathBuf, key: Option<String>, summary: bool) -> PyResult<String> {
    detached(py, move || {
        ckpt::report::inspect(&path, key, summary).map(|v| text(&v))
    })
}

/// `ckpt convert SRC DST`: safetensors ⇄ .bin, Hugging Face → GGUF, GGUF → Hugging Face.
#[pyfunction]
#[pyo3(signature = (src, dst, *, to=None, outtype=None, dtype=None, max_shard_size=None,
    overwrite=false, verify=true, key=None, materialize_shared=false,
    allow_expanded_views=false, intermediate=None, pre_tokenizer=None, strict=false,
    base=None, base_model_id=None, dry_run=false, bigendian=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    to: Option<String>,
    outtype: Option<String>,
    dtype: Option<String>,
    max_shard_size: Option<u64>,
    overwrite: bool,
    verify: bool,
    key: Option<String>,
    materialize_shared: bool,
    allow_expanded_views: bool,
    intermediate: Option<String>,
    pre_tokenizer: Option<String>,
    strict: bool,
    base: Option<PathBuf>,
    base_model_id: Option<String>,
    dry_run: bool,
    bigendian: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let progress = Callback::new(progress);
    detached(py, move || {
        let to: Option<OutputFormat> = to.as_deref().map(str::parse).transpose()?;
        let progress = progress.map(|c| c.progress_fn());
        let gguf = ckpt::convert::writes_gguf(&dst, to);
        if gguf
            && (base.is_some() || base_model_id.is_some() || ckpt::convert::is_adapter_dir(&src))
        {
            let not_for_adapters = [
                ("dtype", dtype.is_some()),
                ("max_shard_size", max_shard_size.is_some()),
                ("key", key.is_some()),
                ("intermediate", intermediate.is_some()),
                ("pre_tokenizer", pre_tokenizer.is_some()),
                ("materialize_shared", materialize_shared),
                ("strict", strict),
            ];
            if let Some((arg, _)) = not_for_adapters.iter().find(|(_, set)| *set) {
                return Err(usage(format!(
                    "{arg} does not apply to a LoRA adapter converted to GGUF"
                )));
            }
            let opts = ckpt::convert::LoraToGgufOptions {
                outtype: ckpt::convert::adapter_outtype(outtype.as_deref())?,
                dry_run,
                byte_order: byte_order(bigendian),
            };
            return adapter_to_gguf(
                &src,
                &dst,
                base.as_deref(),
                base_model_id.as_deref(),
                &opts,
                overwrite,
            );
        }
        if base.is_some() || base_model_id.is_some() {
            return Err(usage("base and base_model_id apply to a PEFT LoRA adapter folder converted to GGUF (dst ending in .gguf or to='gguf')"));
        }
        if dry_run && !gguf {
            return Err(usage(
                "dry_run applies to a GGUF output (a model or a LoRA adapter converted to GGUF)",
            ));
        }
        if bigendian && !gguf {
            return Err(usage(
                "bigendian applies to a GGUF output (a model or a LoRA adapter converted to GGUF)",
            ));
        }
        if gguf {
            if dtype.is_some() {
                return Err(usage("dtype does not apply to GGUF output: the tensor types are chosen by outtype (f32, f16, bf16, q8_0, q4_k_m, …)"));
            }
            if max_shard_size.is_some() {
                return Err(usage(
                    "max_shard_size does not apply to GGUF output: ckpt writes a GGUF as one file",
                ));
            }
            let intermediate = match intermediate.as_deref() {
                None => ckpt::Intermediate::F16,
                Some(s) => s.parse().map_err(|_| {
                    usage(format!("intermediate must be f16, bf16 or f32, not '{s}'"))
                })?,
            };
            let opts = ckpt::convert::GgufOptions {
                outtype: parse_outtype(outtype.as_deref())?,
                intermediate,
                pre_tokenizer,
                key,
                overwrite,
                progress,
                dry_run,
                byte_order: byte_order(bigendian),
                ..Default::default()
            };
            return ckpt::convert::to_gguf(&src, &dst, &opts).map(|r| to_json(&r));
        }
        if outtype.is_some() || intermediate.is_some() || pre_tokenizer.is_some() {
            return Err(usage("outtype, intermediate and pre_tokenizer apply only to GGUF output (dst ending in .gguf or to='gguf'); use dtype to cast"));
        }
        let local_src = ckpt::resolve(&src)?;
        let kind = ckpt::convert::kind(&local_src, &dst, to)?;
        if kind == ConvertKind::Export {
            let opts = ckpt::convert::ExportOptions {
                target: to
                    .and_then(OutputFormat::target)
                    .unwrap_or(ckpt::Target::Safetensors),
                dtype: parse_dtype(dtype.as_deref())?,
                strict,
                overwrite,
                max_shard_size,
                verify,
                progress: progress.clone(),
            };
            return ckpt::convert::gguf_to_hf(&local_src, &dst, &opts).map(|r| text(&r.to_json()));
        }
        if strict {
            return Err(usage("strict applies only to GGUF -> Hugging Face export"));
        }
        let opts = ckpt::convert::ConvertOptions {
            to: to.and_then(OutputFormat::target),
            dtype: parse_dtype(dtype.as_deref())?,
            max_shard_size,
            materialize_shared,
            allow_expanded_views,
            key,
            verify,
            overwrite,
            progress,
        };
        ckpt::convert::convert(&local_src, &dst, &opts).map(|r| to_json(&r))
    })
}

/// A PEFT LoRA adapter folder to a GGUF adapter, as `ckpt convert ADAPTER out.gguf --base BASE`
/// (convert_lora_to_gguf.py): the base's config.json from `base`, from the Hub when
/// `base_model_id` is given (which then wins, as in the script), else from the adapter's
/// `base_model_name_or_path` when that is a local folder.
fn adapter_to_gguf(
    src: &Path,
    dst: &Path,
    base: Option<&Path>,
    base_model_id: Option<&str>,
    opts: &ckpt::convert::LoraToGgufOptions,
    overwrite: bool,
) -> ckpt::Result<String> {
    if !ckpt::convert::is_adapter_dir(src) {
        return Err(Error::Invalid {
            path: src.to_path_buf(),
            msg: "base was given, but this is not a PEFT adapter folder (adapter_config.json + adapter_model.safetensors or adapter_model.bin)".into(),
        });
    }
    let hub_base = base_model_id
        .map(ckpt::convert::adapter_base_from_hub)
        .transpose()?;
    let report =
        ckpt::convert::adapter_to_gguf(src, hub_base.as_deref().or(base), dst, opts, overwrite)?;
    Ok(to_json(&report))
}

fn ggml_type(s: Option<&str>, what: &str) -> ckpt::Result<Option<GgmlType>> {
    s.map(|s| {
        GgmlType::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = ckpt::crates::quant::quantizable_types()
                .map(|t| t.name())
                .collect();
            usage(format!(
                "{what}: unknown type '{s}' (valid: {})",
                names.join(", ")
            ))
        })
    })
    .transpose()
}

/// `ckpt quantize SRC DST TYPE`: llama-quantize's job, byte for byte.
#[pyfunction]
#[pyo3(signature = (src, dst, r#type, *, imatrix=None, nthreads=None, pure=false,
    output_tensor_type=None, token_embedding_type=None, leave_output_tensor=false,
    allow_requantize=false, overwrite=false))]
#[allow(clippy::too_many_arguments)]
fn quantize(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    r#type: String,
    imatrix: Option<PathBuf>,
    nthreads: Option<usize>,
    pure: bool,
    output_tensor_type: Option<String>,
    token_embedding_type: Option<String>,
    leave_output_tensor: bool,
    allow_requantize: bool,
    overwrite: bool,
) -> PyResult<String> {
    detached(py, move || {
        let ftype: ckpt::Ftype = r#type.parse()?;
        if pure && !ftype.default_type().is_quantized() {
            return Err(usage(format!("pure has no effect when the target is {ftype}: the per-tensor type mix it turns off applies only to quantized types")));
        }
        let mut opts = ckpt::QuantizeOptions::new(ftype);
        opts.pure = pure;
        opts.output_tensor_type = ggml_type(output_tensor_type.as_deref(), "output_tensor_type")?;
        opts.token_embedding_type =
            ggml_type(token_embedding_type.as_deref(), "token_embedding_type")?;
        opts.leave_output_tensor = leave_output_tensor;
        opts.allow_requantize = allow_requantize;
        opts.imatrix = imatrix;
        opts.threads = nthreads.unwrap_or(0);
        opts.overwrite = overwrite;
        let r = ckpt::quantize(&src, &dst, &opts)?;
        Ok(text(&ckpt::report::quantize(&dst, &ftype, &r)))
    })
}

/// `ckpt merge-lora --base BASE --adapter … --out OUT`. `adapters` are `(path, weight)` pairs; a
/// missing weight parses `DIR[:WEIGHT]` as the command line does.
#[pyfunction]
#[pyo3(signature = (base, adapters, out, *, to="safetensors".to_string(), outtype=None,
    dtype=None, max_shard_size=None, verify=true, overwrite=false, bigendian=false,
    progress=None))]
#[allow(clippy::too_many_arguments)]
fn merge_lora(
    py: Python<'_>,
    base: PathBuf,
    adapters: Vec<(String, Option<f32>)>,
    out: PathBuf,
    to: String,
    outtype: Option<String>,
    dtype: Option<String>,
    max_shard_size: Option<u64>,
    verify: bool,
    overwrite: bool,
    bigendian: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let progress = Callback::new(progress);
    detached(py, move || {
        if to != "gguf" && bigendian {
            return Err(usage(format!(
                "bigendian does not apply to to='{to}': it applies only to to='gguf'"
            )));
        }
        if to != "gguf" && outtype.is_some() {
            return Err(usage(format!("outtype does not apply to to='{to}': it applies only to to='gguf' (use dtype to cast)")));
        }
        if to == "gguf" && max_shard_size.is_some() {
            return Err(usage(
                "max_shard_size does not apply to to='gguf': ckpt writes a GGUF as one file",
            ));
        }
        let specs = adapters
            .iter()
            .map(|(dir, weight)| match weight {
                None => ckpt::lora::AdapterSpec::parse(dir),
                Some(w) => Ok(ckpt::lora::AdapterSpec {
                    dir: ckpt::resolve(Path::new(dir))?,
                    weight: *w,
                }),
            })
            .collect::<ckpt::Result<Vec<_>>>()?;
        let opts = ckpt::lora::MergeOptions {
            format: to.parse()?,
            outtype: parse_outtype(outtype.as_deref())?,
            byte_order: byte_order(bigendian),
            dtype: parse_dtype(dtype.as_deref())?,
            max_shard_size,
            verify,
            overwrite,
            progress: progress.map(|c| c.progress_fn()),
        };
        Ok(match ckpt::lora::merge(&base, &specs, &out, &opts)? {
            ckpt::lora::MergeOutcome::Gguf(merged, converted) => {
                text(&ckpt::report::merge_gguf(&merged, &converted))
            }
            ckpt::lora::MergeOutcome::Folder(report) => to_json(&report),
        })
    })
}

/// `ckpt diff A B --json`.
#[pyfunction]
#[pyo3(signature = (a, b, *, tolerance=0.0))]
fn diff(py: Python<'_>, a: PathBuf, b: PathBuf, tolerance: f64) -> PyResult<String> {
    detached(py, move || {
        ckpt::diff(&a, &b, tolerance).map(|o| to_json(&o.report))
    })
}

/// `ckpt verify PATH --json`.
#[pyfunction]
#[pyo3(signature = (path, *, scan_values=false))]
fn verify(py: Python<'_>, path: PathBuf, scan_values: bool) -> PyResult<String> {
    detached(py, move || {
        ckpt::verify(&path, scan_values).map(|r| to_json(&r))
    })
}

/// `ckpt scan PATHS --json`.
#[pyfunction]
fn scan(py: Python<'_>, paths: &Bound<'_, PyAny>) -> PyResult<String> {
    let list = path_list(paths)?;
    detached(py, move || Ok(text(&ckpt::report::scan(&list).to_json())))
}

/// `ckpt pull REPO --json`.
#[pyfunction]
#[pyo3(signature = (repo_id, revision=None, *, cache_dir=None, local_dir=None,
    allow_patterns=Vec::new(), ignore_patterns=Vec::new(), token=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn pull(
    py: Python<'_>,
    repo_id: String,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    local_dir: Option<PathBuf>,
    allow_patterns: Vec<String>,
    ignore_patterns: Vec<String>,
    token: Option<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let progress = Callback::new(progress).map(|cb| cb.transfer_fn(|_| "download"));
    detached(py, move || {
        let opts = ckpt::hub::PullOptions {
            revision,
            include: allow_patterns,
            exclude: ignore_patterns,
            cache_dir,
            local_dir,
            progress,
            ..Default::default()
        };
        ckpt::hub::pull(&repo_id, &opts, token.as_deref()).map(|r| text(&ckpt::report::pull(&r)))
    })
}

/// `ckpt push LOCAL REPO --json`.
#[pyfunction]
#[pyo3(signature = (local, repo_id, *, revision=None, create_pr=false, path_in_repo=None,
    commit_message=None, commit_description=None, allow_patterns=Vec::new(),
    ignore_patterns=Vec::new(), private=false, create_repo=false, follow_symlinks=false,
    progress=None))]
#[allow(clippy::too_many_arguments)]
fn push(
    py: Python<'_>,
    local: PathBuf,
    repo_id: String,
    revision: Option<String>,
    create_pr: bool,
    path_in_repo: Option<String>,
    commit_message: Option<String>,
    commit_description: Option<String>,
    allow_patterns: Vec<String>,
    ignore_patterns: Vec<String>,
    private: bool,
    create_repo: bool,
    follow_symlinks: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let progress = Callback::new(progress)
        .map(|cb| cb.transfer_fn(|phase| if phase == "hashing" { "hash" } else { "upload" }));
    detached(py, move || {
        let opts = ckpt::hub::PushOptions {
            revision,
            create_pr,
            path_in_repo,
            message: commit_message,
            description: commit_description,
            include: allow_patterns,
            exclude: ignore_patterns,
            private,
            create_repo,
            follow_symlinks,
            progress,
        };
        ckpt::hub::push(&local, &repo_id, &opts).map(|r| text(&r.to_json()))
    })
}

/// `ckpt ollama create NAME --json`: from a model (folder, .gguf, `hf://`) with the parts a
/// Modelfile would add (template and license as files), or from a Modelfile.
#[pyfunction]
#[pyo3(signature = (name, source=None, *, modelfile=None, quantize=None, template_file=None,
    system=None, parameters=Vec::new(), license_file=None, store=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn ollama_create(
    py: Python<'_>,
    name: String,
    source: Option<PathBuf>,
    modelfile: Option<PathBuf>,
    quantize: Option<String>,
    template_file: Option<PathBuf>,
    system: Option<String>,
    parameters: Vec<String>,
    license_file: Option<PathBuf>,
    store: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let cb = Callback::new(progress);
    detached(py, move || {
        let store = match store {
            Some(root) => ckpt::ollama::Store::new(root),
            None => ckpt::ollama::Store::from_env().map_err(Error::from)?,
        };
        let from = match (modelfile, source) {
            (Some(mf), None) => {
                if template_file.is_some()
                    || system.is_some()
                    || !parameters.is_empty()
                    || license_file.is_some()
                {
                    return Err(usage("template, system, parameters and license cannot be combined with modelfile: the Modelfile says them (TEMPLATE, SYSTEM, PARAMETER, LICENSE lines)"));
                }
                ckpt::ollama::CreateFrom::Modelfile(mf)
            }
            (None, Some(from)) => ckpt::ollama::CreateFrom::Model {
                from,
                template: template_file,
                system,
                params: parameters,
                license: license_file,
                adapter: None,
            },
            (Some(_), Some(_)) => {
                return Err(usage("give either source or modelfile, not both"));
            }
            (None, None) => {
                return Err(usage(
                    "give source (a model folder, a .gguf or hf://…) or modelfile",
                ));
            }
        };
        let request = ckpt::ollama::CreateRequest {
            name,
            from,
            quantize,
        };
        let mut statuses = Vec::new();
        let mut warnings = Vec::new();
        let mut on_progress = |p: ckpt::ollama::Progress| {
            if let Some(cb) = &cb {
                cb.emit(
                    "status",
                    &p.status,
                    p.completed.unwrap_or(0),
                    p.total.unwrap_or(0),
                );
            }
            statuses.push(p.status);
        };
        let report = ckpt::ollama::create(&store, &request, &mut on_progress, &mut |w| {
            warnings.push(w)
        })?;
        Ok(text(&ckpt::report::ollama_create(
            &report, &statuses, &warnings,
        )))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(merge_lora, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(pull, m)?)?;
    m.add_function(wrap_pyfunction!(push, m)?)?;
    m.add_function(wrap_pyfunction!(ollama_create, m)?)?;
    Ok(())
}
