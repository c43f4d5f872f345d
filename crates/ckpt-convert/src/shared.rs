//! Tensors that share memory, handled the way safetensors' `convert.py` does
//! (`_remove_duplicate_names`): per storage, runs of overlapping byte ranges keep one name that
//! covers the whole storage; the others are dropped and recorded as `dropped -> kept`.

use std::collections::{BTreeMap, HashMap};

use ckpt_core::Tensor;

/// The result of [`dedup`]: which tensors to write and which names are aliases.
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    /// Indices of the tensors to write, in source order.
    pub keep: Vec<usize>,
    /// dropped name -> kept name.
    pub dropped: BTreeMap<String, String>,
    /// Groups that share memory but have no complete member: written as separate copies.
    pub materialised_groups: Vec<Vec<String>>,
}

/// Decides which names to keep. `discard` lists names to avoid keeping when another complete name
/// exists (a model's tied-weight aliases such as `lm_head.weight`).
pub fn dedup(tensors: &[Tensor], discard: &[String]) -> Dedup {
    let mut by_storage: HashMap<u64, Vec<(usize, std::ops::Range<u64>)>> = HashMap::new();
    for (i, t) in tensors.iter().enumerate() {
        if let Some((sid, range)) = t.storage_byte_range() {
            by_storage.entry(sid).or_default().push((i, range));
        }
    }
    let mut drop_idx = vec![false; tensors.len()];
    let mut result = Dedup::default();
    let mut storages: Vec<_> = by_storage.into_values().filter(|g| g.len() > 1).collect();
    storages.sort_by_key(|g| g.iter().map(|(i, _)| *i).min());
    for mut group in storages {
        group.sort_by(|(a, ra), (b, rb)| {
            (ra.start, ra.end, &tensors[*a].name).cmp(&(rb.start, rb.end, &tensors[*b].name))
        });
        // Split into runs of overlapping ranges; like safetensors, each range is compared with
        // the previous one only (disjoint slices of one storage are not shared).
        let mut runs: Vec<Vec<usize>> = Vec::new();
        let mut last_stop = 0u64;
        for (i, r) in group {
            match runs.last_mut() {
                Some(run) if r.start < last_stop => run.push(i),
                _ => runs.push(vec![i]),
            }
            last_stop = r.end;
        }
        for run in runs.into_iter().filter(|r| r.len() > 1) {
            let mut complete: Vec<&str> = run
                .iter()
                .filter(|&&i| tensors[i].covers_storage())
                .map(|&i| tensors[i].name.as_str())
                .collect();
            complete.sort();
            let Some(&first) = complete.first() else {
                result
                    .materialised_groups
                    .push(run.iter().map(|&i| tensors[i].name.clone()).collect());
                continue;
            };
            let keep_name = complete
                .iter()
                .copied()
                .find(|n| !discard.iter().any(|d| d == n))
                .unwrap_or(first);
            for &i in &run {
                if tensors[i].name != keep_name {
                    drop_idx[i] = true;
                    result
                        .dropped
                        .insert(tensors[i].name.clone(), keep_name.to_string());
                }
            }
        }
    }
    result.keep = (0..tensors.len()).filter(|&i| !drop_idx[i]).collect();
    result
}

/// Names transformers re-ties at load time for this config (its `_tied_weights_keys`), so
/// convert.py would rather drop them than the embedding they alias.
pub fn tied_aliases(config: &serde_json::Value) -> Vec<String> {
    if config.get("tie_word_embeddings").and_then(|v| v.as_bool()) == Some(false) {
        return Vec::new();
    }
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .unwrap_or("");
    if arch.ends_with("ForCausalLM")
        || arch.ends_with("LMHeadModel")
        || arch.ends_with("ForConditionalGeneration")
    {
        vec!["lm_head.weight".to_string()]
    } else {
        Vec::new()
    }
}
