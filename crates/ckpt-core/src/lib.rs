//! ckpt-core: the pieces every ckpt format and command shares — element types, the lazy tensor
//! model, checkpoints as read, shard planning and crash-safe output.

pub mod atomic;
pub mod checkpoint;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod hf;
pub mod pool;
pub mod progress;
pub mod shard;
pub mod sniff;
pub mod tensor;

pub use checkpoint::{Checkpoint, Format};
pub use dtype::{numel, DType, GgmlType};
pub use error::{Error, ErrorKind, Result};
pub use progress::{Progress, ProgressEvent, SharedProgress};
pub use tensor::{Buffer, RowFill, Storage, Tensor, TensorData, View};
