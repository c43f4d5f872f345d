//! ggml quantization types: one table of kernels, bit-exact with ggml's reference algorithms, and llama-quantize's per-tensor type choice
