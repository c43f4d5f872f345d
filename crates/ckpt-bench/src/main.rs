//! `ckpt-bench`: runs the release `ckpt` binary on synthetic models and prints its wall time and
//! peak RSS next to a reference measured in the same run.
//!
//!   cargo build --release && target/release/ckpt-bench bin-to-safetensors [--gb 1.0]
//!   cargo build --release && target/release/ckpt-bench real-size   (issue 19's ≥1B-parameter runs)
//!   cargo build --release && target/release/ckpt-bench moe --python PY --llama-cpp SRC   (issue 16)
//!
//! `CKPT_BENCH_BIN=PATH` times another ckpt binary (e.g. an older commit's build) instead of the
//! one beside ckpt-bench.
//!
//! The commands are run interleaved, 5 times each after a warm-up round, with `sync` (untimed)
//! before every run; the median wall time is reported. Peak RSS is the
//! child's `ru_maxrss` from wait4.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ckpt_core::{Buffer, DType, Storage, Tensor};

mod moe;

struct Run {
    secs: f64,
    max_rss_kb: i64,
    /// User + system CPU time of the child: unlike the wall time, it hardly depends on how
    /// much other load the machine has.
    cpu_secs: f64,
}

fn run(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child; usage is a valid out-pointer.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    std::mem::forget(child);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        secs,
        max_rss_kb: usage.ru_maxrss,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// A command to time: how to build it, and how to clear its output before each run.
struct Contender<'a> {
    label: &'a str,
    make: Box<dyn Fn() -> Command + 'a>,
    clear: Box<dyn Fn() + 'a>,
}

/// Runs the contenders interleaved, `rounds` times each after one warm-up round, flushing dirty
/// pages (sync, untimed) before every run so no run pays for another's writeback. Returns the
/// median wall time and the largest peak RSS of each.
fn compare(contenders: &[Contender], rounds: usize) -> Vec<Run> {
    let mut times: Vec<Vec<Run>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..=rounds {
        for (i, c) in contenders.iter().enumerate() {
            (c.clear)();
            run(&mut Command::new("sync"));
            let r = run(&mut (c.make)());
            if round > 0 {
                times[i].push(r);
            }
        }
    }
    times
        .into_iter()
        .zip(contenders)
        .map(|(mut rs, c)| {
            rs.sort_by(|a, b| a.secs.partial_cmp(&b.secs).unwrap());
            let max_rss_kb = rs.iter().map(|r| r.max_rss_kb).max().unwrap();
            eprintln!(
                "{}: {:?}",
                c.label,
                rs.iter()
                    .map(|r| (r.secs * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            );
            Run {
                secs: rs[rs.len() / 2].secs,
                max_rss_kb,
                cpu_secs: rs[rs.len() / 2].cpu_secs,
            }
        })
        .collect()
}

fn ckpt_bin() -> PathBuf {
    // Another build of ckpt (an older commit's, for a before/after comparison).
    if let Some(p) = std::env::var_os("CKPT_BENCH_BIN") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap();
    let p = me.parent().unwrap().join("ckpt");
    assert!(
        p.exists(),
        "build the ckpt binary first: cargo build --release"
    );
    p
}

/// Deterministic pseudo-random f32 data (xorshift), so runs are comparable.
fn synthetic(name: &str, rows: u64, cols: u64, seed: u64) -> Tensor {
    let n = (rows * cols) as usize;
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut bytes = Vec::with_capacity(n * 4);
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let len = bytes.len();
    let storage = Storage::new(Buffer::owned(name, bytes), 0, len, name).unwrap();
    Tensor::contiguous(name, DType::F32, vec![rows, cols], storage)
}

/// Writes a synthetic Llama-shaped float32 model of about `gb` GB as safetensors shards.
fn make_safetensors_model(dir: &Path, gb: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let hidden = 2048u64;
    let per_layer = 4 * hidden * hidden + 3 * hidden * (hidden * 11 / 4);
    let layers = ((gb * 1e9 / 4.0) / per_layer as f64).ceil() as u64;
    let mut idx = 0u64;
    for l in 0..layers {
        let mut ts = Vec::new();
        for (n, r, c) in [
            ("self_attn.q_proj", hidden, hidden),
            ("self_attn.k_proj", hidden, hidden),
            ("self_attn.v_proj", hidden, hidden),
            ("self_attn.o_proj", hidden, hidden),
            ("mlp.gate_proj", hidden * 11 / 4, hidden),
            ("mlp.up_proj", hidden * 11 / 4, hidden),
            ("mlp.down_proj", hidden, hidden * 11 / 4),
        ] {
            idx += 1;
            ts.push(synthetic(
                &format!("model.layers.{l}.{n}.weight"),
                r,
                c,
                idx,
            ));
        }
        let meta = Default::default();
        let out = dir.join(format!("part-{l:03}.safetensors"));
        ckpt_safetensors::write(&out, &ts, &meta, true, &mut |_| {}).unwrap();
    }
}

fn du(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| du(&e.unwrap().path()))
            .sum()
    } else {
        std::fs::metadata(p).unwrap().len()
    }
}

fn bin_to_safetensors(gb: f64) {
    let work = std::env::temp_dir().join("ckpt-bench-bin");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let parts = work.join("parts");
    eprintln!("generating a synthetic {gb} GB model…");
    // In a child process, so this process stays small: a spawned child's ru_maxrss starts from
    // its parent's footprint.
    run(Command::new(std::env::current_exe().unwrap())
        .args(["generate", &gb.to_string()])
        .arg(&parts));
    // One .bin checkpoint sharded at 500 MB, written by ckpt itself (setup, not timed).
    let bin_dir = work.join("bin");
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    // Build an index over the parts so the whole model is one source.
    let mut weight_map = serde_json::Map::new();
    for s in &shards {
        let ck = ckpt_safetensors::read(s).unwrap();
        for t in ck.tensors {
            weight_map.insert(t.name, s.file_name().unwrap().to_string_lossy().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        parts.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    run(Command::new(ckpt_bin())
        .args([
            "convert",
            "-q",
            "--to",
            "bin",
            "--max-shard-size",
            "500MB",
            "--no-verify",
        ])
        .arg(&parts)
        .arg(&bin_dir));
    let bytes = du(&bin_dir);
    eprintln!(
        "source: {} ({:.2} GB in .bin shards)",
        bin_dir.display(),
        bytes as f64 / 1e9
    );

    let cp_out = work.join("cp-out");
    let st_out = work.join("st-out");
    let st_out2 = work.join("st-out-verified");
    let ckpt_cmd = |out: &Path, verify: bool| {
        let mut c = Command::new(ckpt_bin());
        c.args(["convert", "-q"]).arg(&bin_dir).arg(out);
        if !verify {
            c.arg("--no-verify");
        }
        c
    };
    let results = compare(
        &[
            Contender {
                label: "cp -r",
                make: Box::new(|| {
                    let mut c = Command::new("cp");
                    c.arg("-r").arg(&bin_dir).arg(&cp_out);
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_dir_all(&cp_out);
                }),
            },
            Contender {
                label: "ckpt --no-verify",
                make: Box::new(|| ckpt_cmd(&st_out, false)),
                clear: Box::new(|| {
                    let _ = std::fs::remove_dir_all(&st_out);
                }),
            },
            Contender {
                label: "ckpt verified",
                make: Box::new(|| ckpt_cmd(&st_out2, true)),
                clear: Box::new(|| {
                    let _ = std::fs::remove_dir_all(&st_out2);
                }),
            },
        ],
        5,
    );
    let (cp, fast, full) = (&results[0], &results[1], &results[2]);
    println!("bin -> safetensors, {:.2} GB sharded .bin, median of 5 interleaved runs, page cache warm, dirty pages flushed before each run", bytes as f64 / 1e9);
    println!(
        "  cp -r                      {:>7.3} s   peak RSS {:>6.1} MB",
        cp.secs,
        cp.max_rss_kb as f64 / 1024.0
    );
    println!(
        "  ckpt convert --no-verify   {:>7.3} s   peak RSS {:>6.1} MB   {:.2}x cp",
        fast.secs,
        fast.max_rss_kb as f64 / 1024.0,
        fast.secs / cp.secs
    );
    println!(
        "  ckpt convert (verified)    {:>7.3} s   peak RSS {:>6.1} MB   {:.2}x cp",
        full.secs,
        full.max_rss_kb as f64 / 1024.0,
        full.secs / cp.secs
    );
    println!("targets: <= 2x cp, peak RSS < 256 MB");
    if std::env::var_os("CKPT_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// The reference Python (with torch, transformers, peft), from --python or CKPT_BENCH_PYTHON.
fn reference_python(args: &[String]) -> Option<PathBuf> {
    let p = args
        .iter()
        .position(|a| a == "--python")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CKPT_BENCH_PYTHON").map(PathBuf::from))?;
    Some(p)
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench")
}

fn merge_lora(args: &[String]) {
    let Some(py) = reference_python(args) else {
        eprintln!("merge-lora needs --python PATH (a python with torch, transformers and peft) to build the model and run peft");
        std::process::exit(2);
    };
    let work = std::env::temp_dir().join("ckpt-bench-lora");
    if !work.join("adapter/adapter_config.json").exists() {
        let _ = std::fs::remove_dir_all(&work);
        eprintln!(
            "building a synthetic Llama and a rank-16 all-linear adapter with transformers + peft…"
        );
        run(Command::new(&py)
            .arg(scripts_dir().join("make_lora_model.py"))
            .arg(&work));
    }
    let (base, adapter) = (work.join("base"), work.join("adapter"));
    let ours = work.join("merged-ckpt");
    let theirs = work.join("merged-peft");
    let results = compare(
        &[
            Contender {
                label: "peft merge_and_unload + save_pretrained",
                make: Box::new(|| {
                    let mut c = Command::new(&py);
                    c.arg(scripts_dir().join("peft_merge.py"))
                        .arg(&base)
                        .arg(&adapter)
                        .arg(&theirs);
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_dir_all(&theirs);
                }),
            },
            Contender {
                label: "ckpt merge-lora",
                make: Box::new(|| {
                    let mut c = Command::new(ckpt_bin());
                    c.args(["merge-lora", "-q", "--base"])
                        .arg(&base)
                        .arg("--adapter")
                        .arg(&adapter)
                        .arg("--out")
                        .arg(&ours);
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_dir_all(&ours);
                }),
            },
        ],
        3,
    );
    let (peft, ckpt) = (&results[0], &results[1]);
    println!(
        "merge a rank-16 LoRA on every linear layer into a 134M-parameter bf16 Llama, median of 3"
    );
    println!(
        "  peft + save_pretrained   {:>7.2} s   peak RSS {:>7.1} MB",
        peft.secs,
        peft.max_rss_kb as f64 / 1024.0
    );
    println!(
        "  ckpt merge-lora          {:>7.2} s   peak RSS {:>7.1} MB   {:.1}x faster",
        ckpt.secs,
        ckpt.max_rss_kb as f64 / 1024.0,
        peft.secs / ckpt.secs
    );
    println!("targets: >= 5x faster, peak RSS < 300 MB");
}

/// The llama.cpp source tree (with convert_hf_to_gguf.py and a build/bin with llama-quantize),
/// from --llama-cpp or CKPT_BENCH_LLAMA_CPP.
fn llama_cpp(args: &[String]) -> Option<PathBuf> {
    args.iter()
        .position(|a| a == "--llama-cpp")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CKPT_BENCH_LLAMA_CPP").map(PathBuf::from))
}

fn sha256_of(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A 134M-parameter bf16 Llama with a SentencePiece tokenizer, made by transformers (setup).
fn llama_model_dir(py: &Path) -> PathBuf {
    let work = std::env::temp_dir().join("ckpt-bench-lora");
    if !work.join("adapter/adapter_config.json").exists() {
        let _ = std::fs::remove_dir_all(&work);
        run(Command::new(py)
            .arg(scripts_dir().join("make_lora_model.py"))
            .arg(&work));
    }
    let model = std::env::temp_dir()
        .join("ckpt-bench-gguf")
        .join("bench-llama-134m");
    if !model.join("tokenizer.model").exists() {
        let _ = std::fs::remove_dir_all(&model);
        std::fs::create_dir_all(&model).unwrap();
        for f in ["config.json", "model.safetensors", "generation_config.json"] {
            if work.join("base").join(f).exists() {
                std::fs::copy(work.join("base").join(f), model.join(f)).unwrap();
            }
        }
        let spm =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/tiny-llama-spm");
        for f in ["tokenizer.model", "tokenizer_config.json"] {
            std::fs::copy(spm.join(f), model.join(f))
                .expect("tests/fixtures/gguf/tiny-llama-spm tokenizer");
        }
    }
    model
}

fn hf_to_gguf(args: &[String]) {
    let (Some(py), Some(llama)) = (reference_python(args), llama_cpp(args)) else {
        eprintln!("hf-to-gguf needs --python PY (torch, transformers, sentencepiece) and --llama-cpp DIR (its source tree)");
        std::process::exit(2);
    };
    let model = llama_model_dir(&py);
    let out_dir = model.parent().unwrap().to_path_buf();
    let (theirs, ours) = (out_dir.join("ref.f16.gguf"), out_dir.join("ckpt.f16.gguf"));
    let results = compare(
        &[
            Contender {
                label: "convert_hf_to_gguf.py",
                make: Box::new(|| {
                    let mut c = Command::new(&py);
                    c.env("PYTHONPATH", llama.join("gguf-py"))
                        .arg(llama.join("convert_hf_to_gguf.py"))
                        .arg(&model)
                        .args(["--outtype", "f16", "--outfile"])
                        .arg(&theirs)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_file(&theirs);
                }),
            },
            Contender {
                label: "ckpt convert --to gguf",
                make: Box::new(|| {
                    let mut c = Command::new(ckpt_bin());
                    c.args(["convert", "-q", "--force"])
                        .arg(&model)
                        .arg(&ours)
                        .args(["--to", "gguf", "--outtype", "f16"]);
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_file(&ours);
                }),
            },
        ],
        3,
    );
    let same = sha256_of(&theirs) == sha256_of(&ours);
    let (py_run, ck) = (&results[0], &results[1]);
    println!("HF safetensors (134M-parameter bf16 Llama) -> F16 GGUF, median of 3");
    println!(
        "  convert_hf_to_gguf.py   {:>7.2} s   peak RSS {:>7.1} MB",
        py_run.secs,
        py_run.max_rss_kb as f64 / 1024.0
    );
    println!(
        "  ckpt convert            {:>7.2} s   peak RSS {:>7.1} MB   {:.1}x faster",
        ck.secs,
        ck.max_rss_kb as f64 / 1024.0,
        py_run.secs / ck.secs
    );
    println!("  outputs byte-identical: {same}");
    println!("targets: >= 20x faster, peak RSS < 300 MB");
}

fn quantize(args: &[String]) {
    let (Some(py), Some(llama)) = (reference_python(args), llama_cpp(args)) else {
        eprintln!("quantize needs --python PY and --llama-cpp DIR (with build/bin/llama-quantize)");
        std::process::exit(2);
    };
    let model = llama_model_dir(&py);
    let dir = model.parent().unwrap().to_path_buf();
    let f16 = dir.join("input.f16.gguf");
    if !f16.exists() {
        // The input comes from the reference converter, so this measures quantization alone.
        run(Command::new(&py)
            .env("PYTHONPATH", llama.join("gguf-py"))
            .arg(llama.join("convert_hf_to_gguf.py"))
            .arg(&model)
            .args(["--outtype", "f16", "--outfile"])
            .arg(&f16)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()));
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string();
    let (theirs, ours) = (dir.join("ref.Q4_K_M.gguf"), dir.join("ckpt.Q4_K_M.gguf"));
    let results = compare(
        &[
            Contender {
                label: "llama-quantize",
                make: Box::new(|| {
                    let mut c = Command::new(llama.join("build/bin/llama-quantize"));
                    c.arg(&f16)
                        .arg(&theirs)
                        .args(["Q4_K_M", &threads])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_file(&theirs);
                }),
            },
            Contender {
                label: "ckpt quantize",
                make: Box::new(|| {
                    let mut c = Command::new(ckpt_bin());
                    c.args(["quantize", "-q", "--force"])
                        .arg(&f16)
                        .arg(&ours)
                        .args(["Q4_K_M", "--threads", &threads]);
                    c
                }),
                clear: Box::new(|| {
                    let _ = std::fs::remove_file(&ours);
                }),
            },
        ],
        3,
    );
    let same = sha256_of(&theirs) == sha256_of(&ours);
    let (lq, ck) = (&results[0], &results[1]);
    println!("F16 GGUF (134M parameters) -> Q4_K_M, {threads} threads each, median of 3");
    println!(
        "  llama-quantize   {:>7.2} s   peak RSS {:>7.1} MB",
        lq.secs,
        lq.max_rss_kb as f64 / 1024.0
    );
    println!(
        "  ckpt quantize    {:>7.2} s   peak RSS {:>7.1} MB   {:.2}x llama-quantize's time",
        ck.secs,
        ck.max_rss_kb as f64 / 1024.0,
        ck.secs / lq.secs
    );
    println!("  outputs byte-identical: {same}");
    println!("target: <= 0.67x llama-quantize's wall time");
}

/// Deterministic pseudo-random bf16 bytes (xorshift) for a synthetic weight.
fn synthetic_bf16(n: usize, seed: u64, center: f32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut bytes = Vec::with_capacity(n * 2);
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = center + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
        bytes.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
    }
    bytes
}

/// A synthetic bf16 tensor of `shape` (values around `center`, see [`synthetic_bf16`]).
fn bf16_tensor(name: &str, shape: Vec<u64>, seed: u64, center: f32) -> Tensor {
    let n: u64 = shape.iter().product();
    let bytes = synthetic_bf16(n as usize, seed, center);
    let len = bytes.len();
    let storage = Storage::new(Buffer::owned(name, bytes), 0, len, name).unwrap();
    Tensor::contiguous(name, DType::BF16, shape, storage)
}

/// The shape of the real-size benchmark model: Llama with hidden 2048, FFN 5632, 20 layers
/// (1.03B parameters, 2.06 GB of bf16), the tokenizer of the tiny SentencePiece fixture.
const BIG_HIDDEN: u64 = 2048;
const BIG_FFN: u64 = 5632;
const BIG_LAYERS: u64 = 20;
const BIG_VOCAB: u64 = 512;

/// Writes the synthetic ≥1B-parameter Llama folder (bf16 safetensors, one shard per layer).
fn make_big_llama(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (h, f) = (BIG_HIDDEN, BIG_FFN);
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": h, "intermediate_size": f,
        "num_hidden_layers": BIG_LAYERS, "num_attention_heads": 16, "num_key_value_heads": 16,
        "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
        "vocab_size": BIG_VOCAB, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let spm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/tiny-llama-spm");
    for file in ["tokenizer.model", "tokenizer_config.json"] {
        std::fs::copy(spm.join(file), dir.join(file)).unwrap();
    }
    let tensor = bf16_tensor;
    let mut weight_map = serde_json::Map::new();
    let mut seed = 0u64;
    let shard = |file: String, ts: Vec<Tensor>, weight_map: &mut serde_json::Map<_, _>| {
        for t in &ts {
            weight_map.insert(t.name.clone(), file.clone().into());
        }
        ckpt_safetensors::write(
            &dir.join(&file),
            &ts,
            &Default::default(),
            true,
            &mut |_| {},
        )
        .unwrap();
    };
    for l in 0..BIG_LAYERS {
        let mut ts = Vec::new();
        for (n, shape) in [
            ("self_attn.q_proj", vec![h, h]),
            ("self_attn.k_proj", vec![h, h]),
            ("self_attn.v_proj", vec![h, h]),
            ("self_attn.o_proj", vec![h, h]),
            ("mlp.gate_proj", vec![f, h]),
            ("mlp.up_proj", vec![f, h]),
            ("mlp.down_proj", vec![h, f]),
            ("input_layernorm", vec![h]),
            ("post_attention_layernorm", vec![h]),
        ] {
            seed += 1;
            let center = if shape.len() == 1 { 1.0 } else { 0.0 };
            ts.push(tensor(
                &format!("model.layers.{l}.{n}.weight"),
                shape,
                seed,
                center,
            ));
        }
        shard(
            format!("model-{:05}.safetensors", l + 1),
            ts,
            &mut weight_map,
        );
    }
    let ts = vec![
        tensor("model.embed_tokens.weight", vec![BIG_VOCAB, h], 1001, 0.0),
        tensor("model.norm.weight", vec![h], 1002, 1.0),
        tensor("lm_head.weight", vec![BIG_VOCAB, h], 1003, 0.0),
    ];
    shard("model-rest.safetensors".into(), ts, &mut weight_map);
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// A synthetic importance matrix in llama-imatrix's legacy `.dat` format (what both
/// llama-quantize and ckpt read): positive weights for every matrix of the benchmark model.
fn write_big_imatrix(path: &Path) {
    let mut entries: Vec<(String, u64)> = vec![
        ("token_embd.weight".into(), BIG_HIDDEN),
        ("output.weight".into(), BIG_HIDDEN),
    ];
    for l in 0..BIG_LAYERS {
        for (n, ne0) in [
            ("attn_q", BIG_HIDDEN),
            ("attn_k", BIG_HIDDEN),
            ("attn_v", BIG_HIDDEN),
            ("attn_output", BIG_HIDDEN),
            ("ffn_gate", BIG_HIDDEN),
            ("ffn_up", BIG_HIDDEN),
            ("ffn_down", BIG_FFN),
        ] {
            entries.push((format!("blk.{l}.{n}.weight"), ne0));
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(entries.len() as i32).to_le_bytes());
    let mut state = 0x2545F4914F6CDD1Du64;
    for (name, ne0) in &entries {
        b.extend_from_slice(&(name.len() as i32).to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&10i32.to_le_bytes());
        b.extend_from_slice(&(*ne0 as i32).to_le_bytes());
        for _ in 0..*ne0 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = 10.0 * (0.05 + (state >> 40) as f32 / (1u64 << 24) as f32);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b.extend_from_slice(&100i32.to_le_bytes());
    let dataset = b"synthetic";
    b.extend_from_slice(&(dataset.len() as i32).to_le_bytes());
    b.extend_from_slice(dataset);
    std::fs::write(path, b).unwrap();
}

fn mb(r: &Run) -> f64 {
    r.max_rss_kb as f64 / 1024.0
}

/// Runs `a` then `b` `rounds` times, interleaved, with every output removed and `sync` (untimed)
/// before each run; returns every run of each.
fn interleaved(
    a: &mut dyn FnMut() -> Command,
    b: &mut dyn FnMut() -> Command,
    clear: &dyn Fn(),
    rounds: usize,
) -> (Vec<Run>, Vec<Run>) {
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        clear();
        run(&mut Command::new("sync"));
        ra.push(run(&mut a()));
        clear();
        run(&mut Command::new("sync"));
        rb.push(run(&mut b()));
    }
    (ra, rb)
}

fn median(rs: &[Run]) -> f64 {
    let mut v: Vec<f64> = rs.iter().map(|r| r.secs).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn peak(rs: &[Run]) -> Run {
    Run {
        secs: median(rs),
        max_rss_kb: rs.iter().map(|r| r.max_rss_kb).max().unwrap(),
        cpu_secs: {
            let mut v: Vec<f64> = rs.iter().map(|r| r.cpu_secs).collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        },
    }
}

/// One line of the real-size summary: a measured ratio (or size) against its target.
struct Verdict {
    what: String,
    /// Median over the rounds.
    median: f64,
    /// The worst round (the largest ratio of a pair of runs measured one after the other).
    worst: f64,
    limit: f64,
    unit: &'static str,
}

impl Verdict {
    fn pass(&self) -> bool {
        self.worst <= self.limit
    }
}

/// Pairwise ratios `b[i] / a[i]` of interleaved runs: (median, worst).
fn ratios(a: &[Run], b: &[Run]) -> (f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| b.secs / a.secs).collect();
    r.sort_by(|x, y| x.partial_cmp(y).unwrap());
    (r[r.len() / 2], *r.last().unwrap())
}

/// Pairwise CPU-time ratios `b[i] / a[i]`: (median, worst).
fn cpu_ratios(a: &[Run], b: &[Run]) -> (f64, f64) {
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| b.cpu_secs / a.cpu_secs)
        .collect();
    r.sort_by(|x, y| x.partial_cmp(y).unwrap());
    (r[r.len() / 2], *r.last().unwrap())
}

fn cpu_list(rs: &[Run]) -> Vec<f64> {
    rs.iter()
        .map(|r| (r.cpu_secs * 100.0).round() / 100.0)
        .collect()
}

fn secs_list(rs: &[Run]) -> Vec<f64> {
    rs.iter()
        .map(|r| (r.secs * 100.0).round() / 100.0)
        .collect()
}

/// The issue-19 benchmarks at real size: a synthetic 1.03B-parameter bf16 Llama (about 2 GB),
/// made on the fly under the work directory and deleted at the end (at most ~5 GB on disk at
/// once; `--reuse` keeps and reuses the model folder). `ckpt quantize` F16 -> Q4_K_M and ->
/// IQ4_XS (with a synthetic imatrix) against llama-quantize with the same threads; one-step
/// HF -> Q4_K_M against `ckpt quantize` alone; HF -> F16 against `cp -r`, run by run. Every
/// ratio is of two runs made one right after the other; a target passes only if every round
/// meets it (the worst round is what is compared), and the summary table ends the output.
fn real_size(args: &[String]) {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let lq = PathBuf::from(
        arg("--llama-quantize")
            .or_else(|| std::env::var("LLAMA_QUANTIZE").ok())
            .unwrap_or_else(|| "/work/llama-build/bin/llama-quantize".into()),
    );
    let work = PathBuf::from(arg("--dir").unwrap_or_else(|| {
        std::env::temp_dir()
            .join("ckpt-bench-real-size")
            .to_string_lossy()
            .into_owned()
    }));
    let rounds: usize = arg("--rounds").map_or(3, |r| r.parse().expect("--rounds N"));
    let threads = arg("--threads").unwrap_or_else(|| "2".into());
    let only = arg("--only");
    let reuse = args.iter().any(|a| a == "--reuse");
    let want = |what: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == what))
    };
    let hf = work.join("hf");
    let f16 = work.join("model.f16.gguf");
    if !(reuse && hf.join("config.json").exists() && f16.exists()) {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        eprintln!(
            "generating a synthetic 1.03B-parameter bf16 Llama in {}…",
            hf.display()
        );
        run(Command::new(std::env::current_exe().unwrap())
            .arg("generate-big")
            .arg(&hf));
        run(Command::new(ckpt_bin())
            .args(["convert", "-q", "--outtype", "f16"])
            .arg(&hf)
            .arg(&f16));
    }
    let params = BIG_LAYERS
        * (4 * BIG_HIDDEN * BIG_HIDDEN + 3 * BIG_HIDDEN * BIG_FFN + 2 * BIG_HIDDEN)
        + 2 * BIG_VOCAB * BIG_HIDDEN
        + BIG_HIDDEN;
    let imatrix = work.join("imatrix.dat");
    write_big_imatrix(&imatrix);
    println!(
        "real size: synthetic Llama, {:.2}B parameters, {:.2} GB bf16 safetensors, {} threads; {} interleaved rounds, sync before each run",
        params as f64 / 1e9,
        du(&hf) as f64 / 1e9,
        threads,
        rounds
    );
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut identical: Vec<(String, bool)> = Vec::new();
    let mut peak_rss_mb = 0f64;
    let theirs = work.join("ref.gguf");
    let ours = work.join("ckpt.gguf");
    let clear_q = || {
        let _ = std::fs::remove_file(&theirs);
        let _ = std::fs::remove_file(&ours);
    };
    for (ftype, with_imatrix) in [("Q4_K_M", false), ("IQ4_XS", true)] {
        if !want(&ftype.to_lowercase()) {
            continue;
        }
        let (rl, rc) = interleaved(
            &mut || {
                let mut c = Command::new(&lq);
                if with_imatrix {
                    c.arg("--imatrix").arg(&imatrix);
                }
                c.arg(&f16)
                    .arg(&theirs)
                    .args([ftype, &threads])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                c
            },
            &mut || {
                let mut c = Command::new(ckpt_bin());
                c.args(["quantize", "-q", "--force"]);
                if with_imatrix {
                    c.arg("--imatrix").arg(&imatrix);
                }
                c.arg(&f16).arg(&ours).args([ftype, "--threads", &threads]);
                c
            },
            &|| {
                let _ = std::fs::remove_file(&ours);
            },
            rounds,
        );
        let same = sha256_of(&theirs) == sha256_of(&ours);
        let (l, c) = (peak(&rl), peak(&rc));
        let (median, worst) = ratios(&rl, &rc);
        peak_rss_mb = peak_rss_mb.max(mb(&c));
        println!(
            "F16 -> {ftype}{}",
            if with_imatrix { " (imatrix)" } else { "" }
        );
        println!(
            "  llama-quantize   {:>7.2} s   peak RSS {:>7.1} MB   runs {:?}",
            l.secs,
            mb(&l),
            secs_list(&rl)
        );
        println!(
            "  ckpt quantize    {:>7.2} s   peak RSS {:>7.1} MB   runs {:?}   {median:.2}x llama-quantize's time (worst round {worst:.2}x)",
            c.secs,
            mb(&c),
            secs_list(&rc),
        );
        println!("  outputs byte-identical: {same}   (targets: <= 0.40x, peak RSS < 300 MB)");
        verdicts.push(Verdict {
            what: format!("{ftype} time / llama-quantize's"),
            median,
            worst,
            limit: 0.40,
            unit: "x",
        });
        identical.push((format!("{ftype} = llama-quantize"), same));
        clear_q();
    }
    if want("one-step") {
        let one = work.join("one-step.gguf");
        let (rq, ro) = interleaved(
            &mut || {
                let mut c = Command::new(ckpt_bin());
                c.args(["quantize", "-q", "--force"])
                    .arg(&f16)
                    .arg(&ours)
                    .args(["Q4_K_M", "--threads", &threads]);
                c
            },
            &mut || {
                let mut c = Command::new(ckpt_bin());
                c.args(["convert", "-q", "--force", "--outtype", "q4_k_m"])
                    .arg(&hf)
                    .arg(&one);
                c
            },
            &|| {
                let _ = std::fs::remove_file(&one);
            },
            rounds,
        );
        let same = sha256_of(&one) == sha256_of(&ours);
        let (q, o) = (peak(&rq), peak(&ro));
        let (median, worst) = ratios(&rq, &ro);
        peak_rss_mb = peak_rss_mb.max(mb(&q)).max(mb(&o));
        println!("HF -> Q4_K_M in one step vs F16 -> Q4_K_M");
        println!(
            "  ckpt quantize (F16 input)     {:>5.2} s   peak RSS {:>7.1} MB   runs {:?}",
            q.secs,
            mb(&q),
            secs_list(&rq)
        );
        println!(
            "  ckpt convert --outtype q4_k_m {:>5.2} s   peak RSS {:>7.1} MB   runs {:?}   {median:.2}x quantize alone (worst round {worst:.2}x)",
            o.secs,
            mb(&o),
            secs_list(&ro)
        );
        let (cpu_median, cpu_worst) = cpu_ratios(&rq, &ro);
        println!(
            "  CPU time (user + sys): quantize {:?}, one step {:?}   {cpu_median:.2}x (worst round {cpu_worst:.2}x)",
            cpu_list(&rq),
            cpu_list(&ro)
        );
        println!("  outputs byte-identical: {same}   (targets: <= 1.10x, peak RSS < 300 MB)");
        verdicts.push(Verdict {
            what: "one-step CPU time / quantize's (info)".into(),
            median: cpu_median,
            worst: cpu_worst,
            limit: 1.10,
            unit: "x",
        });
        verdicts.push(Verdict {
            what: "one-step HF -> Q4_K_M / quantize alone".into(),
            median,
            worst,
            limit: 1.10,
            unit: "x",
        });
        identical.push(("one-step = F16 then quantize".into(), same));
        let _ = std::fs::remove_file(&one);
        clear_q();
    }
    if !reuse {
        let _ = std::fs::remove_file(&f16);
    }
    if want("f16") {
        let (cp_out, f16_out) = (work.join("cp-out"), work.join("out.f16.gguf"));
        let clear = || {
            let _ = std::fs::remove_dir_all(&cp_out);
            let _ = std::fs::remove_file(&f16_out);
        };
        let rounds_f16 = rounds.max(5);
        let (rcp, rck) = interleaved(
            &mut || {
                let mut c = Command::new("cp");
                c.arg("-r").arg(&hf).arg(&cp_out);
                c
            },
            &mut || {
                let mut c = Command::new(ckpt_bin());
                c.args(["convert", "-q", "--outtype", "f16"])
                    .arg(&hf)
                    .arg(&f16_out);
                c
            },
            &clear,
            rounds_f16,
        );
        println!("HF -> F16 GGUF vs cp -r of the folder, run by run (cp first, then ckpt)");
        for (i, (a, b)) in rcp.iter().zip(&rck).enumerate() {
            println!(
                "  round {}: cp -r {:>6.2} s   ckpt {:>6.2} s (peak RSS {:>6.1} MB)   {:.2}x",
                i + 1,
                a.secs,
                b.secs,
                mb(b),
                b.secs / a.secs
            );
        }
        let (median, worst) = ratios(&rcp, &rck);
        peak_rss_mb = peak_rss_mb.max(rck.iter().map(mb).fold(0.0, f64::max));
        println!("  worst ratio {worst:.2}x   (target: every run <= 1.30x)");
        verdicts.push(Verdict {
            what: "HF -> F16 / cp -r".into(),
            median,
            worst,
            limit: 1.30,
            unit: "x",
        });
        clear();
    }
    if peak_rss_mb > 0.0 {
        verdicts.push(Verdict {
            what: "peak RSS of every ckpt run".into(),
            median: peak_rss_mb,
            worst: peak_rss_mb,
            limit: 300.0,
            unit: " MB",
        });
    }
    print_summary("summary (issue 19)", &verdicts, &identical);
    if std::env::var_os("CKPT_BENCH_KEEP").is_none() && !reuse {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// The closing table of a benchmark: every ratio against its target, then every byte-identity
/// check.
fn print_summary(title: &str, verdicts: &[Verdict], identical: &[(String, bool)]) {
    println!();
    println!(
        "{:<42} {:>10} {:>12} {:>14}  result",
        title, "median", "worst round", "target"
    );
    for v in verdicts {
        let show = |x: f64| format!("{x:.2}{}", v.unit);
        println!(
            "{:<42} {:>10} {:>12} {:>14}  {}",
            v.what,
            show(v.median),
            show(v.worst),
            format!("<= {}", show(v.limit)),
            if v.pass() { "PASS" } else { "FAIL" }
        );
    }
    for (what, same) in identical {
        println!(
            "{what:<42} {:>38}  {}",
            "byte-identical",
            if *same { "PASS" } else { "FAIL" }
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gb = args
        .iter()
        .position(|a| a == "--gb")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().expect("--gb takes a number"))
        .unwrap_or(1.0);
    match args.get(1).map(String::as_str) {
        Some("bin-to-safetensors") => bin_to_safetensors(gb),
        Some("merge-lora") => merge_lora(&args),
        Some("hf-to-gguf") => hf_to_gguf(&args),
        Some("quantize") => quantize(&args),
        Some("generate") => make_safetensors_model(Path::new(&args[3]), args[2].parse().unwrap()),
        Some("real-size") => real_size(&args),
        Some("generate-big") => make_big_llama(Path::new(&args[2])),
        Some("moe") => moe::bench(&args),
        Some("generate-moe") => moe::generate(Path::new(&args[2])),
        _ => {
            eprintln!("usage: ckpt-bench bin-to-safetensors [--gb 1.0]\n       ckpt-bench merge-lora --python PYTHON_WITH_TORCH_PEFT\n       ckpt-bench hf-to-gguf --python PY --llama-cpp LLAMA_CPP_SOURCE_DIR\n       ckpt-bench quantize --python PY --llama-cpp LLAMA_CPP_SOURCE_DIR\n       ckpt-bench real-size [--llama-quantize PATH] [--dir WORK] [--rounds 3] [--threads 2] [--only q4_k_m,iq4_xs,one-step,f16] [--reuse]\n       ckpt-bench moe --python PY --llama-cpp LLAMA_CPP_SOURCE_DIR [--llama-quantize PATH] [--dir WORK] [--rounds 3] [--threads 2] [--only f16,q4_k_m] [--reuse]");
            std::process::exit(2);
        }
    }
}
