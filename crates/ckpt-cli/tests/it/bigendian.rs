//! `ckpt convert --bigendian`: models and LoRA adapters compared byte for byte with what
//! convert_hf_to_gguf.py / convert_lora_to_gguf.py --bigendian wrote (tests/fixtures/bigendian,
//! scripts/gen-bigendian-fixtures.py), split sets and `merge-lora --to gguf` too; `inspect` and
//! `diff` on those files; the refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn be(p: &str) -> PathBuf {
    root().join("tests/fixtures/bigendian").join(p)
}

fn ckpt(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .unwrap()
}

macro_rules! ckpt {
    ($($a:expr),* $(,)?) => { ckpt(&[$(std::ffi::OsStr::new($a)),*]) };
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(be("manifest.json")).unwrap()).unwrap()
}

#[test]
fn models_match_convert_hf_to_gguf_bigendian() {
    let work = tempfile::tempdir().unwrap();
    let m = manifest();
    let models = m["models"].as_object().unwrap();
    assert_eq!(models.len(), 6);
    for (name, e) in models {
        let src = root().join(e["source"].as_str().unwrap());
        let out = work.path().join(name);
        let outtype = e["outtype"].as_str().unwrap();
        if e["mmproj"].as_bool().unwrap() {
            // The script's --mmproj writes only the projector; ckpt writes the text model too.
            let text = work.path().join(format!("text-{name}"));
            ok(&ckpt!(
                "convert",
                &src,
                "--outfile",
                &text,
                "--outtype",
                outtype,
                "--mmproj",
                &out,
                "--bigendian"
            ));
        } else {
            ok(&ckpt!(
                "convert",
                &src,
                "--outfile",
                &out,
                "--outtype",
                outtype,
                "--bigendian"
            ));
        }
        let got = std::fs::read(&out).unwrap();
        if e["stored"].as_bool().unwrap() {
            assert!(
                got == std::fs::read(be(name)).unwrap(),
                "{name}: differs from convert_hf_to_gguf.py --bigendian"
            );
        } else {
            // Too large to store: the header bytes and the whole file's sha256.
            let header = std::fs::read(be(&name.replace(".gguf", ".header"))).unwrap();
            assert!(got[..header.len()] == header[..], "{name}: header differs");
        }
        assert_eq!(got.len() as u64, e["size"].as_u64().unwrap(), "{name}");
        assert_eq!(sha256(&got), e["sha256"], "{name}");
    }
}

#[test]
fn adapters_match_convert_lora_to_gguf_bigendian() {
    let work = tempfile::tempdir().unwrap();
    let m = manifest();
    let adapters = m["adapters"].as_object().unwrap();
    assert_eq!(adapters.len(), 4);
    let fx = root().join("tests/fixtures");
    for (name, e) in adapters {
        let out = work.path().join(name);
        ok(&ckpt!(
            "convert",
            &fx.join(e["adapter"].as_str().unwrap()),
            &out,
            "--base",
            &fx.join(e["base"].as_str().unwrap()),
            "--outtype",
            e["outtype"].as_str().unwrap(),
            "--bigendian"
        ));
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(be(&format!("lora/{name}"))).unwrap(),
            "{name}: differs from convert_lora_to_gguf.py --bigendian"
        );
    }
}

fn inspect(p: &Path) -> serde_json::Value {
    let o = ckpt!("inspect", "--json", p);
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn inspect_and_diff_read_big_endian_files() {
    let work = tempfile::tempdir().unwrap();
    let model = root().join("examples/tiny-llama");
    for t in ["f16", "q8_0"] {
        let le = work.path().join(format!("le.{t}.gguf"));
        ok(&ckpt!("convert", &model, "--outfile", &le, "--outtype", t));
        let b = be(&format!("tiny-llama.{t}.be.gguf"));
        let (vb, vl) = (inspect(&b), inspect(&le));
        assert_eq!(vb["byte_order"], "big");
        assert_eq!(vl["byte_order"], "little");
        assert_eq!(vb["metadata"], vl["metadata"], "{t}");
        assert_eq!(vb["tensors"], vl["tensors"], "{t}");
        let human = ckpt!("inspect", &b);
        ok(&human);
        assert!(String::from_utf8_lossy(&human.stdout).contains("big-endian"));

        let d = ckpt!("diff", &b, &le);
        if t == "f16" {
            // F16 and F32 data is swapped back as read: the same tensors.
            ok(&d);
        } else {
            // Q8_0 blocks of a big-endian file: unswapped (this converter) or swapped
            // (gguf_convert_endian.py), the file does not say; refused, not guessed (diff's
            // exit 2: an error; 0 same, 1 different).
            assert_eq!(
                d.status.code(),
                Some(2),
                "{}",
                String::from_utf8_lossy(&d.stdout)
            );
            let err = String::from_utf8_lossy(&d.stderr);
            assert!(
                err.contains("tiny-llama.q8_0.be.gguf") && err.contains("not supported"),
                "{err}"
            );
        }
    }
}

#[test]
fn bigendian_is_refused_where_the_scripts_cannot_write_it() {
    let work = tempfile::tempdir().unwrap();
    let model = root().join("examples/tiny-llama");
    let out = work.path().join("x.gguf");
    for extra in [
        &["--outtype", "q4_k_m"][..],
        &["--outtype", "q4_k_m", "--split-max-tensors", "4"][..],
    ] {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "convert".as_ref(),
            model.as_os_str(),
            "--outfile".as_ref(),
            out.as_os_str(),
            "--bigendian".as_ref(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let o = ckpt(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--bigendian"), "{err}");
        assert!(!out.exists());
    }
    let o = ckpt!("convert", &model, &work.path().join("st"), "--bigendian");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bigendian"));
}

/// `merge-lora --to gguf --bigendian` against PEFT's merge_and_unload() of the same adapter
/// converted by convert_hf_to_gguf.py --bigendian (the adapter's values make the merge exact,
/// so the reference's weights are what any correct merger computes).
#[test]
fn merge_lora_to_gguf_matches_peft_merge_converted_bigendian() {
    let work = tempfile::tempdir().unwrap();
    let m = manifest();
    let merges = m["merges"].as_object().unwrap();
    assert_eq!(merges.len(), 1);
    for (name, e) in merges {
        // general.name comes from the merged folder's name, which is the output's stem.
        let out = work
            .path()
            .join(format!("{}.gguf", e["folder"].as_str().unwrap()));
        ok(&ckpt!(
            "merge-lora",
            "--base",
            &root().join(e["base"].as_str().unwrap()),
            "--adapter",
            &root().join(e["adapter"].as_str().unwrap()),
            "--out",
            &out,
            "--to",
            "gguf",
            "--outtype",
            e["outtype"].as_str().unwrap(),
            "--bigendian"
        ));
        let got = std::fs::read(&out).unwrap();
        assert!(
            got == std::fs::read(be(&format!("merge/{name}"))).unwrap(),
            "{name}: differs from PEFT's merge converted by convert_hf_to_gguf.py --bigendian"
        );
        assert_eq!(sha256(&got), e["sha256"], "{name}");
        assert_eq!(inspect(&out)["byte_order"], "big");
    }
}

#[test]
fn merge_lora_bigendian_is_refused_without_a_big_endian_gguf() {
    let work = tempfile::tempdir().unwrap();
    let e = &manifest()["merges"]["tiny-llama-merged.f16.be.gguf"];
    let base = root().join(e["base"].as_str().unwrap());
    let adapter = root().join(e["adapter"].as_str().unwrap());
    for (out, extra) in [
        ("folder", &["--bigendian"][..]),
        (
            "q.gguf",
            &["--to", "gguf", "--outtype", "q4_k_m", "--bigendian"][..],
        ),
    ] {
        let out = work.path().join(out);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "merge-lora".as_ref(),
            "--base".as_ref(),
            base.as_os_str(),
            "--adapter".as_ref(),
            adapter.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let o = ckpt(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--bigendian"), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}");
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

/// `convert --bigendian --split-max-*` against the converter's big-endian shards: the same files
/// byte for byte (split.* keys big-endian like every KV, the metadata-only first shard of
/// --no-tensor-first-split), the --dry-run plan of them, and the set read back by inspect.
#[test]
fn split_output_matches_convert_hf_to_gguf_bigendian() {
    let m = manifest();
    let splits = m["splits"].as_object().unwrap();
    assert_eq!(splits.len(), 2);
    for (case, e) in splits {
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join(e["outfile"].as_str().unwrap());
        let args: Vec<&str> = e["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let src = root().join(e["source"].as_str().unwrap());
        let run = |extra: &[&str]| {
            let mut a: Vec<&std::ffi::OsStr> =
                vec!["convert".as_ref(), src.as_os_str(), out.as_os_str()];
            a.extend(args.iter().map(std::ffi::OsStr::new));
            a.push("--bigendian".as_ref());
            a.extend(extra.iter().map(std::ffi::OsStr::new));
            ckpt(&a)
        };
        let want: Vec<(String, u64)> = e["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["file"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                )
            })
            .collect();

        let plan = run(&["--dry-run", "--json"]);
        ok(&plan);
        let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let planned: Vec<(String, u64)> = report["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let p = PathBuf::from(s["path"].as_str().unwrap());
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    s["bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(planned, want, "{case}: --dry-run plan");
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);

        ok(&run(&[]));
        let mut names: Vec<String> = std::fs::read_dir(work.path())
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            want.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
            "{case}: files written"
        );
        for (f, fe) in want.iter().zip(e["files"].as_array().unwrap()) {
            let got = std::fs::read(work.path().join(&f.0)).unwrap();
            assert!(
                got == std::fs::read(be(&format!("split/{case}/{}", f.0))).unwrap(),
                "{case}/{}: differs from convert_hf_to_gguf.py --bigendian",
                f.0
            );
            assert_eq!(sha256(&got), fe["sha256"], "{case}/{}", f.0);
        }

        // The set reads back: every shard's tensors, big-endian.
        let v = inspect(&work.path().join(&want[0].0));
        assert_eq!(v["byte_order"], "big", "{case}");
        let tensors: u64 = e["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["tensors"].as_u64().unwrap())
            .sum();
        assert_eq!(
            v["tensors"].as_array().unwrap().len() as u64,
            tensors,
            "{case}"
        );
        // llama-gguf-split reads little-endian files only, and so does gguf-split (exit 5).
        let merged = work.path().join("merged.gguf");
        let o = ckpt!(
            "gguf-split",
            "--merge",
            &work.path().join(&want[0].0),
            &merged
        );
        assert_eq!(o.status.code(), Some(5), "{case}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("big-endian"));
        assert!(!merged.exists());
    }
}

/// The f16 split set holds the same tensors and metadata as the little-endian one the converter
/// wrote with the same limits (tests/fixtures/convert-split), and its data reads back equal.
#[test]
fn big_endian_split_set_reads_like_its_little_endian_twin() {
    let le =
        root().join("tests/fixtures/convert-split/expected/tensors-7/tiny-00001-of-00003.gguf");
    let bes = be("split/f16-tensors-7/tiny-00001-of-00003.gguf");
    let (vb, vl) = (inspect(&bes), inspect(&le));
    assert_eq!(vb["byte_order"], "big");
    assert_eq!(vl["byte_order"], "little");
    assert_eq!(vb["metadata"], vl["metadata"]);
    assert_eq!(vb["tensors"], vl["tensors"]);
    ok(&ckpt!("diff", &bes, &le));
}
