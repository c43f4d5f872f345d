//! The metadata list the way gguf-py's `GGUFWriter` keeps it: a dict in insertion order where
//! adding an existing key replaces its value in place, empty strings and empty arrays are
//! silently not added, and Python ints in arrays become INT32.

use ckpt_gguf::{GgufValue, GgufWriter};

/// GGUF KV pairs in the order they will be written, with gguf-py's replace-in-place and
/// skip-empty rules.
#[derive(Default, Debug, Clone)]
pub struct KvList {
    entries: Vec<(String, GgufValue)>,
}

impl KvList {
    /// An empty list.
    pub fn new() -> KvList {
        KvList::default()
    }

    /// Adds or replaces (keeping the first position) like assigning into a Python dict.
    pub(crate) fn set(&mut self, key: &str, value: GgufValue) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    pub(crate) fn u32(&mut self, key: &str, v: u32) {
        self.set(key, GgufValue::U32(v));
    }

    pub(crate) fn f32(&mut self, key: &str, v: f32) {
        self.set(key, GgufValue::F32(v));
    }

    pub(crate) fn bool(&mut self, key: &str, v: bool) {
        self.set(key, GgufValue::Bool(v));
    }

    /// gguf-py's `add_string` drops empty strings without a word.
    pub(crate) fn string(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            self.set(key, GgufValue::string(v));
        }
    }

    /// gguf-py's `add_array` drops empty lists without a word.
    pub(crate) fn array(&mut self, key: &str, v: GgufValue) {
        if let GgufValue::Array(a) = &v {
            if a.is_empty() {
                return;
            }
        }
        self.set(key, v);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&GgufValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The pairs as they will be written, first added first.
    pub fn entries(&self) -> &[(String, GgufValue)] {
        &self.entries
    }

    pub(crate) fn into_writer(self, writer: &mut GgufWriter) {
        for (k, v) in self.entries {
            writer.add_kv(&k, v);
        }
    }
}
