//! The mixture-of-experts benchmark (issue 16): a synthetic Qwen3-MoE-shaped model of over 1B
//! parameters (32 experts in each of 8 layers, random bf16 weights written by the bench in a
//! temporary folder, the tiny GPT-2 BPE tokenizer of the fixtures) converted to F16 and, in one
//! step, to Q4_K_M by ckpt and by `convert_hf_to_gguf.py` (+ `llama-quantize` for Q4_K_M) in the
//! same run. F16 is timed against `cp -r` of the folder (the same bytes), run by run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ckpt_core::Tensor;

use crate::{
    bf16_tensor, ckpt_bin, du, interleaved, llama_cpp, mb, peak, print_summary, ratios,
    reference_python, run, secs_list, sha256_of, Run, Verdict,
};

/// Qwen3-30B-A3B's hidden size and expert width, with fewer experts and layers.
const HIDDEN: u64 = 2048;
const MOE_FFN: u64 = 512;
const EXPERTS: u64 = 32;
const LAYERS: u64 = 8;
const HEADS: u64 = 16;
const KV_HEADS: u64 = 4;
const HEAD_DIM: u64 = 128;

/// The tokenizer fixture the model gets (GPT-2 BPE with a known pre-tokenizer fingerprint).
fn tokenizer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/tiny-smol-bpe")
}

fn vocab() -> u64 {
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tokenizer_dir().join("config.json"))
            .expect("tests/fixtures/gguf/tiny-smol-bpe/config.json"),
    )
    .unwrap();
    config["vocab_size"].as_u64().unwrap()
}

fn parameters() -> u64 {
    let attn = HIDDEN * HEADS * HEAD_DIM * 2 + HIDDEN * KV_HEADS * HEAD_DIM * 2 + 2 * HEAD_DIM;
    let experts = EXPERTS * 3 * HIDDEN * MOE_FFN + EXPERTS * HIDDEN;
    LAYERS * (attn + experts + 2 * HIDDEN) + 2 * vocab() * HIDDEN + HIDDEN
}

/// Writes the synthetic Qwen3-MoE folder: config.json as released Qwen3-MoE folders spell it,
/// bf16 safetensors (one shard per layer, experts in the order save_pretrained writes them) and
/// the tokenizer. Deterministic: the same bytes every time.
pub fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let vocab = vocab();
    let config = serde_json::json!({
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": HIDDEN, "intermediate_size": 6144, "moe_intermediate_size": MOE_FFN,
        "num_experts": EXPERTS, "num_experts_per_tok": 4, "norm_topk_prob": true,
        "decoder_sparse_step": 1, "mlp_only_layers": [],
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "hidden_act": "silu",
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "attention_bias": false, "tie_word_embeddings": false, "vocab_size": vocab,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        "use_sliding_window": false, "sliding_window": null, "router_aux_loss_coef": 0.001,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    ] {
        std::fs::copy(tokenizer_dir().join(file), dir.join(file)).unwrap();
    }
    let mut weight_map = serde_json::Map::new();
    let mut shard = |file: String, mut ts: Vec<Tensor>| {
        ts.sort_by(|a, b| a.name.cmp(&b.name));
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
    let mut seed = 0u64;
    let mut next = || {
        seed += 1;
        seed
    };
    let (h, q, kv) = (HIDDEN, HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let mut ts = vec![
            bf16_tensor(
                &format!("{p}.self_attn.q_proj.weight"),
                vec![q, h],
                next(),
                0.0,
            ),
            bf16_tensor(
                &format!("{p}.self_attn.k_proj.weight"),
                vec![kv, h],
                next(),
                0.0,
            ),
            bf16_tensor(
                &format!("{p}.self_attn.v_proj.weight"),
                vec![kv, h],
                next(),
                0.0,
            ),
            bf16_tensor(
                &format!("{p}.self_attn.o_proj.weight"),
                vec![h, q],
                next(),
                0.0,
            ),
            bf16_tensor(
                &format!("{p}.self_attn.q_norm.weight"),
                vec![HEAD_DIM],
                next(),
                1.0,
            ),
            bf16_tensor(
                &format!("{p}.self_attn.k_norm.weight"),
                vec![HEAD_DIM],
                next(),
                1.0,
            ),
            bf16_tensor(&format!("{p}.input_layernorm.weight"), vec![h], next(), 1.0),
            bf16_tensor(
                &format!("{p}.post_attention_layernorm.weight"),
                vec![h],
                next(),
                1.0,
            ),
            bf16_tensor(
                &format!("{p}.mlp.gate.weight"),
                vec![EXPERTS, h],
                next(),
                0.0,
            ),
        ];
        for e in 0..EXPERTS {
            let x = format!("{p}.mlp.experts.{e}");
            ts.push(bf16_tensor(
                &format!("{x}.gate_proj.weight"),
                vec![MOE_FFN, h],
                next(),
                0.0,
            ));
            ts.push(bf16_tensor(
                &format!("{x}.up_proj.weight"),
                vec![MOE_FFN, h],
                next(),
                0.0,
            ));
            ts.push(bf16_tensor(
                &format!("{x}.down_proj.weight"),
                vec![h, MOE_FFN],
                next(),
                0.0,
            ));
        }
        shard(
            format!("model-{:05}-of-{:05}.safetensors", l + 1, LAYERS + 1),
            ts,
        );
    }
    shard(
        format!("model-{:05}-of-{:05}.safetensors", LAYERS + 1, LAYERS + 1),
        vec![
            bf16_tensor("model.embed_tokens.weight", vec![vocab, h], 1001, 0.0),
            bf16_tensor("model.norm.weight", vec![h], 1002, 1.0),
            bf16_tensor("lm_head.weight", vec![vocab, h], 1003, 0.0),
        ],
    );
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// `ckpt-bench moe`: see the module docs. Paths of the reference tools come from flags or the
/// environment, as in the other cases: `--python PY` (CKPT_BENCH_PYTHON; torch, transformers,
/// numpy, sentencepiece), `--llama-cpp SRC` (CKPT_BENCH_LLAMA_CPP; its convert_hf_to_gguf.py and
/// gguf-py) and `--llama-quantize PATH` (LLAMA_QUANTIZE; default SRC/build/bin/llama-quantize).
pub fn bench(args: &[String]) {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(py), Some(llama)) = (reference_python(args), llama_cpp(args)) else {
        eprintln!("moe needs --python PY (torch, transformers) and --llama-cpp DIR (the llama.cpp source tree with convert_hf_to_gguf.py); --llama-quantize PATH if it is not DIR/build/bin/llama-quantize");
        std::process::exit(2);
    };
    let lq = arg("--llama-quantize")
        .or_else(|| std::env::var("LLAMA_QUANTIZE").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| llama.join("build/bin/llama-quantize"));
    let work = arg("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ckpt-bench-moe"));
    let rounds: usize = arg("--rounds").map_or(3, |r| r.parse().expect("--rounds N"));
    let threads = arg("--threads").unwrap_or_else(|| "2".into());
    let reuse = args.iter().any(|a| a == "--reuse");
    let only = arg("--only");
    let want = |what: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == what))
    };
    let hf = work.join("hf");
    let (ref_f16, ref_q4) = (work.join("ref.f16.gguf"), work.join("ref.Q4_K_M.gguf"));
    let have = |p: &Path| reuse && p.exists();
    if !have(&hf.join("model.safetensors.index.json")) {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        eprintln!("generating the synthetic Qwen3-MoE in {}…", hf.display());
        run(Command::new(std::env::current_exe().unwrap())
            .arg("generate-moe")
            .arg(&hf));
    }
    println!(
        "MoE: synthetic Qwen3-MoE, {:.2}B parameters ({EXPERTS} experts x {LAYERS} layers, hidden {HIDDEN}, expert FFN {MOE_FFN}), {:.2} GB bf16 safetensors; {threads} threads",
        parameters() as f64 / 1e9,
        du(&hf) as f64 / 1e9,
    );
    // The references, once each (they take minutes).
    let converter = |outfile: &Path| {
        let mut c = Command::new(&py);
        c.env("PYTHONPATH", llama.join("gguf-py"))
            .arg(llama.join("convert_hf_to_gguf.py"))
            .arg(&hf)
            .args(["--outtype", "f16", "--outfile"])
            .arg(outfile)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let py_run = (!have(&ref_f16)).then(|| run(&mut converter(&ref_f16)));
    let lq_run = (want("q4_k_m") && !have(&ref_q4)).then(|| {
        run(Command::new(&lq)
            .arg(&ref_f16)
            .arg(&ref_q4)
            .args(["Q4_K_M", &threads])
            .stdout(Stdio::null())
            .stderr(Stdio::null()))
    });
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut identical: Vec<(String, bool)> = Vec::new();
    let mut peak_rss = 0f64;
    if want("f16") {
        f16_vs_cp(
            &work,
            &hf,
            &ref_f16,
            py_run.as_ref(),
            rounds,
            &mut verdicts,
            &mut identical,
            &mut peak_rss,
        );
    }
    if want("q4_k_m") {
        one_step_q4(
            &work,
            &hf,
            &ref_q4,
            py_run.as_ref(),
            lq_run.as_ref(),
            rounds,
            &mut identical,
            &mut peak_rss,
        );
    }
    verdicts.push(Verdict {
        what: "peak RSS of every ckpt run".into(),
        median: peak_rss,
        worst: peak_rss,
        limit: 300.0,
        unit: " MB",
    });
    print_summary("summary (issue 16, MoE)", &verdicts, &identical);
    if std::env::var_os("CKPT_BENCH_KEEP").is_none() && !reuse {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// HF -> F16 against `cp -r` of the folder, run by run, and the output against the converter's.
#[allow(clippy::too_many_arguments)]
fn f16_vs_cp(
    work: &Path,
    hf: &Path,
    ref_f16: &Path,
    py_run: Option<&Run>,
    rounds: usize,
    verdicts: &mut Vec<Verdict>,
    identical: &mut Vec<(String, bool)>,
    peak_rss: &mut f64,
) {
    let (cp_out, f16_out) = (work.join("cp-out"), work.join("ckpt.f16.gguf"));
    let clear = || {
        let _ = std::fs::remove_dir_all(&cp_out);
        let _ = std::fs::remove_file(&f16_out);
    };
    let (rcp, rck) = interleaved(
        &mut || {
            let mut c = Command::new("cp");
            c.arg("-r").arg(hf).arg(&cp_out);
            c
        },
        &mut || {
            let mut c = Command::new(ckpt_bin());
            c.args(["convert", "-q", "--outtype", "f16"])
                .arg(hf)
                .arg(&f16_out);
            c
        },
        &clear,
        rounds.max(3),
    );
    let same_f16 = sha256_of(&f16_out) == sha256_of(ref_f16);
    println!("HF -> F16 GGUF");
    if let Some(r) = py_run {
        println!(
            "  convert_hf_to_gguf.py {:>7.2} s   peak RSS {:>7.1} MB",
            r.secs,
            mb(r)
        );
    }
    for (i, (a, b)) in rcp.iter().zip(&rck).enumerate() {
        println!(
            "  round {}: cp -r {:>6.2} s   ckpt convert {:>6.2} s (peak RSS {:>6.1} MB)   {:.2}x cp",
            i + 1,
            a.secs,
            b.secs,
            mb(b),
            b.secs / a.secs
        );
    }
    if let Some(r) = py_run {
        println!(
            "  ckpt is {:.1}x faster than convert_hf_to_gguf.py (median)",
            r.secs / peak(&rck).secs
        );
    }
    println!("  outputs byte-identical: {same_f16}");
    let (median, worst) = ratios(&rcp, &rck);
    verdicts.push(Verdict {
        what: "HF -> F16 / cp -r".into(),
        median,
        worst,
        limit: 1.30,
        unit: "x",
    });
    identical.push(("F16 = convert_hf_to_gguf.py".into(), same_f16));
    *peak_rss = peak_rss.max(rck.iter().map(mb).fold(0.0, f64::max));
    clear();
}

/// HF -> Q4_K_M in one step against the converter + llama-quantize.
#[allow(clippy::too_many_arguments)]
fn one_step_q4(
    work: &Path,
    hf: &Path,
    ref_q4: &Path,
    py_run: Option<&Run>,
    lq_run: Option<&Run>,
    rounds: usize,
    identical: &mut Vec<(String, bool)>,
    peak_rss: &mut f64,
) {
    let q4_out = work.join("ckpt.Q4_K_M.gguf");
    let mut q4_runs: Vec<Run> = Vec::new();
    for _ in 0..rounds {
        let _ = std::fs::remove_file(&q4_out);
        run(&mut Command::new("sync"));
        q4_runs.push(run(Command::new(ckpt_bin())
            .args(["convert", "-q", "--outtype", "q4_k_m"])
            .arg(hf)
            .arg(&q4_out)));
    }
    let same_q4 = sha256_of(&q4_out) == sha256_of(ref_q4);
    let q4 = peak(&q4_runs);
    *peak_rss = peak_rss.max(mb(&q4));
    println!("HF -> Q4_K_M GGUF in one step");
    match (py_run, lq_run) {
        (Some(p), Some(l)) => println!(
            "  convert_hf_to_gguf.py + llama-quantize {:>7.2} s ({:.2} s + {:.2} s)   peak RSS {:>7.1} MB / {:>7.1} MB",
            p.secs + l.secs,
            p.secs,
            l.secs,
            mb(p),
            mb(l)
        ),
        // With --reuse the converter's F16 may come from an earlier run.
        (None, Some(l)) => println!(
            "  llama-quantize (of the converter's F16) {:>7.2} s   peak RSS {:>7.1} MB",
            l.secs,
            mb(l)
        ),
        _ => {}
    }
    println!(
        "  ckpt convert --outtype q4_k_m          {:>7.2} s   peak RSS {:>7.1} MB   runs {:?}",
        q4.secs,
        mb(&q4),
        secs_list(&q4_runs)
    );
    println!("  outputs byte-identical: {same_q4}");
    identical.push((
        "Q4_K_M = convert_hf_to_gguf.py + llama-quantize".into(),
        same_q4,
    ));
    let _ = std::fs::remove_file(&q4_out);
}
