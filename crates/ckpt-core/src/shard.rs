//! Shard planning the way huggingface_hub's `split_state_dict_into_shards_factory` does it, and
//! size strings with its decimal units.

/// Parses `5GB`, `500MB`, `2.5GB`, `24KB`, `1TB` or a plain byte count (decimal units, as
/// huggingface_hub's `parse_size_to_int`; binary `GiB` is refused there and here).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let upper = t.to_ascii_uppercase();
    for (suffix, mult) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)] {
        if let Some(num) = upper.strip_suffix(suffix) {
            let v: f64 = num
                .trim()
                .parse()
                .map_err(|_| format!("'{s}' is not a size like 5GB, 500MB or 24KB"))?;
            if v.is_nan() || v < 0.0 {
                return Err(format!("'{s}' is negative"));
            }
            return Ok((v * mult) as u64);
        }
    }
    Err(format!(
        "'{s}' is not a size like 5GB, 500MB or 24KB (decimal units: KB, MB, GB, TB)"
    ))
}

/// One entry to place: its size in bytes and an optional storage identity (entries sharing a
/// storage join the first one's shard and add nothing to its size).
pub struct ShardItem {
    /// Bytes the entry takes in a shard.
    pub size: u64,
    /// Entries with the same id share one storage (tied weights); `None`: its own.
    pub storage: Option<u64>,
}

/// Greedy split in order. A single item larger than `max` gets a shard of its own, appended at
/// once (before the shard being filled), exactly like huggingface_hub.
pub fn plan_shards(items: &[ShardItem], max: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_size = 0u64;
    let mut storage_home: std::collections::HashMap<u64, usize> = Default::default();
    // Index into `shards` for finished shards; usize::MAX marks the shard being filled.
    const FILLING: usize = usize::MAX;
    let mut pending_joins: Vec<usize> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(sid) = item.storage {
            if let Some(&home) = storage_home.get(&sid) {
                if home == FILLING {
                    pending_joins.push(i);
                    current.push(i);
                } else {
                    shards[home].push(i);
                }
                continue;
            }
        }
        if item.size > max {
            shards.push(vec![i]);
            if let Some(sid) = item.storage {
                storage_home.insert(sid, shards.len() - 1);
            }
            continue;
        }
        if current_size + item.size > max && !current.is_empty() {
            let idx = shards.len();
            for &j in &current {
                if let Some(sid) = items[j].storage {
                    storage_home.insert(sid, idx);
                }
            }
            shards.push(std::mem::take(&mut current));
            current_size = 0;
            pending_joins.clear();
        }
        current.push(i);
        current_size += item.size;
        if let Some(sid) = item.storage {
            storage_home.insert(sid, FILLING);
        }
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// `model-00001-of-00003.safetensors` style name; the bare name when there is one shard.
pub fn shard_file_name(stem: &str, ext: &str, index: usize, count: usize) -> String {
    if count <= 1 {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{:05}-of-{:05}.{ext}", index + 1, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(sizes: &[u64]) -> Vec<ShardItem> {
        sizes
            .iter()
            .map(|&size| ShardItem {
                size,
                storage: None,
            })
            .collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("24KB").unwrap(), 24_000);
        assert_eq!(parse_size("2.5gb").unwrap(), 2_500_000_000);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("5GiB").is_err());
    }

    #[test]
    fn oversize_goes_first() {
        // 10 fits, 30 is oversize (own shard, appended immediately), 10 continues the open shard.
        let plan = plan_shards(&items(&[10, 30, 10, 5]), 20);
        assert_eq!(plan, vec![vec![1], vec![0, 2], vec![3]]);
    }
}
