//! Shared helpers: fixture paths and tensor-by-tensor comparison with reference safetensors files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, Tensor};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/torch")
        .join(name)
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ckpt-torch-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn read(name: &str) -> Checkpoint {
    let path = fixture(name);
    ckpt_torch::read(&path, &Default::default()).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// Asserts `tensors` hold exactly the tensors of the reference safetensors file: same names,
/// dtypes, shapes and bytes.
pub fn assert_same_as_safetensors(tensors: &[Tensor], expected: &Path) {
    let reference = ckpt_safetensors::read(expected)
        .unwrap_or_else(|e| panic!("reading {}: {e}", expected.display()));
    assert_same_tensors(tensors, &reference.tensors, &expected.display().to_string());
}

pub fn assert_same_tensors(got: &[Tensor], expected: &[Tensor], what: &str) {
    let got_by_name: BTreeMap<&str, &Tensor> = got.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(
        got_by_name.len(),
        got.len(),
        "{what}: duplicate names in the result"
    );
    let expected_by_name: BTreeMap<&str, &Tensor> =
        expected.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(
        got_by_name.keys().collect::<Vec<_>>(),
        expected_by_name.keys().collect::<Vec<_>>(),
        "{what}: tensor names differ"
    );
    for (name, e) in &expected_by_name {
        let g = got_by_name[name];
        assert_eq!(g.dtype, e.dtype, "{what}: dtype of '{name}'");
        assert_eq!(g.shape, e.shape, "{what}: shape of '{name}'");
        let (gb, eb) = (g.bytes().unwrap(), e.bytes().unwrap());
        assert!(gb == eb, "{what}: bytes of '{name}' differ");
    }
}

/// The storage id, element offset and strides of a tensor's view.
pub fn layout(t: &Tensor) -> (u64, u64, Option<Vec<u64>>) {
    let v = t.view().expect("a view");
    (v.storage.id, v.offset, v.strides.clone())
}
