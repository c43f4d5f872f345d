//! Integration tests of ckpt-export, one binary (link once).

mod architectures;
mod dense_modules;
mod python_interop;
mod round_trip;

/// `gguf` rewritten to `dst` with `edit` applied to its KVs and tensors.
fn edited_gguf(
    gguf: &std::path::Path,
    dst: &std::path::Path,
    edit: impl FnOnce(&mut ckpt_gguf::GgufWriter),
) {
    let src = ckpt_gguf::open_split(gguf).unwrap();
    let mut w = ckpt_gguf::GgufWriter::new();
    for (k, v) in src.kvs() {
        w.add_kv(k, v.clone());
    }
    for t in src.tensors() {
        w.add_tensor(t);
    }
    edit(&mut w);
    w.write(dst, false).unwrap();
}
