//! `config.json` as the converter sees it: the JSON object (with `text_config` merged in), plus
//! the defaults transformers' config class would have filled in (the converter reads
//! `AutoConfig.to_dict()`, so a key missing from the file can still be present there).

use std::path::{Path, PathBuf};

use ckpt_core::{Error, Result};
use serde_json::{Map, Value};

/// A model's `config.json` as the converter reads it (see the module documentation).
pub struct Hparams {
    /// The config.json read (named in errors).
    pub path: PathBuf,
    /// Its top-level object, `text_config`'s keys merged over it, plus the defaults an
    /// architecture adds.
    pub map: Map<String, Value>,
    /// convert_hf_to_gguf.py `--sentence-transformers-dense-modules`: the conversion also takes
    /// the sentence-transformers `Dense` modules listed in `modules.json` (EmbeddingGemma's
    /// `2_Dense`/`3_Dense`). Not part of config.json; set from
    /// [`crate::HfToGgufOptions::sentence_transformers_dense_modules`].
    pub sentence_transformers_dense_modules: bool,
}

impl Hparams {
    pub(crate) fn load(model_dir: &Path) -> Result<Hparams> {
        let path = model_dir.join("config.json");
        let map = read_json_object(&path)?;
        let mut hp = Hparams {
            path,
            map,
            sentence_transformers_dense_modules: false,
        };
        if let Some(Value::Object(text)) = hp.map.get("text_config").cloned() {
            for (k, v) in text {
                hp.map.insert(k, v);
            }
        }
        Ok(hp)
    }

    /// Adds `key` with `value` unless the config already has it (transformers defaults).
    pub(crate) fn default(&mut self, key: &str, value: Value) {
        if !self.map.contains_key(key) {
            self.map.insert(key.to_string(), value);
        }
    }

    /// The value of `key`; `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value of the first key present (like the converter's `find_hparam(optional=True)`).
    pub(crate) fn find(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter()
            .find_map(|k| self.map.get(*k))
            .filter(|v| !v.is_null())
    }

    pub(crate) fn find_u32(&self, keys: &[&str]) -> Result<Option<u32>> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.bad(keys, v, "a non-negative integer below 2^32")),
        }
    }

    pub(crate) fn find_f64(&self, keys: &[&str]) -> Result<Option<f64>> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(keys, v, "a number")),
        }
    }

    /// The value of the first of `keys` present, as a u32 (the converter's `find_hparam`); fails
    /// when none is present (or it is null), or when the value is not an integer in u32 range.
    pub fn require_u32(&self, keys: &[&str]) -> Result<u32> {
        self.find_u32(keys)?.ok_or_else(|| {
            Error::invalid(
                &self.path,
                format!("missing hyperparameter: none of {keys:?} is set"),
            )
        })
    }

    fn bad(&self, keys: &[&str], v: &Value, expected: &str) -> Error {
        Error::invalid(
            &self.path,
            format!("hyperparameter {keys:?} is {v}, expected {expected}"),
        )
    }
}

pub(crate) fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let text = ckpt_core::hf::read_side_text(path)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::invalid(path, "expected a JSON object")),
        Err(e) => Err(Error::invalid(path, format!("invalid JSON: {e}"))),
    }
}

/// Reads an optional JSON object file; a missing file is None.
pub(crate) fn read_optional_json(path: &Path) -> Result<Option<Map<String, Value>>> {
    if path.is_file() {
        read_json_object(path).map(Some)
    } else {
        Ok(None)
    }
}
