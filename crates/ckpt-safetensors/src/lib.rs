//! safetensors reader (mmap, full validation, header-only) and deterministic writer
