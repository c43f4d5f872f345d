//! Conversion plans: model folders, shards, shared tensors, casts, and the source to sink loop
