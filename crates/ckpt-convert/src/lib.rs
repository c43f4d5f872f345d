//! ckpt-convert: the source -> plan -> sink loop shared by every conversion command: opening
//! files and model folders, shared-tensor de-duplication, casts, sharding, verification.

pub mod cast;
pub mod convert;
pub mod diff;
pub mod gguf;
pub mod shared;
pub mod source;
mod torch_io;
pub mod verify;

pub use convert::{convert, ConvertOptions, ConvertReport, Target};
pub use source::{open, OpenOptions};
