//! GGUF v2/v3 reader and writer: KV metadata of all 13 value types, tensor infos, alignment,
//! split sets (`-00001-of-0000N.gguf`), written byte-for-byte like gguf-py or ggml's C writer.
//!
//! Reading applies llama.cpp's validation (see [`header`]) and maps the file; tensors are lazy
//! [`ckpt_core::Tensor`] views with row-major shapes (`ne` reversed). Big-endian files are read
//! as gguf-py reads them (values and number tensors come out little-endian; BF16 and block
//! data, whose byte order such a file does not pin down, are refused when read, see
//! [`GgufFile`]); arrays of arrays only on request ([`ParseOptions`]), as llama.cpp rejects
//! them. Writing is v3, little-endian or, like the converters' `--bigendian`, big-endian
//! ([`ByteOrder`]).

pub mod file;
pub mod header;
pub mod split;
pub mod value;
pub mod writer;

pub use file::{
    describe_kvs, open_split, open_split_with, split_path, type_label, GgufFile, GgufSplit,
};
pub use file::{SPLIT_COUNT_KEY, SPLIT_NO_KEY, SPLIT_TENSORS_COUNT_KEY};
pub use header::{
    parse_header, parse_header_with, GgufHeader, HeaderParse, ParseOptions, TensorInfo,
};
pub use header::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ARRAY_ELEMENTS, MAX_DIMS, MAX_NAME_LEN, MAX_STRING_LENGTH,
};
pub use split::{merge_gguf, split_gguf, ShardPlan, SplitReport};
pub use value::{describe_value, to_json, to_typed_json, GgufArray, GgufValue, GgufValueType};
pub use writer::{
    converter_shard_paths, encode_value, parse_convert_split_size, parse_split_size, split_prefix,
    ByteOrder, ConverterSplit, DimsMode, GgufWriter, SplitBy, SplitOptions,
};
