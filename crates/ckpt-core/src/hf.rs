//! Hugging Face model-folder conventions, shared by local folders and Hub repositories: which
//! files are the weights, how a shard index reads, which files travel along with the weights.
//!
//! The weight choice follows transformers' `_get_resolved_checkpoint_files` (no variant,
//! `use_safetensors` unset): `model.safetensors`, then `model.safetensors.index.json`, then
//! `pytorch_model.bin`, then `pytorch_model.bin.index.json`. Folders transformers would not load
//! fall back, safetensors first, to: another `*.safetensors.index.json`, `consolidated.safetensors`,
//! every other `*.safetensors`, GGUF files (where the caller reads them), `model.pt`/`model.pth`,
//! then every other pickle except `training_args.bin`. Shards are listed in sorted order, as
//! transformers' `get_checkpoint_shard_files` lists them (`sorted(set(weight_map.values()))`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::sniff::{kind_of_name, NameKind};

/// transformers' `SAFE_WEIGHTS_NAME`: the single-file safetensors weights.
pub(crate) const SAFE_WEIGHTS_NAME: &str = "model.safetensors";
/// transformers' `SAFE_WEIGHTS_INDEX_NAME`: the index of sharded safetensors weights.
pub(crate) const SAFE_WEIGHTS_INDEX_NAME: &str = "model.safetensors.index.json";
/// transformers' `WEIGHTS_NAME`: the single-file PyTorch weights.
pub(crate) const WEIGHTS_NAME: &str = "pytorch_model.bin";
/// transformers' `WEIGHTS_INDEX_NAME`: the index of sharded PyTorch weights.
pub(crate) const WEIGHTS_INDEX_NAME: &str = "pytorch_model.bin.index.json";
/// A pickle the Trainer saves beside the weights; never weights itself.
pub(crate) const TRAINING_ARGS_NAME: &str = "training_args.bin";

/// The weights of a folder, as [`choose_weights`] picks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    /// A shard index; its `weight_map` names the shards.
    Index(String),
    /// Files read together as one checkpoint, in this order (one, unless a folder holds several
    /// unindexed files of the chosen kind).
    Files(Vec<String>),
}

/// Which weights a folder holding `names` (file names directly inside it, no `/`) has, by the
/// rules in the module documentation; `gguf` says whether GGUF files count as weights. `None`
/// when there are none.
pub fn choose_weights(names: &[&str], gguf: bool) -> Option<Weights> {
    let has = |n: &str| names.contains(&n);
    let sorted = |pred: &dyn Fn(&str) -> bool| {
        let mut v: Vec<String> = names
            .iter()
            .filter(|n| pred(n))
            .map(|n| n.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let index = |n: &str| Some(Weights::Index(n.to_string()));
    let one = |n: &str| Some(Weights::Files(vec![n.to_string()]));
    if has(SAFE_WEIGHTS_NAME) {
        return one(SAFE_WEIGHTS_NAME);
    }
    if has(SAFE_WEIGHTS_INDEX_NAME) {
        return index(SAFE_WEIGHTS_INDEX_NAME);
    }
    if has(WEIGHTS_NAME) {
        return one(WEIGHTS_NAME);
    }
    if has(WEIGHTS_INDEX_NAME) {
        return index(WEIGHTS_INDEX_NAME);
    }
    if let Some(first) =
        sorted(&|n| n.to_ascii_lowercase().ends_with(".safetensors.index.json")).first()
    {
        return index(first);
    }
    if has("consolidated.safetensors") {
        return one("consolidated.safetensors");
    }
    let st = sorted(&|n| kind_of_name(n) == NameKind::Safetensors);
    if !st.is_empty() {
        return Some(Weights::Files(st));
    }
    if gguf {
        let g = sorted(&|n| kind_of_name(n) == NameKind::Gguf);
        if !g.is_empty() {
            return Some(Weights::Files(g));
        }
    }
    for name in ["model.pt", "model.pth"] {
        if has(name) {
            return one(name);
        }
    }
    let pickles = sorted(&|n| kind_of_name(n) == NameKind::Pickle && n != TRAINING_ARGS_NAME);
    (!pickles.is_empty()).then_some(Weights::Files(pickles))
}

/// Whether a file beside the weights travels with them into a converted folder (config,
/// tokenizer, chat template, generation config, README…): anything not hidden that is not a
/// weight file or a shard index of any format (`training_args.bin` does travel).
/// The most a side file read whole (config.json, tokenizer files, adapter_config.json, an index,
/// a chat template, a Modelfile) may hold: 256 MiB, far above any real one (the largest
/// tokenizer.json files are a few tens of MB), far below what would exhaust memory.
pub(crate) const MAX_SIDE_FILE_BYTES: u64 = 256 << 20;

/// Reads a side file of a model folder whole, refusing one larger than 256 MiB (far above any
/// real one). The budget is enforced while reading, so a file that lies about its
/// size (a symlink to `/dev/zero`, a FIFO, a file that grows) is refused too.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("ckpt-doc-side-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("config.json"), b"{}").unwrap();
/// assert_eq!(ckpt_core::hf::read_side_file(&dir.join("config.json")).unwrap(), b"{}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_side_file(path: &Path) -> crate::Result<Vec<u8>> {
    read_capped(path, MAX_SIDE_FILE_BYTES)
}

/// [`read_side_file`] as UTF-8 text (an error naming the file when it is not).
pub fn read_side_text(path: &Path) -> crate::Result<String> {
    String::from_utf8(read_side_file(path)?)
        .map_err(|e| crate::Error::invalid(path, format!("not UTF-8 text: {e}")))
}

fn read_capped(path: &Path, limit: u64) -> crate::Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let too_big = || {
        crate::Error::unsafe_input(
            path,
            format!(
                "larger than the {limit} bytes a side file may hold (a real one is far smaller)"
            ),
        )
    };
    let len = file
        .metadata()
        .map_err(|e| crate::Error::io(path, e))?
        .len();
    if len > limit {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| crate::Error::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(buf)
}

/// Whether a file named `name` travels along with the weights when a model folder is copied or
/// converted (config, tokenizer, README, ...): anything but weights, indexes and hidden files;
/// `training_args.bin` is the one pickle that counts.
pub fn is_companion(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    match kind_of_name(name) {
        NameKind::Index | NameKind::Safetensors | NameKind::Gguf => false,
        NameKind::Pickle => name == TRAINING_ARGS_NAME,
        NameKind::Unknown => true,
    }
}

/// A parsed `*.index.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardIndex {
    /// The shard file names, sorted and deduplicated.
    pub shards: Vec<String>,
    /// Tensor name -> shard file name.
    pub weight_map: BTreeMap<String, String>,
    /// The index's `metadata` (`total_size`…), non-string values as JSON text.
    pub metadata: BTreeMap<String, String>,
}

/// Parses the bytes of a `*.index.json`. A shard name that could leave the folder (`..`, an
/// absolute path, a URL, a backslash, empty) is refused. The error says what is wrong; the
/// caller adds where.
pub fn parse_index(body: &[u8]) -> Result<ShardIndex, String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("index is not valid JSON: {e}"))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("index has no \"weight_map\" object")?;
    let mut out = ShardIndex::default();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| format!("weight_map entry '{name}' is not a file name"))?;
        if file.contains("..")
            || file.starts_with('/')
            || file.contains("://")
            || file.contains('\\')
            || file.is_empty()
        {
            return Err(format!(
                "weight_map entry '{name}' points outside the folder: '{file}'"
            ));
        }
        out.weight_map.insert(name.clone(), file.to_string());
    }
    out.shards = out.weight_map.values().cloned().collect();
    out.shards.sort();
    out.shards.dedup();
    if let Some(m) = json.get("metadata").and_then(|m| m.as_object()) {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.metadata.insert(k.clone(), v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_have_a_budget_even_when_they_lie_about_their_size() {
        let dir = std::env::temp_dir().join(format!("ckpt-side-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.json");
        std::fs::write(&small, b"{\"a\": 1}").unwrap();
        assert_eq!(read_capped(&small, 8).unwrap(), b"{\"a\": 1}");
        let e = read_capped(&small, 7).unwrap_err();
        assert!(e.to_string().contains("small.json"), "{e}");
        // /dev/zero reports length 0 and never ends: the budget still stops it.
        #[cfg(unix)]
        {
            let zero = dir.join("adapter_config.json");
            let _ = std::fs::remove_file(&zero);
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            let e = read_capped(&zero, 1 << 20).unwrap_err();
            assert!(matches!(e, crate::Error::Unsafe { .. }), "{e}");
            assert!(e.to_string().contains("adapter_config.json"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn files(v: &[&str]) -> Weights {
        Weights::Files(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn transformers_order_for_the_standard_names() {
        let all = [
            "config.json",
            "pytorch_model.bin.index.json",
            "pytorch_model.bin",
            "model.safetensors.index.json",
            "model.safetensors",
        ];
        // transformers tries model.safetensors, its index, pytorch_model.bin, its index
        for skip in 0..4 {
            let names: Vec<&str> = all[..all.len() - skip].to_vec();
            let want = match skip {
                0 => files(&["model.safetensors"]),
                1 => Weights::Index("model.safetensors.index.json".into()),
                2 => files(&["pytorch_model.bin"]),
                _ => Weights::Index("pytorch_model.bin.index.json".into()),
            };
            assert_eq!(choose_weights(&names, true), Some(want), "{names:?}");
        }
        // safetensors are preferred even when only the .bin index is beside them
        assert_eq!(
            choose_weights(
                &["pytorch_model.bin.index.json", "model.safetensors"],
                false
            ),
            Some(files(&["model.safetensors"]))
        );
    }

    #[test]
    fn fallbacks_for_other_layouts() {
        let c = |n: &[&str], g| choose_weights(n, g);
        assert_eq!(
            c(
                &[
                    "b.safetensors",
                    "diffusion_pytorch_model.safetensors.index.json"
                ],
                false
            ),
            Some(Weights::Index(
                "diffusion_pytorch_model.safetensors.index.json".into()
            ))
        );
        assert_eq!(
            c(&["model-1.safetensors", "consolidated.safetensors"], false),
            Some(files(&["consolidated.safetensors"]))
        );
        assert_eq!(
            c(&["b.safetensors", "a.safetensors", "x.bin"], false),
            Some(files(&["a.safetensors", "b.safetensors"]))
        );
        assert_eq!(
            c(&["a.Q8_0.gguf", "b.bin"], true),
            Some(files(&["a.Q8_0.gguf"]))
        );
        assert_eq!(c(&["a.Q8_0.gguf", "b.bin"], false), Some(files(&["b.bin"])));
        assert_eq!(
            c(&["optimizer.pt", "model.pt"], false),
            Some(files(&["model.pt"]))
        );
        assert_eq!(
            c(&["training_args.bin", "adapter_model.bin", "a.pth"], false),
            Some(files(&["a.pth", "adapter_model.bin"]))
        );
        assert_eq!(c(&["training_args.bin", "config.json"], true), None);
    }

    #[test]
    fn companions() {
        for n in [
            "config.json",
            "tokenizer.json",
            "README.md",
            "training_args.bin",
            "tokenizer.model",
        ] {
            assert!(is_companion(n), "{n}");
        }
        for n in [
            ".gitattributes",
            "model.safetensors",
            "x.gguf",
            "a.bin",
            "a.pt",
            "a.pth",
            "a.ckpt",
            "pytorch_model.bin.index.json",
        ] {
            assert!(!is_companion(n), "{n}");
        }
    }

    #[test]
    fn index_parsing() {
        let ix = parse_index(
            br#"{"metadata":{"total_size":10,"format":"pt"},"weight_map":{"b":"s2","a":"s1","c":"s2"}}"#,
        )
        .unwrap();
        assert_eq!(ix.shards, ["s1", "s2"]);
        assert_eq!(ix.weight_map["c"], "s2");
        assert_eq!(ix.metadata["total_size"], "10");
        assert_eq!(ix.metadata["format"], "pt");
        for (body, want) in [
            (&b"{"[..], "not valid JSON"),
            (b"{}", "no \"weight_map\""),
            (br#"{"weight_map":{"a":1}}"#, "'a' is not a file name"),
            (br#"{"weight_map":{"a":"../x"}}"#, "outside the folder"),
            (br#"{"weight_map":{"a":"/x"}}"#, "outside the folder"),
            (br#"{"weight_map":{"a":""}}"#, "outside the folder"),
            (
                br#"{"weight_map":{"a":"http://h/x"}}"#,
                "outside the folder",
            ),
        ] {
            let e = parse_index(body).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
