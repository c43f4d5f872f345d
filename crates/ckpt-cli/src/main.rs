//! The `ckpt` command line: a thin layer of argument parsing, progress bars and output formatting
//! over the library crates.

mod compare;
mod gguf_split;
mod inspect;
mod ollama;
mod progress;
mod quantize;
mod remote;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use ckpt::convert::{ConvertKind, OutputFormat};
use ckpt::{Error, ErrorKind};
use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  verification found a difference, or another failure
  2  usage error (bad arguments, output exists without --force)
  3  invalid or corrupt input (the message names the file and tensor or byte offset)
  4  input refused for safety (e.g. a pickle importing something outside the allowlist)
  5  unsupported input or request
  6  I/O error
  130 interrupted (no partial output is left behind)";

#[derive(Parser)]
#[command(
    name = "ckpt",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CKPT_GIT_REV"), ")"),
    about = "Convert, inspect and check ML checkpoints: safetensors, PyTorch .bin, GGUF. Streaming, and never executes anything from a file.",
    after_help = EXIT_CODES,
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Print machine-readable JSON on stdout instead of text
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars or informational messages
    #[arg(short, long, global = true)]
    quiet: bool,
}

// Parsed once per run: boxing the big argument structs would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Convert between PyTorch .bin, safetensors and GGUF (a file or a whole model folder)
    #[command(after_help = "\
Examples:
  ckpt convert pytorch_model.bin model.safetensors
  ckpt convert ./Llama-3.2-1B llama.gguf --outtype f16
  ckpt convert ./Qwen2.5-0.5B qwen-Q4_K_M.gguf --outtype q4_k_m
  ckpt convert ./Llama-3.2-1B --outfile llama-q8_0.gguf --outtype q8_0   (as convert_hf_to_gguf.py)
  ckpt convert ./Llama-3.2-1B llama.gguf --outtype q8_0 --dry-run   (plan and size, nothing written)
  ckpt convert model-Q4_K_M.gguf ./model-hf --dtype bf16        (GGUF back to a Hugging Face folder)
  ckpt convert ./llama-bin ./llama-st --to safetensors --max-shard-size 5GB
  ckpt convert model.safetensors pytorch_model.bin --dtype f16
  ckpt convert training.ckpt weights.safetensors --key state_dict

Shared tensors (tied weights, views) are written once, like safetensors' convert.py, and recorded in
the metadata as `dropped -> kept`; --materialize-shared writes every name instead. The output is written
under a temporary name, re-read and compared with the source, and only then renamed into place.")]
    Convert(ConvertArgs),
    /// Show the tensors, dtypes, shapes, parameter counts and metadata of a checkpoint
    #[command(after_help = "\
Examples:
  ckpt inspect model.safetensors
  ckpt inspect ./model-folder --json | jq .total_parameters
  ckpt inspect pytorch_model.bin")]
    Inspect(inspect::InspectArgs),
    /// Quantize a GGUF like llama-quantize (same per-tensor types, same bytes)
    #[command(after_help = "\
Examples:
  ckpt quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M
  ckpt quantize model-f16.gguf model-Q8_0.gguf q8_0 --pure
  ckpt quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M 4      (4 threads, as llama-quantize IN OUT TYPE NTHREADS)
  ckpt quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M --imatrix imatrix.gguf
  ckpt quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M --tensor-type attn_v=q8_0 --override-kv general.name=str:mine
  ckpt quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M --prune-layers 20,21 --split-max-size 5G
  ckpt quantize --keep-split model-f16-00001-of-00003.gguf model-Q4_K_M.gguf Q4_K_M

The output is byte-identical to llama-quantize (llama.cpp 0c1e57098, x86-64 build) on the same input:
the same per-tensor type choice (output/token_embd rules, more bits for some attn_v/ffn_down layers,
shape fallbacks), tensor order and metadata order.")]
    Quantize(quantize::QuantizeArgs),
    /// Split a GGUF into shards or merge them, like llama-gguf-split (same bytes)
    #[command(after_help = "\
Examples:
  ckpt gguf-split --split-max-size 5G model.gguf model            (model-00001-of-0000N.gguf, ...)
  ckpt gguf-split --split --split-max-tensors 128 model.gguf out/model
  ckpt gguf-split --merge model-00001-of-00003.gguf model.gguf
  ckpt gguf-split --dry-run --split-max-size 2G model.gguf model

The shards and the merged file are byte-identical to llama-gguf-split's (llama.cpp 0c1e57098): the first
shard holds every KV, then split.no, split.tensors.count, split.count; the others only those three.
Like llama-gguf-split, --merge keeps the split.* keys (split.count = 0). No shard appears unless all
of them are written.")]
    GgufSplit(gguf_split::GgufSplitArgs),
    /// Merge PEFT LoRA adapters (LoRA, rsLoRA, DoRA) into their base model, streaming, with PEFT's math
    #[command(
        name = "merge-lora",
        after_help = "\
Examples:
  ckpt merge-lora --base ./Llama-3.2-1B --adapter ./my-lora --out ./merged
  ckpt merge-lora --base ./base --adapter ./style:0.5 --adapter ./task --out ./merged --dtype bf16 --max-shard-size 2GB

Adapters are applied in order; ADAPTER:WEIGHT scales that adapter's deltas. Deltas are computed in f32 and
rounded once to the output dtype (the base dtype unless --dtype). The output folder gets the merged weights
and the base's config, generation config, tokenizer files and chat template."
    )]
    MergeLora(MergeLoraArgs),
    /// Build models into Ollama's store and manage them (create, show, list, rm, cp)
    #[command(subcommand)]
    Ollama(ollama::OllamaCommand),
    /// Serve Ollama's model-management HTTP API (blobs, create, tags, show, delete, copy) on the store
    #[command(after_help = "\
Examples:
  ckpt serve
  ckpt serve --host 127.0.0.1:11435

Scripts written for Ollama's /api/blobs + /api/create + /api/tags + /api/show keep working; /api/create
converts safetensors uploads and quantizes with ckpt. Running models (/api/generate, /api/chat, …) stays
Ollama's job: those endpoints answer 501 with an explanation.")]
    Serve(ollama::ServeArgs),
    /// Download a Hugging Face repo into the standard cache (huggingface_hub's layout), resumable and verified
    #[command(after_help = "\
Examples:
  ckpt pull HuggingFaceTB/SmolLM2-135M
  ckpt pull meta-llama/Llama-3.2-1B --include '*.safetensors' --include '*.json'
  ckpt pull org/model --revision refs/pr/3

Honours HF_ENDPOINT, HF_TOKEN (or the token file), HF_HOME / HF_HUB_CACHE and HF_HUB_OFFLINE. Every
command that reads a model also accepts hf://ORG/NAME[@REV][/PATH] and resolves it through this cache.")]
    Pull(remote::PullArgs),
    /// Upload a file or folder to the Hub, optionally as a pull request (no git, no git-lfs)
    #[command(after_help = "\
Examples:
  ckpt push ./model-st org/model --create-pr -m 'Add safetensors weights'
  ckpt push model-Q4_K_M.gguf org/model-GGUF --path-in-repo model-Q4_K_M.gguf
  ckpt push ./merged me/new-model --create-repo --private

Uses the Hub's commit API like huggingface_hub: preupload, LFS batch (multipart for large files, failed
parts retried alone), then one commit once every upload succeeded. Files the Hub already has are not sent.
Token from HF_TOKEN or the token file; HF_ENDPOINT is honoured.")]
    Push(remote::PushArgs),
    /// Compare two checkpoints tensor by tensor, across formats (max abs error, RMSE, cosine, identical bytes)
    #[command(after_help = "\
Examples:
  ckpt diff pytorch_model.bin model.safetensors
  ckpt diff ./model-bf16 ./model-f16 --tolerance 1e-2
  ckpt diff a.safetensors b.safetensors --json

Exit codes: 0 same (every tensor on both sides, within --tolerance), 1 different, 2 error.")]
    Diff(compare::DiffArgs),
    /// Check a checkpoint's integrity: every file parses, shards and tensors complete, hashes, NaN/Inf
    #[command(after_help = "\
Examples:
  ckpt verify ./model-folder
  ckpt verify ~/.cache/huggingface/hub/models--org--name/snapshots/<rev> --scan-values

Files inside a Hugging Face cache are checked against the sha256 their blob is named after.
Exit codes: 0 no problem found, 1 problems found (listed), other codes as for every command.")]
    Verify(compare::VerifyArgs),
    /// List every global a pickle imports and every call it makes, flagging anything outside the allowlist (nothing is executed)
    #[command(after_help = "\
Examples:
  ckpt scan pytorch_model.bin
  ckpt scan ./downloads --json

Exit code 4 when any file imports a global outside the allowlist, 0 when all are clean.")]
    Scan(scan::ScanArgs),
}

#[derive(Args)]
struct ConvertArgs {
    /// Source: a .safetensors/.bin/.pt file, an *.index.json, or a model folder
    src: PathBuf,
    /// Destination: a file (model.safetensors, pytorch_model.bin, model.gguf) or a folder
    #[arg(required_unless_present = "outfile", conflicts_with = "outfile")]
    dst: Option<PathBuf>,
    /// GGUF destination, as convert_hf_to_gguf.py's --outfile (same as giving DST ending in .gguf)
    #[arg(long, value_name = "FILE")]
    outfile: Option<PathBuf>,
    /// Output format (default: from the destination's extension, else the other format)
    #[arg(long, value_parser = ["safetensors", "bin", "gguf"])]
    to: Option<String>,
    /// GGUF only: f32, f16, bf16, q8_0, auto (as convert_hf_to_gguf.py's --outtype; default auto), or
    /// any llama-quantize type (q4_k_m, q6_k, …: convert_hf_to_gguf.py then llama-quantize in one step)
    #[arg(long)]
    outtype: Option<String>,
    /// GGUF with a llama-quantize --outtype: the precision converted to before quantizing (f16 like
    /// `convert_hf_to_gguf.py --outtype f16` + `llama-quantize`; bf16 keeps bf16 weights exact)
    #[arg(long)]
    intermediate: Option<String>,
    /// GGUF: pre-tokenizer name to use when the BPE tokenizer is not one llama.cpp knows
    #[arg(long)]
    pre_tokenizer: Option<String>,
    /// safetensors/.bin/GGUF->HF only: cast floating-point tensors (f32, f16, bf16); for GGUF output
    /// use --outtype
    #[arg(long)]
    dtype: Option<String>,
    /// safetensors/.bin only: split into shards of at most this size (decimal units: 5GB, 500MB; as
    /// save_pretrained's max_shard_size); writes a folder with an index
    #[arg(long)]
    max_shard_size: Option<String>,
    /// Write every name of tensors that share memory instead of keeping one per storage
    #[arg(long)]
    materialize_shared: bool,
    /// Write views whose dense size is over 16x their storage and over 1 GiB (expand()ed tensors)
    #[arg(long)]
    allow_expanded_views: bool,
    /// Use only this entry of a pickled checkpoint (e.g. state_dict, model)
    #[arg(long)]
    key: Option<String>,
    /// Skip re-reading and comparing the output with the source
    #[arg(long)]
    no_verify: bool,
    /// Replace an existing output
    #[arg(long)]
    force: bool,
    /// GGUF output: list every tensor that needed a type fallback (by default they are counted)
    #[arg(short, long)]
    verbose: bool,
    /// GGUF -> Hugging Face: refuse architectures without an HF mapping instead of exporting GGUF names
    #[arg(long)]
    strict: bool,
    /// After converting hf://ORG/NAME, open a pull request on that repo adding the safetensors
    /// weights (the job of safetensors' convert.py)
    #[arg(long)]
    push_pr: bool,
    /// GGUF: also write the vision encoder + projector of a multimodal folder to this file (what
    /// convert_hf_to_gguf.py --mmproj writes), in the same pass
    #[arg(long, value_name = "FILE")]
    mmproj: Option<PathBuf>,
    /// GGUF: also convert the sentence-transformers Dense modules of modules.json
    /// (EmbeddingGemma's 2_Dense/3_Dense), as convert_hf_to_gguf.py
    /// --sentence-transformers-dense-modules does
    #[arg(long)]
    sentence_transformers_dense_modules: bool,
    /// GGUF with --mmproj: the projector's type (f32, f16, bf16, q8_0, auto; default: --outtype,
    /// or the --intermediate precision when --outtype is a llama-quantize type)
    #[arg(long, value_name = "TYPE", requires = "mmproj")]
    mmproj_outtype: Option<String>,
    /// GGUF with a llama-quantize --outtype: llama-quantize's options
    #[command(flatten)]
    mix: quantize::MixArgs,
    /// GGUF output as a split set
    #[command(flatten)]
    split: quantize::SplitOutArgs,
    /// GGUF output: a split set whose first shard holds only the metadata, the tensors starting
    /// in the second (as convert_hf_to_gguf.py --no-tensor-first-split; alone, it makes two
    /// shards)
    #[arg(long)]
    no_tensor_first_split: bool,
    /// PEFT LoRA adapter source (adapter_config.json + adapter_model.safetensors/.bin) to a GGUF
    /// adapter, as convert_lora_to_gguf.py --base: the base model folder (only its config.json is
    /// read; hf://ORG/NAME allowed). Default: the adapter's base_model_name_or_path if it is a local
    /// folder. The adapter's --outtype defaults to f32, as in the script.
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
    /// As convert_lora_to_gguf.py --base-model-id: the base model's Hub id (ORG/NAME); only its
    /// config.json is downloaded (into the Hugging Face cache). --base is then ignored.
    #[arg(long, value_name = "ORG/NAME")]
    base_model_id: Option<String>,
    /// GGUF output (f32, f16, bf16, q8_0, auto), as convert_hf_to_gguf.py / convert_lora_to_gguf.py
    /// --dry-run: plan the whole file and print what would be written, writing nothing
    #[arg(long)]
    dry_run: bool,
    /// GGUF output (f32, f16, bf16, q8_0, auto; a model or a LoRA adapter), as
    /// convert_hf_to_gguf.py / convert_lora_to_gguf.py --bigendian: a big-endian file for
    /// big-endian hosts (s390x), the same bytes as the scripts write
    #[arg(long)]
    bigendian: bool,
}

#[derive(Args)]
struct MergeLoraArgs {
    /// The base model folder
    #[arg(long)]
    base: PathBuf,
    /// An adapter folder (adapter_config.json + adapter_model.safetensors), optionally DIR:WEIGHT; repeatable
    #[arg(long = "adapter", required = true)]
    adapters: Vec<String>,
    /// Output model folder
    #[arg(long)]
    out: PathBuf,
    /// Output format; gguf writes OUT as a GGUF file, the same as merging and then running `ckpt convert`
    #[arg(long, value_parser = ["safetensors", "bin", "gguf"], default_value = "safetensors")]
    to: String,
    /// With --to gguf: f32, f16, bf16, q8_0, auto (default) or a llama-quantize type (q4_k_m, …)
    #[arg(long)]
    outtype: Option<String>,
    /// With --to gguf (f32, f16, bf16, q8_0, auto): a big-endian GGUF, the bytes
    /// convert_hf_to_gguf.py --bigendian writes for the merged folder
    #[arg(long)]
    bigendian: bool,
    /// Cast floating-point tensors of the output (f32, f16, bf16)
    #[arg(long)]
    dtype: Option<String>,
    /// Split into shards of at most this size (decimal units: 5GB, 500MB)
    #[arg(long)]
    max_shard_size: Option<String>,
    /// Skip re-reading and comparing the output
    #[arg(long)]
    no_verify: bool,
    /// Replace an existing output
    #[arg(long)]
    force: bool,
}

/// Help is wrapped at the terminal's width, and not at all when stdout is not a terminal (a pipe,
/// a file, `less` reading a pipe) unless COLUMNS says how wide to wrap: clap would otherwise wrap
/// at a fixed 100 columns there.
fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let columns_set = std::env::var("COLUMNS").is_ok_and(|c| c.trim().parse::<usize>().is_ok());
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) || columns_set {
        cmd
    } else {
        cmd.term_width(0)
    }
}

fn main() -> ExitCode {
    use clap::FromArgMatches;
    // Output piped into `head` and the like: end quietly when the reader goes away, as Unix
    // tools do, instead of panicking in println!. Outputs are written under temporary names
    // that a killed process never renames into place, so this leaves nothing half-written.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let _ = ctrlc::set_handler(|| {
        ckpt::crates::core::atomic::cleanup_pending();
        eprintln!("\ninterrupted; no partial output was left");
        std::process::exit(130);
    });
    let result = match &cli.command {
        Command::Convert(a) => run_convert(a, &cli.global),
        Command::Inspect(a) => inspect::run(a, &cli.global),
        Command::Scan(a) => scan::run(a, &cli.global),
        Command::Pull(a) => remote::pull(a, &cli.global),
        Command::Push(a) => remote::push(a, &cli.global),
        Command::Ollama(c) => ollama::run(c, &cli.global),
        Command::Serve(a) => ollama::serve(a, &cli.global),
        Command::Quantize(a) => quantize::run(a, &cli.global),
        Command::GgufSplit(a) => gguf_split::run(a, &cli.global),
        Command::Diff(a) => match compare::run_diff(a, &cli.global) {
            Ok(same) => {
                return if same {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("error: {}", message(&e));
                return ExitCode::from(2);
            }
        },
        Command::Verify(a) => compare::run_verify(a, &cli.global),
        Command::MergeLora(a) => run_merge_lora(a, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

impl ConvertArgs {
    fn dst(&self) -> &std::path::Path {
        self.dst
            .as_deref()
            .or(self.outfile.as_deref())
            .expect("clap requires DST or --outfile")
    }
}

/// The chosen output, as the refusals of options that do not apply name it.
fn describe(kind: ConvertKind, a: &ConvertArgs) -> String {
    match kind {
        ConvertKind::Gguf => "GGUF output".into(),
        ConvertKind::Export => format!(
            "GGUF -> Hugging Face export ({})",
            if a.to.as_deref() == Some("bin") {
                ".bin"
            } else {
                "safetensors"
            }
        ),
        ConvertKind::Plain => match a.to.as_deref() {
            Some("bin") => ".bin output".into(),
            Some(_) => "safetensors output".into(),
            None => match ckpt::crates::convert::Target::from_path(a.dst()) {
                Some(ckpt::crates::convert::Target::Bin) => ".bin output".into(),
                Some(_) => "safetensors output".into(),
                None => "safetensors/.bin output".into(),
            },
        },
    }
}

/// Options that would be silently ignored by the chosen output are refused (exit 2) with the reason.
fn check_convert_options(a: &ConvertArgs, kind: ConvertKind) -> Result<(), Error> {
    let refuse = |flag: &str, why: &str| -> Result<(), Error> {
        Err(Error::Usage(format!(
            "{flag} does not apply to {}: {why}",
            describe(kind, a)
        )))
    };
    if a.outfile.is_some() && a.to.as_deref().is_some_and(|t| t != "gguf") {
        return refuse(
            "--outfile",
            "--outfile names a GGUF output (as in convert_hf_to_gguf.py); give DST for other formats",
        );
    }
    match kind {
        ConvertKind::Gguf => {
            if a.dtype.is_some() {
                return refuse("--dtype", "the GGUF tensor types are chosen by --outtype (f32, f16, bf16, q8_0, q4_k_m, …)");
            }
            if a.max_shard_size.is_some() {
                return refuse(
                    "--max-shard-size",
                    "a GGUF is split with --split-max-size / --split-max-tensors (as llama-gguf-split)",
                );
            }
            if a.materialize_shared {
                return refuse(
                    "--materialize-shared",
                    "the GGUF tensors are chosen by the architecture's table",
                );
            }
            if a.no_verify {
                return refuse(
                    "--no-verify",
                    "GGUF conversion has no separate verification pass to skip",
                );
            }
            if a.strict {
                return refuse("--strict", "it applies only to GGUF -> Hugging Face export");
            }
            if a.push_pr {
                return refuse(
                    "--push-pr",
                    "the pull request adds safetensors weights (safetensors' convert.py job)",
                );
            }
            let outtype = a.outtype.as_deref().unwrap_or("auto");
            let direct = ["auto", "f32", "f16", "bf16", "q8_0"];
            if let Some(flag) = a.mix.any() {
                if direct.iter().any(|d| outtype.eq_ignore_ascii_case(d)) {
                    return refuse(
                        flag,
                        &format!("--outtype {outtype} is written directly; llama-quantize's options apply only to a llama-quantize --outtype (q4_k_m, q6_k, …)"),
                    );
                }
            }
            if a.intermediate.is_some() && direct.iter().any(|d| outtype.eq_ignore_ascii_case(d)) {
                return refuse(
                    "--intermediate",
                    &format!("--outtype {outtype} is written directly; --intermediate applies only to a llama-quantize --outtype (q4_k_m, q6_k, …)"),
                );
            }
        }
        ConvertKind::Export | ConvertKind::Plain => {
            let what =
                "it applies only to GGUF output (DST ending in .gguf, --to gguf or --outfile)";
            if a.outtype.is_some() {
                return refuse("--outtype", &format!("{what}; use --dtype to cast"));
            }
            if a.intermediate.is_some() {
                return refuse("--intermediate", what);
            }
            if let Some(flag) = a.mix.any() {
                return refuse(flag, what);
            }
            if a.split.any() || a.no_tensor_first_split {
                return refuse(
                    "--split-max-size/--split-max-tensors/--no-tensor-first-split",
                    &format!("{what}; use --max-shard-size for safetensors/.bin shards"),
                );
            }
            if a.pre_tokenizer.is_some() {
                return refuse("--pre-tokenizer", what);
            }
            if a.verbose {
                return refuse("--verbose", "it lists the type fallbacks of GGUF output");
            }
            if a.mmproj.is_some() {
                return refuse("--mmproj", what);
            }
            if a.sentence_transformers_dense_modules {
                return refuse("--sentence-transformers-dense-modules", what);
            }
            if a.bigendian {
                return refuse("--bigendian", what);
            }
            if kind == ConvertKind::Plain && a.strict {
                return refuse("--strict", "it applies only to GGUF -> Hugging Face export");
            }
            if kind == ConvertKind::Export {
                if a.materialize_shared {
                    return refuse("--materialize-shared", "a GGUF has no shared tensors");
                }
                if a.key.is_some() {
                    return refuse("--key", "it selects an entry of a pickled checkpoint");
                }
                if a.push_pr {
                    return refuse(
                        "--push-pr",
                        "it needs the source as hf://ORG/NAME in safetensors or .bin",
                    );
                }
                if a.no_verify && a.to.as_deref() != Some("bin") {
                    return refuse(
                        "--no-verify",
                        "the export to safetensors has no separate verification pass to skip",
                    );
                }
            }
        }
    }
    Ok(())
}

/// --to, or gguf when --outfile names the GGUF.
fn output_format(a: &ConvertArgs) -> Option<OutputFormat> {
    match a.to.as_deref() {
        Some("bin") => Some(OutputFormat::Bin),
        Some("gguf") => Some(OutputFormat::Gguf),
        Some(_) => Some(OutputFormat::Safetensors),
        None if a.outfile.is_some() => Some(OutputFormat::Gguf),
        None => None,
    }
}

fn run_convert(a: &ConvertArgs, g: &GlobalArgs) -> Result<(), Error> {
    let to = output_format(a);
    if ckpt::convert::writes_gguf(a.dst(), to)
        && (a.base.is_some() || a.base_model_id.is_some() || ckpt::convert::is_adapter_dir(&a.src))
    {
        return run_convert_adapter(a, g);
    }
    if a.base.is_some() || a.base_model_id.is_some() {
        return Err(Error::Usage(
            "--base/--base-model-id apply to a PEFT LoRA adapter converted to GGUF (ckpt convert ADAPTER_DIR adapter.gguf --base BASE_DIR)".into(),
        ));
    }
    if ckpt::convert::writes_gguf(a.dst(), to) {
        check_convert_options(a, ConvertKind::Gguf)?;
        return run_convert_gguf(a, g);
    }
    if a.dry_run {
        return Err(Error::Usage(
            "--dry-run applies to a GGUF output (a model or a LoRA adapter converted to GGUF)"
                .into(),
        ));
    }
    let local_src = ckpt::resolve(&a.src)?;
    let kind = ckpt::convert::kind(&local_src, a.dst(), to)?;
    check_convert_options(a, kind)?;
    if kind == ConvertKind::Export {
        return run_export(a, &local_src, g);
    }
    if a.key.is_some() {
        // --key picks an entry of a pickled checkpoint; other sources have none to pick.
        let format = ckpt::open(&local_src, &Default::default())?.format;
        if !matches!(format, ckpt::Format::TorchZip | ckpt::Format::TorchLegacy) {
            return Err(Error::Usage(format!(
                "--key does not apply to a {} source: it selects an entry of a pickled PyTorch checkpoint",
                format.name()
            )));
        }
    }
    let dtype = parse_dtype(a.dtype.as_deref())?;
    let max_shard_size = parse_shard_size(a.max_shard_size.as_deref())?;
    let bars = progress::Bars::new(g.quiet || g.json);
    let opts = ckpt::convert::ConvertOptions {
        to: to.and_then(OutputFormat::target),
        dtype,
        max_shard_size,
        materialize_shared: a.materialize_shared,
        allow_expanded_views: a.allow_expanded_views,
        key: a.key.clone(),
        verify: !a.no_verify,
        overwrite: a.force,
        progress: Some(bars.callback()),
    };
    let src_text = a.src.to_string_lossy().into_owned();
    if a.push_pr && !src_text.starts_with("hf://") {
        return Err(Error::Usage(
            "--push-pr needs the source as hf://ORG/NAME (the repo the pull request goes to)"
                .into(),
        ));
    }
    let report = ckpt::convert::convert(&local_src, a.dst(), &opts)?;
    bars.finish();
    if a.push_pr {
        return remote::push_conversion_pr(&src_text, &report, g);
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !g.quiet {
        println!(
            "wrote {} tensors ({}) from {} to {}",
            report.tensors,
            inspect::human_bytes(report.bytes),
            report.source_format,
            report.output.display()
        );
        for f in &report.files {
            println!("  {}", f.display());
        }
        if !report.dropped_shared.is_empty() {
            println!("shared tensors written once (recorded in the metadata):");
            for (d, k) in &report.dropped_shared {
                println!("  {d} -> {k}");
            }
        }
        if !report.copied_files.is_empty() {
            println!("copied: {}", report.copied_files.join(", "));
        }
        if !report.skipped_values.is_empty() {
            println!(
                "non-tensor values not written: {}",
                report.skipped_values.join(", ")
            );
        }
        if report.verified {
            println!("verified: every tensor re-read and equal to the source");
        }
    }
    Ok(())
}

/// A PEFT LoRA adapter folder to a GGUF adapter (convert_lora_to_gguf.py).
fn run_convert_adapter(a: &ConvertArgs, g: &GlobalArgs) -> Result<(), Error> {
    let outtype = ckpt::convert::adapter_outtype(a.outtype.as_deref())?;
    let not_for_adapters = [
        ("--intermediate", a.intermediate.is_some()),
        ("--pre-tokenizer", a.pre_tokenizer.is_some()),
        ("--dtype", a.dtype.is_some()),
        ("--max-shard-size", a.max_shard_size.is_some()),
        ("--key", a.key.is_some()),
        ("--mmproj", a.mmproj.is_some()),
        (
            "--sentence-transformers-dense-modules",
            a.sentence_transformers_dense_modules,
        ),
        ("--push-pr", a.push_pr),
        ("--split-max-size", a.split.split_max_size.is_some()),
        ("--split-max-tensors", a.split.split_max_tensors.is_some()),
        ("--no-tensor-first-split", a.no_tensor_first_split),
    ];
    if let Some((flag, _)) = not_for_adapters.iter().find(|(_, set)| *set) {
        return Err(Error::Usage(format!(
            "{flag} does not apply to a LoRA adapter converted to GGUF"
        )));
    }
    if !ckpt::convert::is_adapter_dir(&a.src) {
        return Err(Error::Invalid {
            path: a.src.clone(),
            msg: "--base was given, but this is not a PEFT adapter folder (adapter_config.json + adapter_model.safetensors or adapter_model.bin)".into(),
        });
    }
    let opts = ckpt::convert::LoraToGgufOptions {
        outtype,
        dry_run: a.dry_run,
        byte_order: byte_order(a.bigendian),
    };
    let hub_base = match &a.base_model_id {
        Some(id) => {
            if a.base.is_some() {
                eprintln!("warning: --base is ignored when --base-model-id is given (as in convert_lora_to_gguf.py)");
            }
            Some(ckpt::convert::adapter_base_from_hub(id)?)
        }
        None => None,
    };
    let base = hub_base.as_deref().or(a.base.as_deref());
    let report = ckpt::convert::adapter_to_gguf(&a.src, base, a.dst(), &opts, a.force)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !report.fallbacks.is_empty() {
        eprintln!(
            "warning: {} tensor(s) stored as F16 because their rows are not a multiple of the block size (like convert_lora_to_gguf.py){}",
            report.fallbacks.len(),
            if a.verbose { ":" } else { "; --verbose lists them" }
        );
        if a.verbose {
            for w in &report.fallbacks {
                eprintln!("  {w}");
            }
        }
    }
    if !g.quiet {
        println!(
            "{} {} (LoRA adapter for {} ({}), alpha {}, {} pairs, {} tensors, {})",
            if report.dry_run {
                "dry run, nothing written:"
            } else {
                "wrote"
            },
            report.output.display(),
            report.gguf_architecture,
            report.hf_architecture,
            report.alpha,
            report.pairs,
            report.tensors,
            inspect::human_bytes(report.bytes)
        );
        if !report.dropped.is_empty() {
            println!("left out by design: {}", report.dropped.join(", "));
        }
    }
    Ok(())
}

/// GGUF -> a Hugging Face model folder (dequantized, HF names, Q/K permutation undone, config and
/// tokenizer rebuilt from the metadata).
fn run_export(a: &ConvertArgs, src: &std::path::Path, g: &GlobalArgs) -> Result<(), Error> {
    let bars = progress::Bars::new(g.quiet || g.json);
    let opts = ckpt::convert::ExportOptions {
        target: if a.to.as_deref() == Some("bin") {
            ckpt::Target::Bin
        } else {
            ckpt::Target::Safetensors
        },
        dtype: parse_dtype(a.dtype.as_deref())?,
        strict: a.strict,
        overwrite: a.force,
        max_shard_size: parse_shard_size(a.max_shard_size.as_deref())?,
        verify: !a.no_verify,
        progress: Some(bars.callback()),
    };
    let report = ckpt::convert::gguf_to_hf(src, a.dst(), &opts)?;
    bars.finish();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap()
        );
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !g.quiet {
        println!(
            "exported {} tensors of a {} GGUF as {} to {}",
            report.tensor_count,
            report.gguf_architecture,
            report
                .hf_architecture
                .as_deref()
                .unwrap_or("GGUF names (no Hugging Face mapping)"),
            a.dst().display()
        );
        for f in &report.files {
            println!("  {f}");
        }
    }
    Ok(())
}

/// --outtype, with the flag named in the error.
fn parse_outtype(s: Option<&str>) -> Result<ckpt::OutType, Error> {
    let Some(s) = s else {
        return Ok(ckpt::OutType::Auto);
    };
    s.parse().map_err(|_| {
        Error::Usage(format!(
            "unknown --outtype '{s}' ({})",
            ckpt::OUTTYPE_CHOICES
        ))
    })
}

/// The byte order `--bigendian` asks for.
fn byte_order(bigendian: bool) -> ckpt::crates::gguf::ByteOrder {
    if bigendian {
        ckpt::crates::gguf::ByteOrder::Big
    } else {
        ckpt::crates::gguf::ByteOrder::Little
    }
}

fn run_convert_gguf(a: &ConvertArgs, g: &GlobalArgs) -> Result<(), Error> {
    let outtype = parse_outtype(a.outtype.as_deref())?;
    let intermediate = match a.intermediate.as_deref() {
        None => ckpt::Intermediate::F16,
        Some(s) => s.parse().map_err(|_| {
            Error::Usage(format!(
                "--intermediate must be f16, bf16 or f32, not '{s}'"
            ))
        })?,
    };
    let bars = progress::Bars::new(g.quiet || g.json);
    let opts = ckpt::convert::GgufOptions {
        outtype,
        intermediate,
        pre_tokenizer: a.pre_tokenizer.clone(),
        key: a.key.clone(),
        overwrite: a.force,
        progress: Some(bars.callback()),
        mmproj: a.mmproj.clone(),
        mmproj_outtype: match a.mmproj_outtype.as_deref() {
            None => None,
            Some(s) => match parse_outtype(Some(s)) {
                Ok(t) if t.is_direct() => Some(t),
                _ => {
                    return Err(Error::Usage(format!(
                        "--mmproj-outtype must be f32, f16, bf16, q8_0 or auto, not '{s}'"
                    )))
                }
            },
        },
        quantize: match outtype {
            ckpt::OutType::Quantized(f) => Some(a.mix.options(f)?),
            _ => None,
        },
        split: a.split.convert_options(a.no_tensor_first_split)?,
        dry_run: a.dry_run,
        byte_order: byte_order(a.bigendian),
        sentence_transformers_dense_modules: a.sentence_transformers_dense_modules,
    };
    let report = ckpt::convert::to_gguf(&a.src, a.dst(), &opts)?;
    bars.finish();
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    // The converter's own fallbacks (rows that do not fit q8_0, stored as F16) come first in
    // `fallbacks`; the quantizer's follow and are summarised by type.
    let n_quant = report
        .quantized
        .iter()
        .filter(|t| t.fallback_from.is_some())
        .count();
    let converter = &report.fallbacks[..report.fallbacks.len() - n_quant];
    if !converter.is_empty() {
        eprintln!(
            "warning: {} tensor(s) stored as F16 because their rows are not a multiple of the block size (like convert_hf_to_gguf.py){}",
            converter.len(),
            if a.verbose { ":" } else { "; --verbose lists them" }
        );
        if a.verbose {
            for w in converter {
                eprintln!("  {w}");
            }
        }
    }
    quantize::print_fallbacks(&report.quantized, a.verbose);
    if !g.quiet {
        println!(
            "{} {} ({} {}, {} tensors, {} parameters, {}) from {}",
            if report.dry_run {
                "dry run, nothing written:"
            } else {
                "wrote"
            },
            match report.outputs.as_slice() {
                [] | [_] => report.output.display().to_string(),
                many => format!(
                    "{} shards {} … {}",
                    many.len(),
                    many[0].display(),
                    many[many.len() - 1].display()
                ),
            },
            report.gguf_architecture,
            report.outtype,
            report.tensors,
            report.parameters,
            inspect::human_bytes(report.bytes),
            report.hf_architecture
        );
        if report.shards.len() > 1 {
            for s in &report.shards {
                println!(
                    "  {}: {} tensors, {}",
                    s.path.display(),
                    s.tensors,
                    inspect::human_bytes(s.bytes)
                );
            }
        }
        if report.dropped.len() > 8 && !a.verbose {
            println!(
                "dropped by design: {} tensors ({}, …; --verbose lists them)",
                report.dropped.len(),
                report.dropped[..4].join(", ")
            );
        } else if !report.dropped.is_empty() {
            println!("dropped by design: {}", report.dropped.join(", "));
        }
        if let Some(m) = &report.mmproj {
            println!(
                "wrote {} (clip, projector {}, {} {} tensors, {} parameters, {})",
                m.output.display(),
                m.projector,
                m.outtype,
                m.tensors,
                m.parameters,
                inspect::human_bytes(m.bytes),
            );
        }
    }
    Ok(())
}

fn parse_shard_size(s: Option<&str>) -> Result<Option<u64>, Error> {
    s.map(|s| {
        ckpt::crates::core::shard::parse_size(s)
            .map_err(|m| Error::Usage(format!("--max-shard-size: {m}")))
    })
    .transpose()
}

fn parse_dtype(s: Option<&str>) -> Result<Option<ckpt::DType>, Error> {
    s.map(ckpt::crates::convert::cast::parse_float_dtype)
        .transpose()
}

fn run_merge_lora(a: &MergeLoraArgs, g: &GlobalArgs) -> Result<(), Error> {
    if a.to != "gguf" && a.outtype.is_some() {
        return Err(Error::Usage(format!(
            "--outtype does not apply to --to {}: it applies only to --to gguf (use --dtype to cast)",
            a.to
        )));
    }
    if a.to != "gguf" && a.bigendian {
        return Err(Error::Usage(format!(
            "--bigendian does not apply to --to {}: it applies only to --to gguf",
            a.to
        )));
    }
    if a.to == "gguf" && a.max_shard_size.is_some() {
        return Err(Error::Usage(
            "--max-shard-size does not apply to --to gguf: ckpt writes a GGUF as one file".into(),
        ));
    }
    let adapters = a
        .adapters
        .iter()
        .map(|s| ckpt::lora::AdapterSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let bars = progress::Bars::new(g.quiet || g.json);
    let opts = ckpt::lora::MergeOptions {
        format: a.to.parse()?,
        outtype: parse_outtype(a.outtype.as_deref())?,
        byte_order: byte_order(a.bigendian),
        dtype: parse_dtype(a.dtype.as_deref())?,
        max_shard_size: parse_shard_size(a.max_shard_size.as_deref())?,
        verify: !a.no_verify,
        overwrite: a.force,
        progress: Some(bars.callback()),
    };
    let outcome = ckpt::lora::merge(&a.base, &adapters, &a.out, &opts)?;
    bars.finish();
    let report = match outcome {
        ckpt::lora::MergeOutcome::Gguf(merged, converted) => {
            if g.json {
                println!("{}", ckpt::report::merge_gguf(&merged, &converted));
            } else if !g.quiet {
                println!(
                    "merged {} tensors, replaced {}; wrote {} ({} {})",
                    merged.merged.len(),
                    merged.replaced.len(),
                    converted.output.display(),
                    converted.gguf_architecture,
                    converted.outtype
                );
            }
            return Ok(());
        }
        ckpt::lora::MergeOutcome::Folder(report) => report,
    };
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !g.quiet {
        println!(
            "merged {} tensors, replaced {} into {}",
            report.merged.len(),
            report.replaced.len(),
            report.output.display()
        );
        for f in &report.files {
            println!("  {}", f.display());
        }
        if !report.copied_files.is_empty() {
            println!("copied from the base: {}", report.copied_files.join(", "));
        }
        if report.verified {
            println!("verified: every tensor re-read and equal to the computed merge");
        }
    }
    Ok(())
}

/// The error as the command line prints it: the library's message, plus the flag that changes
/// the outcome where there is one.
fn message(e: &Error) -> String {
    match e {
        Error::Exists { .. } => format!("{e} (use --force to replace it)"),
        _ => flags_for_options(&e.to_string()),
    }
}

/// A library message with the options it names (`` `keep_split` ``, see
/// [`ckpt::crates::core::error::opt`]) spelled as this command line's flags (`--keep-split`).
pub(crate) fn flags_for_options(msg: &str) -> String {
    let mut out = msg.to_string();
    for (name, flag) in ckpt::crates::core::error::OPTION_NAMES {
        out = out.replace(&format!("`{name}`"), flag);
    }
    out
}

/// The exit code for an error (listed in `ckpt --help`).
fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::Mismatch => 1,
        ErrorKind::Usage => 2,
        ErrorKind::Invalid => 3,
        ErrorKind::Unsafe => 4,
        ErrorKind::Unsupported => 5,
        ErrorKind::Io => 6,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    /// Every long flag of the command line, subcommands included.
    fn long_flags(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}")),
        );
        for sub in cmd.get_subcommands() {
            long_flags(sub, out);
        }
    }

    #[test]
    fn every_option_library_messages_name_is_a_flag() {
        let mut flags = Vec::new();
        long_flags(&super::command(), &mut flags);
        for (name, flag) in ckpt::crates::core::error::OPTION_NAMES {
            assert!(
                flags.contains(&flag.to_string()),
                "{name} -> {flag} is not a flag of ckpt"
            );
        }
        assert_eq!(
            super::flags_for_options("`keep_split` cannot be combined with `split_max_size`"),
            "--keep-split cannot be combined with --split-max-size"
        );
    }
}
