//! The README's "Try it" commands, run as written: only `cargo run --release --bin ckpt --` is
//! replaced by the binary under test and `/tmp/` by a scratch folder. Every command must exit 0,
//! and every output it names must exist and be valid (GGUFs parse, the safetensors folder opens
//! with its tokenizer and chat template, the Ollama store has the model's manifest).

use std::path::{Path, PathBuf};
use std::process::Command;

const CARGO_RUN: &str = "cargo run --release --bin ckpt --";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands of the ```sh blocks under every "## Try it…" heading, in order.
fn try_it_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut in_section, mut in_block) = (false, false);
    for line in readme.lines() {
        if line.starts_with("## ") {
            in_section = line.to_ascii_lowercase().starts_with("## try it");
            in_block = false;
            continue;
        }
        if !in_section {
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        let cmd = line.split(" #").next().unwrap().trim();
        if in_block && !cmd.is_empty() && !cmd.starts_with('#') {
            out.push(cmd.to_string());
        }
    }
    out
}

#[test]
fn readme_try_it_commands_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands = try_it_commands(&readme);
    // The walk-through covers the main jobs: .bin -> safetensors, -> GGUF, quantize, Ollama.
    let all = commands.join("\n");
    for needle in [
        "convert examples/",
        ".gguf --outtype",
        " quantize ",
        "ollama create",
    ] {
        assert!(
            all.contains(needle),
            "the README's try-it lost `{needle}`:\n{all}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let tmp = format!("{}/", work.path().display());
    let bin = env!("CARGO_BIN_EXE_ckpt");
    for cmd in &commands {
        assert!(cmd.contains(CARGO_RUN), "not a ckpt command: {cmd}");
        let run = cmd.replace(CARGO_RUN, bin).replace("/tmp/", &tmp);
        let r = Command::new("sh")
            .arg("-c")
            .arg(&run)
            .current_dir(root())
            .env_remove("OLLAMA_MODELS")
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "README command failed: {cmd}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        // Every scratch path the command names exists afterwards.
        for word in run.split_whitespace() {
            let path = word.split_once('=').map_or(word, |(_, v)| v);
            if !path.starts_with(&tmp) {
                continue;
            }
            let p = Path::new(path);
            assert!(p.exists(), "{cmd}: {} was not written", p.display());
            if path.ends_with(".gguf") {
                let split = ckpt_gguf::open_split(p).unwrap();
                assert!(
                    split
                        .kvs()
                        .iter()
                        .any(|(k, _)| k == "tokenizer.chat_template"),
                    "{cmd}: {path} has no chat template"
                );
            } else if p.is_dir() && p.join("config.json").exists() {
                let ck = ckpt_convert::open(p, &Default::default()).unwrap();
                assert_eq!(ck.tensors.len(), 11, "{path}");
                assert!(p.join("tokenizer.model").exists(), "{path}: no tokenizer");
                assert!(p.join("tokenizer_config.json").exists(), "{path}");
            } else if word.starts_with("OLLAMA_MODELS=") && cmd.contains("ollama create") {
                let name = run.split("ollama create ").nth(1).unwrap();
                let name = name.split_whitespace().next().unwrap();
                let manifest = p.join(format!(
                    "manifests/registry.ollama.ai/library/{name}/latest"
                ));
                assert!(manifest.is_file(), "{cmd}: no {}", manifest.display());
            }
        }
    }
}

#[test]
fn try_it_parser_sees_only_the_try_it_blocks() {
    let md = "## Install\n```sh\ncargo install x\n```\n## Try it here\ntext\n```sh\na one\n# note\nb two   # why\n```\n```json\n{}\n```\n## Next\n```sh\nc\n```\n";
    assert_eq!(try_it_commands(md), vec!["a one", "b two"]);
}
