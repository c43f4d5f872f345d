//! GGUF v2/v3 reader and writer: KV metadata of all 13 value types, tensor infos, alignment,
//! split sets (`-00001-of-0000N.gguf`), written byte-for-byte like gguf-py or ggml's C writer.
//!
//! Reading applies llama.cpp's validation (see [`parse_header`]) and maps the file; tensors are lazy
//! [`ckpt_core::Tensor`] views with row-major shapes (`ne` reversed). Big-endian files are read
//! as gguf-py reads them (values and number tensors come out little-endian; BF16 and block
//! data, whose byte order such a file does not pin down, are refused when read, see
//! [`GgufFile`]); arrays of arrays only on request ([`ParseOptions`]), as llama.cpp rejects
//! them. Writing is v3, little-endian or, like the converters' `--bigendian`, big-endian
//! ([`ByteOrder`]).
//!
//! Entry points: [`GgufFile::open`] / [`open_split`] to read (a split set opens as one
//! [`GgufSplit`]), [`parse_header_with`] for the header alone (e.g. the first bytes of a remote
//! file), [`GgufWriter`] to write, [`split_gguf`] / [`merge_gguf`] for `llama-gguf-split`.
//!
//! ```
//! use std::path::Path;
//! use ckpt_gguf::{GgufFile, GgufValue, GgufWriter};
//!
//! let src = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../tests/fixtures/gguf/metadata-zoo/metadata-zoo.gguf"
//! ));
//! let f = GgufFile::open(src)?;
//! assert!(f.get("general.architecture").and_then(GgufValue::as_str).is_some());
//!
//! // Every KV and tensor written back in file order gives the same bytes (gguf-py's layout).
//! let mut w = GgufWriter::new();
//! for (key, value) in &f.kvs {
//!     w.add_kv(key, value.clone());
//! }
//! for t in f.tensors() {
//!     w.add_tensor(t);
//! }
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("copy.gguf");
//! w.write(&out, false)?;
//! assert!(std::fs::read(&out).unwrap() == std::fs::read(src).unwrap());
//! # Ok::<(), ckpt_core::Error>(())
//! ```

#![warn(missing_docs)]

mod file;
mod header;
mod split;
mod value;
mod writer;

pub use file::{describe_kvs, open_split, open_split_with, split_path, GgufFile, GgufSplit};
pub use file::{SPLIT_COUNT_KEY, SPLIT_NO_KEY, SPLIT_TENSORS_COUNT_KEY};
pub use header::{
    parse_header, parse_header_with, GgufHeader, HeaderParse, ParseOptions, TensorInfo,
};
pub use header::{ALIGNMENT_KEY, MAX_ARRAY_ELEMENTS, MAX_NAME_LEN, MAX_STRING_LENGTH};
pub use split::{merge_gguf, split_gguf, ShardPlan, SplitReport};
pub use value::{describe_value, to_json, to_typed_json, GgufArray, GgufValue, GgufValueType};
pub use writer::{
    encode_value, parse_convert_split_size, parse_split_size, split_prefix, ByteOrder,
    ConverterSplit, DimsMode, GgufWriter, SplitBy, SplitOptions,
};
