//! `ckpt-bench`: runs the release `ckpt` binary on synthetic models and prints its wall time and
//! peak RSS next to a reference measured in the same run.
//!
//!   cargo build --release && target/release/ckpt-bench bin-to-safetensors [--gb 1.0]
//!
//! The commands are run interleaved, 5 times each after a warm-up round, with `sync` (untimed)
//! before every run; the median wall time is reported. Peak RSS is the
//! child's `ru_maxrss` from wait4.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ckpt_core::{Buffer, DType, Storage, Tensor};

struct Run {
    secs: f64,
    max_rss_kb: i64,
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
    Run {
        secs,
        max_rss_kb: usage.ru_maxrss,
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
            }
        })
        .collect()
}

fn ckpt_bin() -> PathBuf {
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
        _ => {
            eprintln!("usage: ckpt-bench bin-to-safetensors [--gb 1.0]\n       ckpt-bench merge-lora --python PYTHON_WITH_TORCH_PEFT\n       ckpt-bench hf-to-gguf --python PY --llama-cpp LLAMA_CPP_SOURCE_DIR\n       ckpt-bench quantize --python PY --llama-cpp LLAMA_CPP_SOURCE_DIR");
            std::process::exit(2);
        }
    }
}
