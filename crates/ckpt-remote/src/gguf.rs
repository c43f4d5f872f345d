//! GGUF headers over range requests: keep reading until the parser has every tensor info.

use crate::error::{RemoteError, Result};
use crate::http::{Context, RangeRead};
use crate::hub::Hub;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::inspect::{RemoteFile, RemoteTensor};

/// GGUF headers larger than this are refused (vocabularies of a few MB are common).
const MAX_GGUF_HEADER: u64 = 512 << 20;

const READ_SLACK: u64 = 64 * 1024;

/// What an incremental parser says about the bytes it has seen so far.
pub(crate) enum Step<T> {
    Done(T),
    /// The header is longer: at least this many bytes from the start of the file are needed.
    NeedMore(u64),
}

/// Grows the prefix read so far (the speculative first read) until `parse` is done. Each extra
/// read asks for at least double what we have, so a header costs O(log size) requests.
pub(crate) fn read_incrementally<T>(
    hub: &Hub,
    first: RangeRead,
    ctx: Option<&Context>,
    max_bytes: u64,
    parse: impl Fn(&[u8]) -> Result<Step<T>>,
) -> Result<(T, Option<u64>)> {
    let url = first.final_url.clone();
    let file_len = first.file_len;
    let mut bytes = first.bytes;
    loop {
        let at_least = match parse(&bytes)? {
            Step::Done(v) => return Ok((v, file_len)),
            Step::NeedMore(n) => n,
        };
        let have = bytes.len() as u64;
        if at_least <= have {
            return Err(RemoteError::InvalidResponse {
                url,
                msg: format!("header parser asked for {at_least} bytes but already had {have}"),
            });
        }
        if file_len.is_some_and(|len| at_least > len) || at_least > max_bytes {
            return Err(RemoteError::InvalidResponse {
                url,
                msg: format!(
                    "the header needs at least {at_least} bytes but the file has {} (truncated or corrupt; limit {max_bytes})",
                    file_len.map(|l| l.to_string()).unwrap_or_else(|| "an unknown number of".into())
                ),
            });
        }
        // Slack past `at_least`: what follows a long string (more KVs, the tensor infos) is
        // usually short, and a second round trip costs more than a few extra KB.
        let mut want = at_least
            .saturating_add(READ_SLACK)
            .max(have.saturating_mul(2))
            .min(max_bytes);
        if let Some(len) = file_len {
            want = want.min(len);
        }
        let next = hub.client.read_range(&url, have, want - have, ctx)?;
        if next.bytes.is_empty() {
            return Err(RemoteError::Truncated {
                url,
                expected: at_least,
                got: have,
            });
        }
        bytes.extend_from_slice(&next.bytes);
    }
}

/// Reads a GGUF header (tensor infos and KVs) with as few range reads as the parser needs.
pub(crate) fn read_gguf_header(
    hub: &Hub,
    display: String,
    url: &str,
    first: RangeRead,
    ctx: Option<&Context>,
) -> Result<RemoteFile> {
    let origin = PathBuf::from(&display);
    let options = ckpt_gguf::ParseOptions {
        allow_nested_arrays: true,
    };
    let (header, file_len) = read_incrementally(hub, first, ctx, MAX_GGUF_HEADER, |bytes| {
        // Without the file size the parser reports NeedMore instead of failing at the end of
        // what we have; the size check comes after.
        match ckpt_gguf::parse_header_with(bytes, &origin, None, &options)? {
            ckpt_gguf::HeaderParse::Complete(h) => Ok(Step::Done(h)),
            ckpt_gguf::HeaderParse::NeedMore { at_least } => Ok(Step::NeedMore(at_least as u64)),
        }
    })?;
    if let Some(len) = file_len {
        let end = header.data_offset.saturating_add(header.data_len());
        if end > len {
            return Err(RemoteError::Format(ckpt_core::Error::invalid(
                &origin,
                format!("file is truncated: the tensor data ends at byte {end} but the file has {len} bytes"),
            )));
        }
    }
    let mut metadata = BTreeMap::new();
    let mut values = BTreeMap::new();
    // The same split as a local GGUF checkpoint: scalars as text, arrays as JSON values.
    for (k, v) in &header.kvs {
        match v {
            ckpt_gguf::GgufValue::String(s) => {
                metadata.insert(k.clone(), s.clone());
            }
            ckpt_gguf::GgufValue::Array(_) => {
                values.insert(k.clone(), ckpt_gguf::to_json(v));
            }
            scalar => {
                metadata.insert(k.clone(), ckpt_gguf::describe_value(scalar, usize::MAX));
            }
        }
    }
    let tensors = header
        .tensor_infos
        .iter()
        .map(|t| RemoteTensor {
            name: t.name.clone(),
            dtype: t.dtype().to_string(),
            shape: t.shape(),
            bytes: t.nbytes(),
        })
        .collect();
    Ok(RemoteFile {
        path: display,
        url: url.to_string(),
        size: file_len,
        format: "gguf".into(),
        tensors,
        metadata,
        values,
        note: None,
    })
}

/// For the first shard of a llama.cpp split (`<prefix>-00001-of-0000N.gguf`), the names of the
/// others.
pub(crate) fn other_split_shards(first: &RemoteFile) -> Option<Vec<String>> {
    let count: usize = first
        .metadata
        .get(ckpt_gguf::SPLIT_COUNT_KEY)?
        .parse()
        .ok()?;
    if count < 2 {
        return None;
    }
    let file_name = first.path.rsplit('/').next().unwrap_or(&first.path);
    let prefix = file_name.strip_suffix(&format!("-00001-of-{count:05}.gguf"))?;
    Some(
        (1..count)
            .map(|no| ckpt_gguf::split_path(prefix, no, count))
            .collect(),
    )
}
