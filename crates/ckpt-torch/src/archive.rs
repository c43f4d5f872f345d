//! The zip checkpoint format (torch >= 1.6): `<folder>/data.pkl`, `<folder>/data/<key>` records
//! holding whole storages, `<folder>/version` and an optional `<folder>/byteorder`.

use std::path::Path;
use std::sync::Arc;

use ckpt_core::{Buffer, Error, Result, Storage};

use crate::pickle::{Machine, Mode, PersistentIds};
use crate::zip::{ZipArchive, ZipEntry};
use crate::Unpickled;

/// The zip archive of a torch checkpoint and its top-level folder.
pub(crate) struct TorchArchive<'a> {
    pub zip: ZipArchive<'a>,
    pub folder: String,
    path: &'a Path,
}

impl<'a> TorchArchive<'a> {
    pub fn open(path: &'a Path, bytes: &'a [u8]) -> Result<TorchArchive<'a>> {
        let zip = ZipArchive::parse(path, bytes)?;
        let first = zip
            .entries()
            .first()
            .ok_or_else(|| Error::invalid(path, "the zip archive is empty"))?;
        // torch takes the folder from the first record, whatever it is called (`archive`, the
        // saved file's stem, ...).
        let Some((folder, _)) = first.name.split_once('/') else {
            return Err(Error::invalid(
                path,
                format!(
                    "zip record '{}' is not in a folder, so this is not a torch checkpoint",
                    first.name
                ),
            ));
        };
        let folder = folder.to_string();
        Ok(TorchArchive { path, folder, zip })
    }

    /// Whether this is a TorchScript archive (`torch.jit.save`): code and constants besides data.
    pub fn is_torchscript(&self) -> bool {
        let code = format!("{}/code/", self.folder);
        self.record("constants.pkl").is_some()
            || self.zip.entries().iter().any(|e| e.name.starts_with(&code))
    }

    pub fn record(&self, name: &str) -> Option<&ZipEntry> {
        self.zip.find(&format!("{}/{name}", self.folder))
    }

    fn required(&self, name: &str) -> Result<&ZipEntry> {
        self.record(name).ok_or_else(|| {
            Error::invalid(
                self.path,
                format!(
                    "the archive has no '{}/{name}' record, so it is not a torch checkpoint",
                    self.folder
                ),
            )
        })
    }

    fn text(&self, entry: &ZipEntry) -> Result<String> {
        let bytes = self.zip.data(entry)?;
        if bytes.len() > 64 {
            return Err(Error::invalid(
                self.path,
                format!("record '{}' is {} bytes long", entry.name, bytes.len()),
            ));
        }
        Ok(String::from_utf8_lossy(bytes).trim().to_string())
    }

    /// The pickle bytes and their label (`<folder>/data.pkl`).
    pub fn pickle(&self) -> Result<(&'a [u8], String)> {
        self.pickle_record("data.pkl")
    }

    pub fn pickle_record(&self, name: &str) -> Result<(&'a [u8], String)> {
        let entry = self.required(name)?;
        Ok((self.zip.data(entry)?, entry.name.clone()))
    }
}

pub(crate) fn load<'p>(path: &'p Path, buffer: &Arc<Buffer>) -> Result<Unpickled<'p>> {
    let archive = TorchArchive::open(path, buffer.bytes())?;
    if archive.is_torchscript() {
        return Err(Error::Unsupported(format!(
            "{}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; TorchScript is not supported",
            path.display()
        )));
    }
    let version = archive.text(archive.required("version")?)?;
    match version.parse::<u64>() {
        Ok(v) if v >= 1 => {}
        _ => {
            return Err(Error::invalid(
                path,
                format!(
                    "record '{}/version' holds '{version}', not a format version",
                    archive.folder
                ),
            ))
        }
    }
    let big_endian = match archive.record("byteorder") {
        None => false,
        Some(entry) => match archive.text(entry)?.as_str() {
            "little" => false,
            "big" => true,
            other => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "record '{}' holds '{other}', not 'little' or 'big'",
                        entry.name
                    ),
                ))
            }
        },
    };

    let (pickle, label) = archive.pickle()?;
    let mut machine = Machine::new(path, label, Mode::Load, PersistentIds::Zip);
    let (root, _) = machine.run(pickle, 0)?;

    let mut storages = Vec::with_capacity(machine.storages.len());
    for s in &machine.storages {
        let name = format!("data/{}", s.key);
        let entry = archive.record(&name).ok_or_else(|| {
            Error::invalid(
                path,
                format!(
                    "storage '{}' has no record '{}/{name}'",
                    s.key, archive.folder
                ),
            )
        })?;
        let Some(expected) = s.nbytes() else {
            return Err(Error::Unsupported(format!(
                "{}: storage '{}' is a {} without an element type",
                path.display(),
                s.key,
                s.class.name()
            )));
        };
        let range = archive.zip.data_range(entry)?;
        if entry.size != expected {
            return Err(Error::invalid(
                path,
                format!(
                    "record '{}' holds {} bytes but the pickle declares a storage of {expected} bytes ({} x {})",
                    entry.name,
                    entry.size,
                    s.numel,
                    s.class.name()
                ),
            ));
        }
        let storage = Storage::new(buffer.clone(), range.start, range.len(), entry.name.clone())?;
        storages.push(storage.with_big_endian(big_endian));
    }
    Ok(Unpickled {
        machine,
        root,
        storages,
    })
}
