//! The static scanner behind `ckpt scan`: what a file would import and call if
//! `torch.load(weights_only=False)` (or `pickle.load`) ran it, found without running anything.
//!
//! Files are recognised by content, whatever their name, the way `torch.load` decides: a zip
//! archive (`PK\x03\x04`), else a legacy tar archive (torch < 0.4), else a pickle stream (the
//! legacy format is five pickles, the first holding torch's magic number; anything else is a
//! plain pickle of any protocol, which `torch.load` unpickles before it even checks the magic
//! number). `torch.load` does not decompress: a gzip or other compressed file is no checkpoint
//! (its tar reader opens uncompressed archives only).
//!
//! The pickle walker is not the load-mode pickle machine (it builds no values and rejects no
//! opcode it knows), but it reads the stream through the same decoder (`opcodes`), so
//! both agree on every opcode's boundaries. It follows the stack only as far as needed to name
//! what is imported (`GLOBAL`, `INST`, `STACK_GLOBAL` with names from strings or the memo,
//! extension codes) and what is called (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `INST`, `OBJ`), and
//! reads on past anything the real unpickler would refuse at run time (a missing memo entry, an
//! empty stack, an unknown protocol). It stops only where the bytes themselves cannot be parsed any further (an unknown
//! opcode, an argument cut off by the end of the data, no STOP); the file is then reported as
//! not scanned to the end, never as clean. Memory and time are linear in the input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ckpt_core::{Buffer, Error};

use crate::opcodes::{Arg, Decoder, Op};
use crate::pickle::ScanReport;
use crate::zip::{self, ZipArchive};

/// `torch.serialization.MAGIC_NUMBER`, the value of a legacy checkpoint's first pickle.
const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
/// Pickles of a legacy (non-tar) checkpoint that torch unpickles before the raw storage data.
const LEGACY_PICKLES: [&str; 5] = [
    "magic-number pickle",
    "protocol-version pickle",
    "sys_info pickle",
    "main pickle",
    "storage-key pickle",
];

/// What a file is, judged by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A zip archive (torch >= 1.6 checkpoints, TorchScript).
    Zip,
    /// The legacy format: five pickles then raw storages.
    Legacy,
    /// The legacy tar format of torch < 0.4.
    Tar,
    /// A pickle stream that is not a torch checkpoint.
    Pickle,
}

impl Content {
    /// A short description for reports, e.g. `"torch legacy checkpoint"`.
    pub fn name(self) -> &'static str {
        match self {
            Content::Zip => "zip archive",
            Content::Legacy => "torch legacy checkpoint",
            Content::Tar => "torch legacy tar archive",
            Content::Pickle => "pickle",
        }
    }
}

/// The scan of one file.
#[derive(Debug)]
pub struct FileScan {
    /// The file scanned.
    pub path: PathBuf,
    /// What the file was recognised as; `None` when it could not be read or is neither an
    /// archive nor a pickle (then `error` says why).
    pub content: Option<Content>,
    /// Every import and call found, in file order (also when the scan stopped early).
    pub report: ScanReport,
    /// The pickles walked (zip record names or legacy pickle labels).
    pub pickles: Vec<String>,
    /// Why the file was not scanned to the end ([`Error::Unsafe`] when it was refused, e.g. an
    /// ambiguous zip archive or a compressed pickle record).
    pub error: Option<Error>,
}

impl FileScan {
    fn new(path: &Path) -> FileScan {
        FileScan {
            path: path.to_path_buf(),
            content: None,
            report: ScanReport::default(),
            pickles: Vec::new(),
            error: None,
        }
    }

    fn add(&mut self, label: &str, w: &PickleWalk) {
        self.pickles.push(label.to_string());
        self.report
            .globals
            .extend(w.imports.iter().map(|n| n.name.clone()));
        self.report
            .calls
            .extend(w.calls.iter().map(|n| n.name.clone()));
    }

    /// Records the first reason the scan is incomplete.
    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

/// A global or call target and where the walker found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// `module.name`, or `<...>` when it cannot be named statically.
    pub name: String,
    /// The opcode that imported or called it, by its pickle name (`GLOBAL`, `REDUCE`, ...).
    pub opcode: &'static str,
    /// Byte offset of the opcode in the walked data.
    pub at: usize,
}

/// What one pickle stream names.
#[derive(Debug, Default, Clone)]
pub struct PickleWalk {
    /// Every global imported (`GLOBAL`, `STACK_GLOBAL`, `INST`, extension codes), in order.
    pub imports: Vec<Named>,
    /// Every call (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `INST`, `OBJ`), named by its callable.
    pub calls: Vec<Named>,
    /// The offset just after STOP; `None` when the walk stopped early.
    pub end: Option<usize>,
    /// Why the walk stopped early (with the byte offset).
    pub error: Option<String>,
    /// The pickle's value when it is an integer (the legacy magic number).
    pub(crate) int_value: Option<i128>,
    /// The pickle's value, as far as it is known statically.
    pub(crate) value: Option<Sym>,
}

#[derive(Debug, Clone)]
pub(crate) enum Sym {
    Str(Rc<str>),
    Int(i128),
    Global(Rc<str>),
    /// A tuple of values that are not tuples themselves (never nested, so dropping one never
    /// recurses); what the legacy tar format's argument pickles hold.
    Tuple(Rc<[Sym]>),
    Other,
}

/// A tuple of `items`, when none of them is a tuple.
fn flat_tuple(items: Vec<Sym>) -> Sym {
    if items.iter().any(|i| matches!(i, Sym::Tuple(_))) {
        Sym::Other
    } else {
        Sym::Tuple(items.into())
    }
}

fn target(s: &Sym) -> String {
    match s {
        Sym::Global(n) => n.to_string(),
        Sym::Str(_) => "<str>".into(),
        Sym::Int(_) => "<int>".into(),
        Sym::Tuple(_) => "<tuple>".into(),
        Sym::Other => "<object>".into(),
    }
}

fn lossy(b: &[u8]) -> Rc<str> {
    String::from_utf8_lossy(b).into()
}

/// A little-endian two's-complement integer (`None` above 16 bytes).
fn le_signed(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let neg = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if neg { [0xffu8; 16] } else { [0u8; 16] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i128::from_le_bytes(buf))
}

/// The argument of a protocol-0 STRING: a quoted Python 2 `repr` with backslash escapes.
fn decode_string_line(line: &[u8]) -> Rc<str> {
    let inner = match line {
        [q, inner @ .., e] if q == e && (*q == b'\'' || *q == b'"') => inner,
        _ => line,
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        i += 1;
        if c != b'\\' || i >= inner.len() {
            out.push(c);
            continue;
        }
        let e = inner[i];
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            b'x' => {
                let hex = inner
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                let mut k = 0;
                while k < 2 && i < inner.len() && (b'0'..=b'7').contains(&inner[i]) {
                    v = v * 8 + (inner[i] - b'0') as u32;
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            other => {
                if !matches!(other, b'\\' | b'\'' | b'"') {
                    out.push(b'\\');
                }
                out.push(other);
            }
        }
    }
    lossy(&out)
}

/// The argument of a protocol-0 UNICODE: raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`, other
/// bytes are latin-1).
fn decode_unicode_line(line: &[u8]) -> Rc<str> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'\\' && matches!(line.get(i + 1), Some(b'u' | b'U')) {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let ch = line
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32);
            if let Some(ch) = ch {
                out.push(ch);
                i += 2 + n;
                continue;
            }
        }
        out.push(c as char);
        i += 1;
    }
    out.into()
}

fn parse_int_line(line: &[u8]) -> Sym {
    let text = String::from_utf8_lossy(line);
    let t = text.trim().trim_end_matches('L');
    t.parse::<i128>().map(Sym::Int).unwrap_or(Sym::Other)
}

/// Walks one pickle from `start` to its STOP, recording every import and call.
pub fn walk(data: &[u8], start: usize) -> PickleWalk {
    let mut w = PickleWalk::default();
    let mut stack: Vec<Sym> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u64, Sym> = HashMap::new();
    let mut r = Decoder::new(data, start);
    fn pop(stack: &mut Vec<Sym>) -> Sym {
        stack.pop().unwrap_or(Sym::Other)
    }
    fn pop_mark(stack: &mut Vec<Sym>, marks: &mut Vec<usize>) -> Vec<Sym> {
        let m = marks.pop().unwrap_or(0).min(stack.len());
        stack.split_off(m)
    }
    loop {
        let Op {
            at,
            code: op,
            name,
            arg,
        } = match r.next_op() {
            Ok(op) => op,
            Err(e) => {
                w.error = Some(format!("pickle byte {}: {e}", e.at()));
                return w;
            }
        };
        let uint = match arg {
            Arg::UInt(v) => v,
            _ => 0,
        };
        let bytes: &[u8] = match arg {
            Arg::Bytes(b) | Arg::Line(b) => b,
            _ => &[],
        };
        let import = |w: &mut PickleWalk, n: Rc<str>| {
            w.imports.push(Named {
                name: n.to_string(),
                opcode: name,
                at,
            });
        };
        let call = |w: &mut PickleWalk, s: &Sym| {
            w.calls.push(Named {
                name: target(s),
                opcode: name,
                at,
            })
        };
        let push = match op {
            b'.' => {
                let v = pop(&mut stack);
                w.int_value = match v {
                    Sym::Int(i) => Some(i),
                    _ => None,
                };
                w.value = Some(v);
                w.end = Some(r.pos());
                return w;
            }
            0x80 | 0x95 | 0x98 => None,
            b'(' => {
                marks.push(stack.len());
                None
            }
            b'0' => {
                pop(&mut stack);
                None
            }
            b'1' => {
                pop_mark(&mut stack, &mut marks);
                None
            }
            b'2' => Some(stack.last().cloned().unwrap_or(Sym::Other)),
            b')' => Some(flat_tuple(Vec::new())),
            b'N' | 0x88 | 0x89 | b']' | b'}' | 0x8f | 0x97 => Some(Sym::Other),
            b'K' | b'M' => Some(Sym::Int(uint as i128)),
            b'J' => match arg {
                Arg::Int(v) => Some(Sym::Int(v as i128)),
                _ => Some(Sym::Other),
            },
            0x8a | 0x8b => Some(le_signed(bytes).map(Sym::Int).unwrap_or(Sym::Other)),
            b'G' | b'F' | b'P' | b'C' | b'B' | 0x8e | 0x96 => Some(Sym::Other),
            b'I' | b'L' => Some(parse_int_line(bytes)),
            b'S' => Some(Sym::Str(decode_string_line(bytes))),
            b'V' => Some(Sym::Str(decode_unicode_line(bytes))),
            b'T' | b'U' | 0x8c | b'X' | 0x8d => Some(Sym::Str(lossy(bytes))),
            0x85..=0x87 => {
                let mut items: Vec<Sym> = (0..(op - 0x84)).map(|_| pop(&mut stack)).collect();
                items.reverse();
                Some(flat_tuple(items))
            }
            b't' => Some(flat_tuple(pop_mark(&mut stack, &mut marks))),
            b'l' | b'd' | 0x91 => {
                pop_mark(&mut stack, &mut marks);
                Some(Sym::Other)
            }
            b'a' => {
                pop(&mut stack);
                None
            }
            b'e' | 0x90 | b'u' => {
                pop_mark(&mut stack, &mut marks);
                None
            }
            b's' => {
                pop(&mut stack);
                pop(&mut stack);
                None
            }
            b'c' | b'i' => {
                let Arg::Lines(module, attr) = arg else {
                    unreachable!("GLOBAL and INST carry two lines")
                };
                let full: Rc<str> = format!(
                    "{}.{}",
                    String::from_utf8_lossy(module),
                    String::from_utf8_lossy(attr)
                )
                .into();
                import(&mut w, full.clone());
                if op == b'i' {
                    pop_mark(&mut stack, &mut marks);
                    call(&mut w, &Sym::Global(full));
                    Some(Sym::Other)
                } else {
                    Some(Sym::Global(full))
                }
            }
            0x93 => {
                let attr = pop(&mut stack);
                let module = pop(&mut stack);
                let full: Rc<str> = match (module, attr) {
                    (Sym::Str(m), Sym::Str(a)) => format!("{m}.{a}").into(),
                    _ => "<STACK_GLOBAL of names not known statically>".into(),
                };
                import(&mut w, full.clone());
                Some(Sym::Global(full))
            }
            0x82..=0x84 => {
                let full: Rc<str> = format!("<copyreg extension code {uint}>").into();
                import(&mut w, full.clone());
                Some(Sym::Global(full))
            }
            b'o' => {
                let items = pop_mark(&mut stack, &mut marks);
                call(&mut w, items.first().unwrap_or(&Sym::Other));
                Some(Sym::Other)
            }
            b'R' | 0x81 | 0x92 => {
                if op == 0x92 {
                    pop(&mut stack);
                }
                pop(&mut stack);
                let f = pop(&mut stack);
                call(&mut w, &f);
                Some(Sym::Other)
            }
            b'b' => {
                pop(&mut stack);
                None
            }
            b'Q' => {
                pop(&mut stack);
                Some(Sym::Other)
            }
            b'g' | b'h' | b'j' => {
                let index = match op {
                    b'g' => parse_memo_index(bytes),
                    _ => Some(uint),
                };
                Some(
                    index
                        .and_then(|i| memo.get(&i).cloned())
                        .unwrap_or(Sym::Other),
                )
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let index = match op {
                    b'p' => parse_memo_index(bytes),
                    0x94 => Some(memo.len() as u64),
                    _ => Some(uint),
                };
                if let Some(i) = index {
                    memo.insert(i, stack.last().cloned().unwrap_or(Sym::Other));
                }
                None
            }
            _ => unreachable!("every named opcode is handled"),
        };
        if let Some(v) = push {
            stack.push(v);
        }
    }
}

fn parse_memo_index(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// Whether `bytes` start like a safetensors file (a little-endian header length that fits the
/// file, then a JSON object).
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9
        && bytes[8] == b'{'
        && u64::from_le_bytes(bytes[..8].try_into().unwrap()) <= (bytes.len() - 8) as u64
}

/// Whether `bytes` start with a tar header (its checksum matches, as `tarfile` checks).
pub(crate) fn is_tar(bytes: &[u8]) -> bool {
    let Some(h) = bytes.get(..512) else {
        return false;
    };
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let unsigned: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as i8 as i64
            }
        })
        .sum();
    want == unsigned || want as i64 == signed
}

/// Scans a file. `explicit` is false while walking a folder: a file that is neither an archive
/// nor a pickle is then skipped (`None`) instead of being reported as not scannable.
pub fn scan_file(path: &Path, explicit: bool) -> Option<FileScan> {
    let buffer = match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => None,
        Ok(_) => match Buffer::map(path) {
            Ok(b) => Some(b),
            Err(e) => {
                let mut s = FileScan::new(path);
                s.fail(e);
                return Some(s);
            }
        },
        Err(e) => {
            let mut s = FileScan::new(path);
            s.fail(Error::io(path, e));
            return Some(s);
        }
    };
    match buffer {
        Some(b) => scan_bytes(path, b.bytes(), explicit),
        None => scan_bytes(path, &[], explicit),
    }
}

/// [`scan_file`] for bytes in memory (`path` names them).
pub fn scan_bytes(path: &Path, bytes: &[u8], explicit: bool) -> Option<FileScan> {
    let mut s = FileScan::new(path);
    if zip::is_zip(bytes) {
        s.content = Some(Content::Zip);
        scan_zip(&mut s, bytes, explicit)?;
    } else if is_tar(bytes) {
        s.content = Some(Content::Tar);
        scan_tar(&mut s, bytes, explicit)?;
    } else {
        scan_pickles(&mut s, bytes, explicit)?;
    }
    Some(s)
}

fn scan_zip(s: &mut FileScan, bytes: &[u8], explicit: bool) -> Option<()> {
    let path = s.path.clone();
    let z = match ZipArchive::parse(&path, bytes) {
        Ok(z) => z,
        Err(e) => {
            s.fail(e);
            return Some(());
        }
    };
    // torch reads `<folder>/data.pkl` (TorchScript also `constants.pkl`), the folder being that
    // of the first record; every other `.pkl` record is scanned too, as other loaders may run it.
    let folder = z
        .entries()
        .first()
        .and_then(|e| e.name.split_once('/'))
        .map(|(f, _)| f.to_string());
    let main = folder.as_ref().map(|f| format!("{f}/data.pkl"));
    let mut records: Vec<&zip::ZipEntry> = z
        .entries()
        .iter()
        .filter(|e| e.name.ends_with(".pkl"))
        .collect();
    records.sort_by_key(|e| Some(&e.name) != main.as_ref());
    if records.is_empty() {
        if !explicit {
            return None;
        }
        s.fail(Error::invalid(
            &path,
            format!(
                "the zip archive holds no pickle record (no '{}'), so it is not a torch checkpoint",
                main.as_deref().unwrap_or("<folder>/data.pkl")
            ),
        ));
    }
    for e in records {
        match z.data(e) {
            Ok(d) => {
                let w = walk(d, 0);
                s.add(&e.name, &w);
                if let Some(msg) = &w.error {
                    s.fail(Error::invalid(&path, format!("{}: {msg}", e.name)));
                }
            }
            Err(err) => s.fail(err),
        }
    }
    Some(())
}

fn scan_pickles(s: &mut FileScan, bytes: &[u8], explicit: bool) -> Option<()> {
    let path = s.path.clone();
    let first = walk(bytes, 0);
    let pickle_like = first.end.is_some()
        || !first.imports.is_empty()
        || !first.calls.is_empty()
        || (bytes.len() >= 2
            && bytes[0] == 0x80
            && bytes[1] <= 5
            && !looks_like_safetensors(bytes));
    if !pickle_like {
        if !explicit {
            return None;
        }
        s.fail(Error::invalid(
            &path,
            if bytes.is_empty() {
                "the file is empty, so it is neither a PyTorch checkpoint nor a pickle".to_string()
            } else {
                format!(
                    "not a PyTorch checkpoint or a pickle (neither a zip archive, a tar archive nor a pickle stream: {})",
                    first.error.as_deref().unwrap_or("")
                )
            },
        ));
        return Some(());
    }
    if first.end.is_some() && first.int_value == Some(MAGIC_NUMBER) {
        s.content = Some(Content::Legacy);
        let mut w = first;
        for (i, label) in LEGACY_PICKLES.iter().enumerate() {
            if i > 0 {
                w = walk(bytes, w.end.unwrap());
            }
            s.add(label, &w);
            if let Some(msg) = &w.error {
                s.fail(Error::invalid(&path, format!("{label}: {msg}")));
                break;
            }
        }
        return Some(());
    }
    s.content = Some(Content::Pickle);
    s.add("pickle", &first);
    if let Some(msg) = &first.error {
        s.fail(Error::invalid(&path, format!("pickle: {msg}")));
        return Some(());
    }
    // Pickles after the first: torch.load stops after one, but pickle.load in a loop would go
    // on; what they name is listed too (their being unparsable is not an error).
    let mut end = first.end;
    let mut n = 1;
    while let Some(at) = end.filter(|&e| e < bytes.len()) {
        n += 1;
        let w = walk(bytes, at);
        s.add(&format!("pickle {n} (byte {at})"), &w);
        end = w.end;
    }
    Some(())
}

/// One member of a tar archive, as Python's `tarfile` reads it.
struct TarMember<'a> {
    /// The name after GNU long-name and PAX `path` records, with a ustar prefix.
    name: String,
    typ: u8,
    /// The link target of a hard or symbolic link.
    link: String,
    data: &'a [u8],
    /// Byte offset of `data` in the file.
    at: usize,
}

/// An octal (or base-256) number field, as `tarfile.nti` reads it.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first() == Some(&0x80) {
        return field[1..]
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(b as u64));
    }
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn tar_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `key=value` records of a PAX extended header.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|&l| l > sp + 1 && l <= rest.len())
        else {
            break;
        };
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        pos += len;
    }
    out
}

/// The members of a tar archive, read as `tarfile` reads them: a header whose checksum fails
/// (or a zero block) ends the archive; GNU long names and PAX `path`/`linkpath`/`size`
/// records apply to the next member (global PAX records to every later one). Err when a
/// member runs past the end of the file (`tarfile` raises `ReadError` when it is extracted).
fn tar_members<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<TarMember<'a>>, Error> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut global: Vec<(String, String)> = Vec::new();
    let mut local: Vec<(String, String)> = Vec::new();
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    while let Some(h) = bytes.get(pos..pos + 512) {
        if h.iter().all(|&b| b == 0) || !is_tar(h) {
            break;
        }
        let mut name = tar_string(&h[..100]);
        let prefix = tar_string(&h[345..500]);
        let typ = h[156];
        let gnu = matches!(typ, b'L' | b'K' | b'S');
        if !prefix.is_empty() && !gnu {
            name = format!("{prefix}/{name}");
        }
        let mut link = tar_string(&h[157..257]);
        let Some(mut size) = tar_number(&h[124..136]) else {
            return Err(Error::invalid(
                path,
                format!("tar header at byte {pos}: the size field is not a number"),
            ));
        };
        let pax = |key: &str| {
            local
                .iter()
                .rev()
                .chain(global.iter().rev())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let applies = !matches!(typ, b'x' | b'g' | b'L' | b'K');
        if applies {
            if let Some(n) = pax("path") {
                name = n;
            }
            if let Some(l) = pax("linkpath") {
                link = l;
            }
            if let Some(n) = pax("size").and_then(|v| v.parse().ok()) {
                size = n;
            }
            if let Some(n) = long_name.take() {
                name = n;
            }
            if let Some(l) = long_link.take() {
                link = l;
            }
        }
        let start = pos + 512;
        let Some(data) = usize::try_from(size)
            .ok()
            .and_then(|n| start.checked_add(n))
            .and_then(|end| bytes.get(start..end))
        else {
            return Err(Error::invalid(
                path,
                format!(
                    "tar member '{name}' ({size} bytes at byte {start}) runs past the end of the file (truncated?)"
                ),
            ));
        };
        match typ {
            b'x' => local = pax_records(data),
            b'g' => global.extend(pax_records(data)),
            b'L' => long_name = Some(tar_string(data)),
            b'K' => long_link = Some(tar_string(data)),
            _ => {
                local.clear();
                if matches!(typ, 0 | b'0') && name.ends_with('/') {
                    // A V7 directory.
                } else {
                    out.push(TarMember {
                        name: name.trim_end_matches('/').to_string(),
                        typ,
                        link,
                        data,
                        at: start,
                    });
                }
            }
        }
        pos = start + data.len().div_ceil(512) * 512;
    }
    Ok(out)
}

/// The member torch reads for `name` (`getmember` takes the last of that name), links
/// followed inside the archive as `tarfile` follows them; Err names why it cannot be read.
fn tar_member<'m, 'a>(
    members: &'m [TarMember<'a>],
    name: &str,
) -> Option<Result<&'m TarMember<'a>, String>> {
    let (i, m) = members
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.name == name)?;
    Some(match m.typ {
        0 | b'0' | b'7' => Ok(m),
        b'1' | b'2' => {
            // A hard link names an earlier member; a symbolic link is relative to the member's
            // folder. (Extracted to disk, a symbolic link could also reach outside the archive.)
            let target = if m.typ == b'1' {
                m.link.clone()
            } else if m.link.starts_with('/') {
                return Some(Err(format!(
                    "tar member '{name}' is a symbolic link to '{}' outside the archive; torch would \
                     read that file from the disk",
                    m.link
                )));
            } else {
                let dir = m.name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for p in m.link.split('/') {
                    match p {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        p => parts.push(p),
                    }
                }
                parts.join("/")
            };
            let limit = if m.typ == b'1' { i } else { members.len() };
            members[..limit]
                .iter()
                .rev()
                .find(|t| t.name == target && matches!(t.typ, 0 | b'0' | b'7'))
                .map(Ok)
                .unwrap_or_else(|| {
                    Err(format!(
                        "tar member '{name}' is a link to '{}', which is not a file in the archive",
                        m.link
                    ))
                })
        }
        other => Err(format!(
            "tar member '{name}' is of type '{}', not a file",
            (other as char).escape_default()
        )),
    })
}

/// The element size of a legacy storage class named by a global (`torch.FloatStorage`).
fn storage_element_size(global: &str) -> Option<u64> {
    let (module, name) = global.rsplit_once('.')?;
    match crate::globals::resolve(module, name)? {
        crate::globals::Global::Storage(c) => c.unit_size(),
        _ => None,
    }
}

/// The legacy tar format (torch < 0.4), read as `torch.serialization`'s `legacy_load` reads it:
/// member `storages` holds a pickle of the storage count, then for each storage a pickle of
/// `(key, location, storage_type)` followed by an int64 element count and the raw bytes, then a
/// pickle of the storage views; member `tensors` holds a pickle of the tensor count, then for
/// each tensor a pickle of its arguments followed by its int32 dimension count, 4 bytes, 8-byte
/// sizes and strides and an 8-byte offset; member `pickle` is the main pickle. Every pickle is
/// walked (every member of those names, whichever torch would pick); raw data is skipped by the
/// sizes the pickles and counts give.
/// A tar archive without any of those members (found while walking a folder) is no checkpoint:
/// torch stops at the missing `storages` member before unpickling anything; it is skipped.
fn scan_tar(s: &mut FileScan, bytes: &[u8], explicit: bool) -> Option<()> {
    let path = s.path.clone();
    let members = match tar_members(&path, bytes) {
        Ok(m) => m,
        Err(e) => {
            s.fail(e);
            // torch.load falls back to unpickling the file from byte 0 when tarfile fails.
            let w = walk(bytes, 0);
            s.add("the whole file as a pickle (torch's fallback)", &w);
            return Some(());
        }
    };
    let roles = ["storages", "tensors", "pickle"];
    if !explicit && !members.iter().any(|m| roles.contains(&m.name.as_str())) {
        return None;
    }
    let mut found = false;
    for role in roles {
        let m = match tar_member(&members, role) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(why)) => {
                s.fail(Error::invalid(&path, why));
                continue;
            }
        };
        found |= role == "pickle";
        let label = format!("tar member '{role}'");
        let result = match role {
            "pickle" => {
                let w = walk(m.data, 0);
                s.add(&label, &w);
                w.error.map(|e| format!("{label}: {e}"))
            }
            _ => scan_tar_records(s, &label, m, role == "storages").err(),
        };
        if let Some(msg) = result {
            s.fail(Error::invalid(&path, msg));
        }
    }
    if !found && s.error.is_none() {
        s.fail(Error::invalid(
            &path,
            "the tar archive has no 'pickle' member, so it is not a torch checkpoint",
        ));
    }
    Some(())
}

/// Walks the pickles of the `storages` or `tensors` member, skipping the raw data between them.
fn scan_tar_records(
    s: &mut FileScan,
    label: &str,
    m: &TarMember,
    storages: bool,
) -> Result<(), String> {
    let d = m.data;
    let here = |pos: usize| format!("{label} (file byte {})", m.at + pos);
    let walk_one = |s: &mut FileScan, what: &str, pos: usize| {
        let w = walk(d, pos);
        s.add(&format!("{label}: {what} (file byte {})", m.at + pos), &w);
        match (&w.error, w.end) {
            (None, Some(end)) => Ok((w, end)),
            (e, _) => Err(format!(
                "{}: the {what} pickle: {}",
                here(pos),
                e.as_deref().unwrap_or("no STOP")
            )),
        }
    };
    let (w, mut pos) = walk_one(s, "count", 0)?;
    let Some(count) = w.int_value.filter(|&n| n >= 0) else {
        return Err(format!(
            "{}: the count pickle is not a non-negative integer",
            here(0)
        ));
    };
    let what = if storages { "storage" } else { "tensor" };
    let mut i: i128 = 0;
    while i < count {
        let (w, end) = walk_one(s, &format!("{what} {i} arguments"), pos)?;
        pos = end;
        let short = |pos: usize, n: usize| -> Result<(), String> {
            if d.len() - pos < n {
                return Err(format!(
                    "{}: {what} {i} of {count}: the member ends before its {n} bytes of data (truncated?)",
                    here(pos)
                ));
            }
            Ok(())
        };
        if storages {
            let class = match &w.value {
                Some(Sym::Tuple(t)) if t.len() == 3 => match &t[2] {
                    Sym::Global(g) => g.to_string(),
                    other => target(other),
                },
                _ => "<not a 3-tuple>".into(),
            };
            let Some(elem) = storage_element_size(&class) else {
                return Err(format!(
                    "{}: storage {i} is of type '{class}', whose element size is unknown, so the \
                     rest of the member cannot be parsed",
                    here(pos)
                ));
            };
            short(pos, 8)?;
            let n = u64::from_le_bytes(d[pos..pos + 8].try_into().unwrap());
            pos += 8;
            let nbytes = n
                .checked_mul(elem)
                .and_then(|b| usize::try_from(b).ok())
                .unwrap_or(usize::MAX);
            short(pos, nbytes)?;
            pos += nbytes;
        } else {
            short(pos, 8)?;
            let ndim = i32::from_le_bytes(d[pos..pos + 4].try_into().unwrap());
            if ndim < 0 {
                return Err(format!("{}: tensor {i} has {ndim} dimensions", here(pos)));
            }
            pos += 8;
            let n = 16 * ndim as usize + 8;
            short(pos, n)?;
            pos += n;
        }
        i += 1;
    }
    if storages {
        walk_one(s, "storage views", pos)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Named]) -> Vec<&str> {
        v.iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn protocol_0_opcodes_are_followed() {
        // INST, OBJ with a GLOBAL class, STRING-built STACK_GLOBAL, UNICODE-built STACK_GLOBAL.
        let w = walk(b"(S'ls'\nios\nsystem\n.", 0);
        assert_eq!(names(&w.imports), ["os.system"]);
        assert_eq!(names(&w.calls), ["os.system"]);
        assert!(w.end.is_some());
        let w = walk(b"(cposix\nsystem\nS'ls'\no.", 0);
        assert_eq!(names(&w.calls), ["posix.system"]);
        let w = walk(b"S'\\x6fs'\nS\"system\"\n\x93.", 0);
        assert_eq!(names(&w.imports), ["os.system"]);
        let w = walk(b"V\\u006fs\np0\nVsystem\ng0\n0\x93.", 0);
        assert_eq!(names(&w.imports), ["os.system"]);
    }

    #[test]
    fn newobj_ex_and_memo_names() {
        let p = b"\x80\x04\x8c\x0asubprocess\x94\x8c\x05Popen\x94h\x00h\x01\x93)}\x92.";
        let w = walk(p, 0);
        assert_eq!(names(&w.imports), ["subprocess.Popen"]);
        assert_eq!(names(&w.calls), ["subprocess.Popen"]);
        assert_eq!(w.calls[0].opcode, "NEWOBJ_EX");
    }

    #[test]
    fn reads_past_what_the_unpickler_would_refuse() {
        // An unknown protocol, a GET of a missing memo entry and a REDUCE on an empty stack do not
        // hide the global after them.
        let w = walk(b"\x80\x09h\x07R0cos\nsystem\n)R.", 0);
        assert_eq!(names(&w.imports), ["os.system"]);
        assert!(w.end.is_some(), "{:?}", w.error);
    }

    #[test]
    fn stops_where_the_bytes_cannot_be_parsed() {
        let w = walk(b"\x80\x02cos\nsystem\n\xff", 0);
        assert_eq!(names(&w.imports), ["os.system"]);
        assert!(w.end.is_none());
        assert!(w.error.unwrap().contains("0xff"));
        let w = walk(b"\x80\x02X\xff\xff\xff\x7fabc", 0);
        assert!(w.error.unwrap().contains("BINUNICODE"));
    }

    #[test]
    fn unresolved_names_are_reported() {
        let w = walk(b"\x80\x04)K\x01\x93\x82\x07.", 0);
        assert_eq!(
            names(&w.imports),
            [
                "<STACK_GLOBAL of names not known statically>",
                "<copyreg extension code 7>"
            ]
        );
    }

    /// A ustar header for `name` of `size` bytes and type `typ`, checksum filled in.
    fn tar_header(name: &str, size: usize, typ: u8, link: &str) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typ;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..265].copy_from_slice(b"ustar\x0000");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn tar(members: &[(&str, &[u8], u8, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, typ, link) in members {
            out.extend(tar_header(name, data.len(), *typ, link));
            out.extend(*data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[test]
    fn tar_members_and_links_are_read_as_tarfile_reads_them() {
        let evil: &[u8] = b"\x80\x02cos\nsystem\n)R.";
        // A symbolic link inside the archive is followed; one outside it cannot be scanned.
        let t = tar(&[
            ("x/payload", evil, b'0', ""),
            ("pickle", b"", b'2', "x/payload"),
        ]);
        let s = scan_bytes(Path::new("t.tar"), &t, false).unwrap();
        assert_eq!(s.content, Some(Content::Tar));
        assert_eq!(s.report.globals, ["os.system"]);
        let t = tar(&[("pickle", b"", b'2', "/etc/passwd")]);
        let s = scan_bytes(Path::new("t.tar"), &t, false).unwrap();
        assert!(s.error.unwrap().to_string().contains("outside the archive"));
        // A truncated member: torch falls back to unpickling the file itself from byte 0.
        let mut t = tar(&[("pickle", evil, b'0', "")]);
        t.truncate(520);
        let s = scan_bytes(Path::new("t.tar"), &t, true).unwrap();
        assert!(s.error.unwrap().to_string().contains("runs past the end"));
        assert_eq!(s.pickles, ["the whole file as a pickle (torch's fallback)"]);
        // A tar that is no checkpoint is skipped in a folder, refused when named.
        let t = tar(&[("data.csv", b"a,b\n", b'0', "")]);
        assert!(scan_bytes(Path::new("d.tar"), &t, false).is_none());
        assert!(scan_bytes(Path::new("d.tar"), &t, true)
            .unwrap()
            .error
            .is_some());
    }

    #[test]
    fn plain_pickles_are_found_by_content() {
        let s = scan_bytes(Path::new("m.bin"), b"\x80\x02cos\nsystem\n)R.", false).unwrap();
        assert_eq!(s.content, Some(Content::Pickle));
        assert_eq!(s.report.globals, ["os.system"]);
        assert!(s.error.is_none());
        // JSON and safetensors headers are not pickles.
        assert!(scan_bytes(Path::new("c.json"), b"{\"a\": 1}", false).is_none());
        let mut st = 0x280u64.to_le_bytes().to_vec();
        st.push(b'{');
        st.resize(0x288, b' ');
        assert!(scan_bytes(Path::new("m.safetensors"), &st, false).is_none());
        assert!(scan_bytes(Path::new("m.safetensors"), &st, true)
            .unwrap()
            .error
            .is_some());
    }
}
