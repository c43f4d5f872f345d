//! A restricted pickle machine: it interprets the opcodes a checkpoint pickle uses and never
//! imports or calls anything.
//!
//! Globals are symbols. In [`Mode::Load`] a global must be on the allowlist ([`crate::globals`])
//! or the whole read fails with [`Error::Unsafe`]; the few callables a checkpoint needs (tensor
//! rebuilding, `OrderedDict()`, ...) are implemented in the `rebuild` module. In [`Mode::Scan`] every
//! global is recorded and every call yields an opaque value, so a pickle can be listed without
//! trusting it.
//!
//! Containers live in an arena and values refer to them by index: memo references keep Python's
//! object identity, and neither deep nesting nor cycles can overflow the stack when values are
//! dropped.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use ckpt_core::{Error, Result};

use crate::globals::{self, Global, StorageClass, TorchDType};

/// Largest number of values on the stack at once.
const MAX_STACK: usize = 1 << 20;
/// Largest number of open MARKs.
const MAX_MARKS: usize = 1 << 16;
/// Largest number of memo entries.
pub(crate) const MAX_MEMO: usize = 1 << 22;
/// Largest number of containers one pickle may create.
pub(crate) const MAX_OBJECTS: usize = 1 << 22;
/// Largest number of elements in one container.
pub(crate) const MAX_CONTAINER_LEN: usize = 1 << 24;
/// Longest `module\nname\n` line of a GLOBAL opcode.
const MAX_GLOBAL_LINE: usize = 4096;
/// Widest integer accepted from LONG1/LONG4, in bytes.
const MAX_INT_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Build checkpoint values; refuse any global outside the allowlist.
    Load,
    /// Record globals and call targets; build nothing that needs a global.
    Scan,
}

/// Index of a container in [`Machine::objects`].
pub type ObjId = usize;

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Complex(f64, f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Object(ObjId),
    /// An allowlisted global (Load mode).
    Global(Global),
    /// Any global, by name (Scan mode).
    Symbol(Rc<str>),
    /// Index into [`Machine::storages`].
    Storage(usize),
    /// Index into [`Machine::tensors`].
    Tensor(usize),
    /// The result of a call in Scan mode.
    Opaque,
}

impl Value {
    pub fn kind(&self, m: &Machine) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Object(id) => match &m.objects[*id] {
                Object::Tuple(_) => "tuple",
                Object::List(_) => "list",
                Object::Dict(d) if d.ordered => "OrderedDict",
                Object::Dict(_) => "dict",
                Object::Set(_) => "set",
            },
            Value::Global(_) | Value::Symbol(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Opaque => "object",
        }
    }
}

#[derive(Debug)]
pub enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
    Set(Vec<Value>),
}

/// A dict or OrderedDict: insertion-ordered, a repeated key replaces the earlier value.
#[derive(Debug, Default)]
pub struct Dict {
    pub ordered: bool,
    pub entries: Vec<(Value, Value)>,
    index: HashMap<KeyId, usize>,
}

/// The hashable identity of a scalar dict key (Python: `1 == 1.0 == True`).
#[derive(Debug, PartialEq, Eq, Hash)]
enum KeyId {
    None,
    Int(i128),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

impl Dict {
    pub fn new(ordered: bool) -> Dict {
        Dict {
            ordered,
            ..Dict::default()
        }
    }

    pub(crate) fn insert(&mut self, key: Value, value: Value) {
        let id = match &key {
            Value::None => Some(KeyId::None),
            Value::Bool(b) => Some(KeyId::Int(*b as i128)),
            Value::Int(i) => Some(KeyId::Int(*i)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => Some(KeyId::Int(*f as i128)),
            Value::Float(f) => Some(KeyId::Float(f.to_bits())),
            Value::Str(s) => Some(KeyId::Str(s.clone())),
            Value::Bytes(b) => Some(KeyId::Bytes(b.clone())),
            _ => None,
        };
        if let Some(id) = id {
            if let Some(&i) = self.index.get(&id) {
                self.entries[i].1 = value;
                return;
            }
            self.index.insert(id, self.entries.len());
        }
        self.entries.push((key, value));
    }
}

/// A storage named by a persistent id: `('storage', class, key, location, numel[, view])`.
#[derive(Debug)]
pub struct PickledStorage {
    pub key: String,
    pub class: StorageClass,
    /// Elements of the class's dtype (bytes for UntypedStorage).
    pub numel: u64,
}

impl PickledStorage {
    /// Bytes the storage's record must hold.
    pub fn nbytes(&self) -> Option<u64> {
        self.class
            .unit_size()
            .and_then(|u| u.checked_mul(self.numel))
    }
}

/// A tensor built by a `torch._utils._rebuild_*` call: a view of a pickled storage.
#[derive(Debug)]
pub struct TensorRecord {
    pub storage: usize,
    pub dtype: &'static TorchDType,
    /// In elements of `dtype`.
    pub offset: u64,
    pub shape: Vec<u64>,
    pub strides: Vec<u64>,
}

/// Which persistent-id tuples a pickle may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistentIds {
    /// None at all (the small pickles of the legacy header).
    Forbidden,
    /// The zip format's 5-tuples.
    Zip,
    /// The legacy format's 6-tuples (with a trailing view-metadata entry).
    Legacy,
}

/// Every global and call target a pickle names, in order (for `ckpt scan`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Every GLOBAL / STACK_GLOBAL, as `module.name`.
    pub globals: Vec<String>,
    /// The callable of every REDUCE / NEWOBJ, as `module.name` (or `<kind>` when not a global);
    /// filled in Scan mode only.
    pub calls: Vec<String>,
}

pub struct Machine<'p> {
    pub(crate) path: &'p Path,
    /// What is being unpickled, for errors (`all_dtypes/data.pkl`).
    pub(crate) label: String,
    pub(crate) mode: Mode,
    pub(crate) persistent_ids: PersistentIds,
    pub objects: Vec<Object>,
    pub storages: Vec<PickledStorage>,
    pub(crate) storage_index: HashMap<String, usize>,
    pub tensors: Vec<TensorRecord>,
    pub report: ScanReport,
    /// Byte offset of the opcode being run, for errors.
    pub(crate) at: usize,
}

/// Opcode names for error messages (every opcode of protocols 0-5).
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// Input cursor over one pickle; every read is checked against the remaining bytes first.
struct Reader<'d> {
    data: &'d [u8],
    pos: usize,
}

impl<'d> Reader<'d> {
    fn take(&mut self, n: usize) -> Option<&'d [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len())?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    fn line(&mut self) -> Option<&'d [u8]> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(MAX_GLOBAL_LINE)
            .position(|&b| b == b'\n')?;
        let s = &rest[..n];
        self.pos += n + 1;
        Some(s)
    }
}

impl<'p> Machine<'p> {
    pub fn new(
        path: &'p Path,
        label: impl Into<String>,
        mode: Mode,
        persistent_ids: PersistentIds,
    ) -> Machine<'p> {
        Machine {
            path,
            label: label.into(),
            mode,
            persistent_ids,
            objects: Vec::new(),
            storages: Vec::new(),
            storage_index: HashMap::new(),
            tensors: Vec::new(),
            report: ScanReport::default(),
            at: 0,
        }
    }

    /// An error about the pickle at the current opcode.
    pub(crate) fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::invalid(
            self.path,
            format!("{}: pickle byte {}: {msg}", self.label, self.at),
        )
    }

    pub(crate) fn new_object(&mut self, obj: Object) -> Result<Value> {
        if self.objects.len() >= MAX_OBJECTS {
            return Err(self.err(format!("more than {MAX_OBJECTS} containers")));
        }
        self.objects.push(obj);
        Ok(Value::Object(self.objects.len() - 1))
    }

    pub(crate) fn new_tuple(&mut self, items: Vec<Value>) -> Result<Value> {
        self.new_object(Object::Tuple(items))
    }

    /// The elements of a tuple or list value.
    pub(crate) fn sequence(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Object(id) => match &self.objects[*id] {
                Object::Tuple(items) | Object::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// Runs one pickle starting at `start`; returns the value left by STOP and the offset after it.
    pub fn run(&mut self, data: &[u8], start: usize) -> Result<(Value, usize)> {
        let mut r = Reader { data, pos: start };
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        let eof =
            |m: &Machine, what: &str| m.err(format!("pickle ends inside {what} (truncated?)"));

        loop {
            self.at = r.pos;
            let op = r
                .u8()
                .ok_or_else(|| self.err("pickle ends without STOP (truncated?)"))?;
            let name = opcode_name(op).unwrap_or("unknown");
            let mut push: Option<Value> = None;
            match op {
                0x80 => {
                    let v = r.u8().ok_or_else(|| eof(self, "PROTO"))?;
                    if v > 5 {
                        return Err(self.err(format!("unknown pickle protocol {v}")));
                    }
                }
                0x95 => {
                    // FRAME only announces the length of what follows; it is not needed to parse.
                    let n = r.u64().ok_or_else(|| eof(self, "FRAME"))?;
                    if n > (data.len() - r.pos) as u64 {
                        return Err(self.err(format!(
                            "FRAME of {n} bytes runs past the end of the pickle"
                        )));
                    }
                }
                b'.' => {
                    let v = stack
                        .pop()
                        .ok_or_else(|| self.err("STOP with an empty stack"))?;
                    return Ok((v, r.pos));
                }
                b'(' => {
                    if marks.len() >= MAX_MARKS {
                        return Err(self.err(format!("more than {MAX_MARKS} nested MARKs")));
                    }
                    marks.push(stack.len());
                }
                b'0' => {
                    stack
                        .pop()
                        .ok_or_else(|| self.err("POP with an empty stack"))?;
                }
                b'1' => {
                    let m = self.pop_mark(&mut marks)?;
                    stack.truncate(m);
                }
                b'2' => {
                    push = Some(
                        stack
                            .last()
                            .cloned()
                            .ok_or_else(|| self.err("DUP with an empty stack"))?,
                    )
                }
                b'N' => push = Some(Value::None),
                0x88 => push = Some(Value::Bool(true)),
                0x89 => push = Some(Value::Bool(false)),
                b'K' => push = Some(Value::Int(r.u8().ok_or_else(|| eof(self, name))? as i128)),
                b'M' => push = Some(Value::Int(r.u16().ok_or_else(|| eof(self, name))? as i128)),
                b'J' => {
                    push = Some(Value::Int(
                        r.u32().ok_or_else(|| eof(self, name))? as i32 as i128
                    ))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        r.u8().map(|n| n as usize)
                    } else {
                        r.u32().map(|n| n as usize)
                    }
                    .ok_or_else(|| eof(self, name))?;
                    if n > MAX_INT_BYTES {
                        return Err(self.err(format!("{name} integer of {n} bytes is too large")));
                    }
                    let bytes = r.take(n).ok_or_else(|| eof(self, name))?;
                    push = Some(Value::Int(le_signed(bytes)));
                }
                b'G' => {
                    let b = r.take(8).ok_or_else(|| eof(self, name))?;
                    push = Some(Value::Float(f64::from_be_bytes(b.try_into().unwrap())));
                }
                b'X' | 0x8c | 0x8d | b'U' => {
                    let n = match op {
                        0x8c | b'U' => r.u8().map(|n| n as u64),
                        b'X' => r.u32().map(|n| n as u64),
                        _ => r.u64(),
                    }
                    .ok_or_else(|| eof(self, name))?;
                    let len = usize::try_from(n).ok().filter(|&n| n <= data.len() - r.pos);
                    let bytes = len.and_then(|n| r.take(n)).ok_or_else(|| {
                        self.err(format!(
                            "{name} of {n} bytes runs past the end of the pickle"
                        ))
                    })?;
                    let s: Rc<str> = if op == b'U' {
                        // Python 2 str: read as latin-1 text, as torch's loader does.
                        bytes.iter().map(|&b| b as char).collect::<String>().into()
                    } else {
                        std::str::from_utf8(bytes)
                            .map_err(|_| self.err(format!("{name} is not valid UTF-8")))?
                            .into()
                    };
                    push = Some(Value::Str(s));
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => r.u8().map(|n| n as u64),
                        b'B' => r.u32().map(|n| n as u64),
                        _ => r.u64(),
                    }
                    .ok_or_else(|| eof(self, name))?;
                    let len = usize::try_from(n).ok().filter(|&n| n <= data.len() - r.pos);
                    let bytes = len.and_then(|n| r.take(n)).ok_or_else(|| {
                        self.err(format!(
                            "{name} of {n} bytes runs past the end of the pickle"
                        ))
                    })?;
                    push = Some(Value::Bytes(bytes.into()));
                }
                b')' => push = Some(self.new_tuple(Vec::new())?),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err(self.err(format!("{name} needs {n} values on the stack")));
                    }
                    let items = stack.split_off(stack.len() - n);
                    push = Some(self.new_tuple(items)?);
                }
                b't' => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    push = Some(self.new_tuple(items)?);
                }
                b']' => push = Some(self.new_object(Object::List(Vec::new()))?),
                b'l' => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    push = Some(self.new_object(Object::List(items))?);
                }
                b'}' => push = Some(self.new_object(Object::Dict(Dict::new(false)))?),
                b'd' => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    let dict = self.new_object(Object::Dict(Dict::new(false)))?;
                    self.set_items(&dict, items)?;
                    push = Some(dict);
                }
                0x8f => push = Some(self.new_object(Object::Set(Vec::new()))?),
                0x91 => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    push = Some(self.new_object(Object::Set(items))?);
                }
                b'a' => {
                    let v = stack
                        .pop()
                        .ok_or_else(|| self.err("APPEND with an empty stack"))?;
                    let list = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err("APPEND without a list"))?;
                    self.append(&list, vec![v], name)?;
                }
                b'e' | 0x90 => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    let target = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err(format!("{name} without a target")))?;
                    self.append(&target, items, name)?;
                }
                b's' => {
                    if stack.len() < 3 {
                        return Err(self.err("SETITEM needs a dict, a key and a value"));
                    }
                    let items = stack.split_off(stack.len() - 2);
                    let dict = stack.last().cloned().unwrap();
                    self.set_items(&dict, items)?;
                }
                b'u' => {
                    let items = self.take_marked(&mut stack, &mut marks)?;
                    let dict = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err("SETITEMS without a dict"))?;
                    self.set_items(&dict, items)?;
                }
                b'c' => {
                    let module = r.line().ok_or_else(|| eof(self, "GLOBAL"))?;
                    let attr = r.line().ok_or_else(|| eof(self, "GLOBAL"))?;
                    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned);
                    let (module, attr) = match (text(module), text(attr)) {
                        (Ok(m), Ok(a)) => (m, a),
                        _ => return Err(self.err("GLOBAL names are not valid UTF-8")),
                    };
                    push = Some(self.global(&module, &attr)?);
                }
                0x93 => {
                    let attr = stack.pop();
                    let module = stack.pop();
                    let (Some(Value::Str(module)), Some(Value::Str(attr))) = (module, attr) else {
                        return Err(self.err("STACK_GLOBAL needs two strings on the stack"));
                    };
                    push = Some(self.global(&module, &attr)?);
                }
                b'R' | 0x81 => {
                    let args = stack.pop();
                    let callable = stack.pop();
                    let (Some(callable), Some(args)) = (callable, args) else {
                        return Err(self.err(format!("{name} needs a callable and its arguments")));
                    };
                    push = Some(self.call(callable, args, op == 0x81)?);
                }
                b'b' => {
                    let state = stack
                        .pop()
                        .ok_or_else(|| self.err("BUILD with an empty stack"))?;
                    let target = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err("BUILD without an object"))?;
                    self.build(&target, state)?;
                }
                b'Q' => {
                    let pid = stack
                        .pop()
                        .ok_or_else(|| self.err("BINPERSID with an empty stack"))?;
                    push = Some(self.persistent_load(pid)?);
                }
                b'q' | b'r' | 0x94 => {
                    let index = match op {
                        b'q' => r.u8().map(u32::from),
                        b'r' => r.u32(),
                        _ => u32::try_from(memo.len()).ok(),
                    }
                    .ok_or_else(|| eof(self, name))?;
                    let v = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err(format!("{name} with an empty stack")))?;
                    if memo.len() >= MAX_MEMO && !memo.contains_key(&index) {
                        return Err(self.err(format!("more than {MAX_MEMO} memo entries")));
                    }
                    memo.insert(index, v);
                }
                b'h' | b'j' => {
                    let index = if op == b'h' {
                        r.u8().map(u32::from)
                    } else {
                        r.u32()
                    }
                    .ok_or_else(|| eof(self, name))?;
                    let v = memo
                        .get(&index)
                        .cloned()
                        .ok_or_else(|| self.err(format!("{name} {index}: no such memo entry")))?;
                    push = Some(v);
                }
                _ => {
                    let what = match opcode_name(op) {
                        Some(n) => format!("pickle opcode {n} (0x{op:02x}) is not supported"),
                        None => format!("unknown pickle opcode 0x{op:02x}"),
                    };
                    return Err(self.err(what));
                }
            }
            if let Some(v) = push {
                if stack.len() >= MAX_STACK {
                    return Err(
                        self.err(format!("more than {MAX_STACK} values on the pickle stack"))
                    );
                }
                stack.push(v);
            }
        }
    }

    fn pop_mark(&self, marks: &mut Vec<usize>) -> Result<usize> {
        marks
            .pop()
            .ok_or_else(|| self.err("opcode needs a MARK but there is none"))
    }

    fn take_marked(&self, stack: &mut Vec<Value>, marks: &mut Vec<usize>) -> Result<Vec<Value>> {
        let m = self.pop_mark(marks)?;
        if m > stack.len() {
            return Err(self.err("MARK is above the top of the stack"));
        }
        Ok(stack.split_off(m))
    }

    fn global(&mut self, module: &str, attr: &str) -> Result<Value> {
        let full = format!("{module}.{attr}");
        self.report.globals.push(full.clone());
        match self.mode {
            Mode::Scan => Ok(Value::Symbol(full.into())),
            Mode::Load => match globals::resolve(module, attr) {
                Some(g) => Ok(Value::Global(g)),
                None => Err(Error::unsafe_input(
                    self.path,
                    format!(
                        "{}: pickle byte {}: global '{full}' is not allowed (only the globals a checkpoint needs are; \
                         nothing was executed)",
                        self.label, self.at
                    ),
                )),
            },
        }
    }

    fn container_len(&self, target: &Value) -> Option<usize> {
        match &self.objects[target_object(target)?] {
            Object::List(v) | Object::Set(v) | Object::Tuple(v) => Some(v.len()),
            Object::Dict(d) => Some(d.entries.len()),
        }
    }

    fn append(&mut self, target: &Value, items: Vec<Value>, op: &str) -> Result<()> {
        let kind = target.kind(self);
        if self.container_len(target).unwrap_or(0) + items.len() > MAX_CONTAINER_LEN {
            return Err(self.err(format!(
                "a container holds more than {MAX_CONTAINER_LEN} elements"
            )));
        }
        match target_object(target).map(|i| &mut self.objects[i]) {
            Some(Object::List(v) | Object::Set(v)) => {
                v.extend(items);
                Ok(())
            }
            _ if self.mode == Mode::Scan => Ok(()),
            _ => Err(self.err(format!("{op} on a {kind}"))),
        }
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<()> {
        if items.len() & 1 == 1 {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        let kind = target.kind(self);
        if self.container_len(target).unwrap_or(0) + items.len() / 2 > MAX_CONTAINER_LEN {
            return Err(self.err(format!(
                "a dict holds more than {MAX_CONTAINER_LEN} entries"
            )));
        }
        match target_object(target).map(|i| &mut self.objects[i]) {
            Some(Object::Dict(d)) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.insert(k, v);
                }
                Ok(())
            }
            _ if self.mode == Mode::Scan => Ok(()),
            _ => Err(self.err(format!("SETITEM on a {kind}"))),
        }
    }

    /// Records a call target (Scan mode makes every call opaque; Load mode runs the allowlisted
    /// implementation).
    fn call(&mut self, callable: Value, args: Value, newobj: bool) -> Result<Value> {
        match self.mode {
            Mode::Scan => {
                let target = match &callable {
                    Value::Symbol(s) => s.to_string(),
                    other => format!("<{}>", other.kind(self)),
                };
                self.report.calls.push(target);
                Ok(Value::Opaque)
            }
            Mode::Load => {
                let Value::Global(g) = callable else {
                    return Err(self.err(format!(
                        "call of a {} (only allowlisted globals can be called)",
                        callable.kind(self)
                    )));
                };
                if newobj {
                    self.new_instance(g, args)
                } else {
                    self.reduce(g, args)
                }
            }
        }
    }

    fn build(&mut self, target: &Value, _state: Value) -> Result<()> {
        // The state BUILD applies is dropped: OrderedDict `_metadata` (module versions) and
        // Python attributes set on tensors carry nothing a converter needs.
        match target {
            Value::Tensor(_) | Value::Opaque => Ok(()),
            Value::Object(id) if matches!(&self.objects[*id], Object::Dict(d) if d.ordered) => {
                Ok(())
            }
            _ if self.mode == Mode::Scan => Ok(()),
            other => Err(self.err(format!("BUILD on a {} is not supported", other.kind(self)))),
        }
    }
}

fn target_object(v: &Value) -> Option<ObjId> {
    match v {
        Value::Object(id) => Some(*id),
        _ => None,
    }
}

/// A little-endian two's-complement integer of at most 16 bytes.
fn le_signed(bytes: &[u8]) -> i128 {
    if bytes.is_empty() {
        return 0;
    }
    let mut buf = if bytes[bytes.len() - 1] & 0x80 != 0 {
        [0xffu8; 16]
    } else {
        [0u8; 16]
    };
    buf[..bytes.len()].copy_from_slice(bytes);
    i128::from_le_bytes(buf)
}

/// Lists every global and call target in a pickle without executing or trusting anything.
pub fn scan(path: &Path, label: &str, data: &[u8], start: usize) -> Result<(ScanReport, usize)> {
    let mut m = Machine::new(path, label, Mode::Scan, PersistentIds::Legacy);
    let (_, end) = m.run(data, start)?;
    Ok((m.report, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(data: &[u8]) -> Result<(Machine<'static>, Value)> {
        let mut m = Machine::new(Path::new("mem"), "test", Mode::Load, PersistentIds::Zip);
        let (v, _) = m.run(data, 0)?;
        Ok((m, v))
    }

    #[test]
    fn integers_and_floats() {
        let (_, v) = load(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.").unwrap();
        assert!(matches!(v, Value::Int(0x1950a86a20f9469cfc6c)));
        let (_, v) = load(b"\x80\x02J\xff\xff\xff\xff.").unwrap();
        assert!(matches!(v, Value::Int(-1)));
        let (_, v) = load(b"\x80\x02\x8a\x01\xff.").unwrap();
        assert!(matches!(v, Value::Int(-1)));
        let (_, v) = load(b"\x80\x02G?\xb9\x99\x99\x99\x99\x99\x9a.").unwrap();
        assert!(matches!(v, Value::Float(f) if f == 0.1));
    }

    #[test]
    fn memo_keeps_identity() {
        // d = {}; l = [d, d]; d['a'] = 1 (after the list was built, through the memo)
        let (m, v) = load(b"\x80\x02]q\x00(}q\x01h\x01eh\x01X\x01\x00\x00\x00aK\x01s0.").unwrap();
        let Value::Object(list) = v else { panic!() };
        let Object::List(items) = &m.objects[list] else {
            panic!()
        };
        let (Value::Object(a), Value::Object(b)) = (&items[0], &items[1]) else {
            panic!()
        };
        assert_eq!(a, b);
        let Object::Dict(d) = &m.objects[*a] else {
            panic!()
        };
        assert_eq!(d.entries.len(), 1);
    }

    #[test]
    fn refuses_unknown_globals_and_opcodes() {
        let e = load(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Unsafe { msg, .. } if msg.contains("'os.system'")),
            "{e}"
        );
        let e = load(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Unsafe { msg, .. } if msg.contains("'builtins.eval'")),
            "{e}"
        );
        let e = load(b"\x80\x02ios\nsystem\n.").err().unwrap();
        assert!(e.to_string().contains("INST"), "{e}");
    }

    #[test]
    fn lengths_are_checked_before_reading() {
        let e = load(b"\x80\x02X\xff\xff\xff\x7fabc").err().unwrap();
        assert!(e.to_string().contains("runs past the end"), "{e}");
        let e = load(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc")
            .err()
            .unwrap();
        assert!(e.to_string().contains("runs past the end"), "{e}");
        assert!(load(b"\x80\x02(((").is_err());
        assert!(load(b"\x80\x02h\x05.").is_err());
        assert!(load(b"\x80\x02t.").is_err());
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.push(b'.');
        let (m, _) = load(&p).unwrap();
        assert_eq!(m.objects.len(), 200_001);
    }

    #[test]
    fn scan_lists_globals_without_running_them() {
        let (report, _) = scan(
            Path::new("mem"),
            "t",
            b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.",
            0,
        )
        .unwrap();
        assert_eq!(report.globals, vec!["os.system"]);
        assert_eq!(report.calls, vec!["os.system"]);
    }
}
