//! GGUF v3 reader and writer (KVs, tensor infos, alignment, split files)
