//! The legacy (pre-1.6, `_use_new_zipfile_serialization=False`) format: a magic-number pickle,
//! a protocol-version pickle, a sys_info pickle, the main pickle, the pickled list of storage
//! keys, then for each key an int64 element count followed by the storage's raw bytes.

use std::path::Path;
use std::sync::Arc;

use ckpt_core::{Buffer, Error, Result, Storage};

use crate::pickle::{Machine, Mode, Object, PersistentIds, Value};
use crate::Unpickled;

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
const PROTOCOL_VERSION: i128 = 1001;

/// Whether `bytes` begins with the legacy format's magic-number pickle.
pub(crate) fn is_legacy(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    if head.first() != Some(&0x80) {
        return false;
    }
    let mut m = Machine::new(
        Path::new(""),
        "magic number",
        Mode::Load,
        PersistentIds::Forbidden,
    );
    matches!(m.run(head, 0), Ok((Value::Int(MAGIC_NUMBER), _)))
}

fn dict_get<'v>(m: &'v Machine, v: &Value, key: &str) -> Option<&'v Value> {
    let Value::Object(id) = v else { return None };
    let Object::Dict(d) = &m.objects[*id] else {
        return None;
    };
    d.entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
        .map(|(_, v)| v)
}

/// The pickles that precede the storage data, in file order (labels for errors and scanning).
pub(crate) const PICKLE_LABELS: [&str; 5] = [
    "magic-number pickle",
    "protocol-version pickle",
    "sys_info pickle",
    "main pickle",
    "storage-key pickle",
];

pub(crate) fn load<'p>(path: &'p Path, buffer: &Arc<Buffer>) -> Result<Unpickled<'p>> {
    let bytes = buffer.bytes();
    let mut m = Machine::new(path, PICKLE_LABELS[0], Mode::Load, PersistentIds::Forbidden);
    let (magic, pos) = m.run(bytes, 0)?;
    if !matches!(magic, Value::Int(MAGIC_NUMBER)) {
        return Err(Error::invalid(
            path,
            "not a torch checkpoint: the legacy magic number is missing",
        ));
    }
    m.label = PICKLE_LABELS[1].into();
    let (protocol, pos) = m.run(bytes, pos)?;
    if !matches!(protocol, Value::Int(PROTOCOL_VERSION)) {
        return Err(Error::invalid(
            path,
            format!("legacy protocol version {protocol:?} is not {PROTOCOL_VERSION}"),
        ));
    }
    m.label = PICKLE_LABELS[2].into();
    let (sys_info, pos) = m.run(bytes, pos)?;
    let little_endian = match dict_get(&m, &sys_info, "little_endian") {
        Some(Value::Bool(b)) => *b,
        _ => {
            return Err(Error::invalid(
                path,
                "the legacy sys_info pickle has no little_endian flag",
            ))
        }
    };

    m.label = PICKLE_LABELS[3].into();
    m.persistent_ids = PersistentIds::Legacy;
    let (root, pos) = m.run(bytes, pos)?;
    m.label = PICKLE_LABELS[4].into();
    m.persistent_ids = PersistentIds::Forbidden;
    let (key_list, mut pos) = m.run(bytes, pos)?;
    let keys: Vec<String> = match m.sequence(&key_list) {
        Some(items) => items
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(Error::invalid(
                    path,
                    format!("the storage key list holds a {}", other.kind(&m)),
                )),
            })
            .collect::<Result<_>>()?,
        None => return Err(Error::invalid(path, "the storage key pickle is not a list")),
    };

    let mut storages: Vec<Option<Arc<Storage>>> = vec![None; m.storages.len()];
    for key in &keys {
        let Some(&index) = m.storage_index.get(key) else {
            return Err(Error::invalid(
                path,
                format!("storage '{key}' is listed but no tensor uses it (its size is unknown)"),
            ));
        };
        let s = &m.storages[index];
        if storages[index].is_some() {
            return Err(Error::invalid(
                path,
                format!("storage '{key}' is listed twice"),
            ));
        }
        let Some(nbytes) = s.nbytes() else {
            return Err(Error::Unsupported(format!(
                "{}: storage '{key}' is a {} without an element type",
                path.display(),
                s.class.name()
            )));
        };
        let count_bytes: [u8; 8] = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    format!(
                        "storage '{key}': the file ends at byte {} before its size (truncated?)",
                        bytes.len()
                    ),
                )
            })?
            .try_into()
            .unwrap();
        let count = if little_endian {
            u64::from_le_bytes(count_bytes)
        } else {
            u64::from_be_bytes(count_bytes)
        };
        if count != s.numel {
            return Err(Error::invalid(
                path,
                format!("storage '{key}' at byte {pos} holds {count} elements but the pickle declares {} ({})", s.numel, s.class.name()),
            ));
        }
        let start = pos + 8;
        if ((bytes.len() - start) as u64) < nbytes {
            return Err(Error::invalid(
                path,
                format!(
                    "storage '{key}' needs {nbytes} bytes at byte {start} but the file ends at byte {} (truncated?)",
                    bytes.len()
                ),
            ));
        }
        let storage = Storage::new(
            buffer.clone(),
            start,
            nbytes as usize,
            format!("storage '{key}'"),
        )?;
        storages[index] = Some(storage.with_big_endian(!little_endian));
        pos = start + nbytes as usize;
    }
    let storages = storages
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("storage '{}' has no data in the file", m.storages[i].key),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Unpickled {
        machine: m,
        root,
        storages,
    })
}
