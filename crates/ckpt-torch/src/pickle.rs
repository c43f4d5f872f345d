//! A restricted pickle machine: it interprets the opcodes a checkpoint pickle uses and never
//! imports or calls anything.
//!
//! Globals are symbols. In `Mode::Load` a global must be on the allowlist ([`crate::globals`])
//! or the whole read fails with [`Error::Unsafe`]; the few callables a checkpoint needs (tensor
//! rebuilding, `OrderedDict()`, ...) are implemented in the `rebuild` module. In `Mode::Scan` every
//! global is recorded and every call yields an opaque value, so a pickle can be listed without
//! trusting it.
//!
//! Containers live in an arena and values refer to them by index: memo references keep Python's
//! object identity, and neither deep nesting nor cycles can overflow the stack when values are
//! dropped. The machine has its own budgets, far above what `torch.save` writes for a million
//! tensors: values created (`MAX_VALUES`), containers (`MAX_OBJECTS`), memo entries, stack
//! size, open MARKs, elements per container and container nesting (`MAX_DEPTH`); going over
//! one is an [`Error::Invalid`] "pickle too large/deep" naming the pickle and byte offset.
//!
//! Opcodes are read by the decoder shared with the static scanner (`crate::opcodes`).

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use ckpt_core::{Error, Result};

use crate::globals::{self, Global, StorageClass, TorchDType};
use crate::opcodes::{Arg, DecodeError, Decoder, Op};

/// Largest number of values on the stack at once.
const MAX_STACK: usize = 1 << 20;
/// Largest number of open MARKs.
const MAX_MARKS: usize = 1 << 16;
/// Largest number of memo entries. `torch.save` memoizes about 9 values per tensor (its key,
/// storage key, size and stride tuples, ...), so a checkpoint of 1M tensors needs about 9M.
pub(crate) const MAX_MEMO: usize = 1 << 24;
/// Largest number of containers one pickle may create (`torch.save` makes 6 per tensor).
pub(crate) const MAX_OBJECTS: usize = 1 << 24;
/// Largest number of values one pickle may create (every value an opcode pushes: numbers,
/// strings, containers, memo references). `torch.save` pushes about 25 per tensor.
pub(crate) const MAX_VALUES: u64 = 1 << 26;
/// Deepest container nesting a pickle may build (real checkpoints nest a few levels; the
/// flattening walk stops deeper ones at its own, smaller limit).
pub(crate) const MAX_DEPTH: u32 = 1 << 10;
/// Largest number of elements in one container.
pub(crate) const MAX_CONTAINER_LEN: usize = 1 << 24;
/// Longest `module\nname\n` line of a GLOBAL opcode.
const MAX_GLOBAL_LINE: usize = 4096;
/// Widest integer accepted from LONG1/LONG4, in bytes.
const MAX_INT_BYTES: usize = 16;

/// What the machine does with globals and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Build checkpoint values; refuse any global outside the allowlist.
    Load,
    /// Record globals and call targets; build nothing that needs a global.
    Scan,
}

/// Index of a container in [`Machine::objects`].
pub(crate) type ObjId = usize;

#[derive(Debug, Clone)]
pub(crate) enum Value {
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
    pub(crate) fn kind(&self, m: &Machine) -> &'static str {
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
pub(crate) enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
    Set(Vec<Value>),
}

/// A dict or OrderedDict: insertion-ordered, a repeated key replaces the earlier value.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub(crate) ordered: bool,
    pub(crate) entries: Vec<(Value, Value)>,
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
    pub(crate) fn new(ordered: bool) -> Dict {
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
pub(crate) struct PickledStorage {
    pub(crate) key: String,
    pub(crate) class: StorageClass,
    /// Elements of the class's dtype (bytes for UntypedStorage).
    pub(crate) numel: u64,
}

impl PickledStorage {
    /// Bytes the storage's record must hold.
    pub(crate) fn nbytes(&self) -> Option<u64> {
        self.class
            .unit_size()
            .and_then(|u| u.checked_mul(self.numel))
    }
}

/// A tensor built by a `torch._utils._rebuild_*` call: a view of a pickled storage.
#[derive(Debug)]
pub(crate) struct TensorRecord {
    pub(crate) storage: usize,
    pub(crate) dtype: &'static TorchDType,
    /// In elements of `dtype`.
    pub(crate) offset: u64,
    pub(crate) shape: Vec<u64>,
    pub(crate) strides: Vec<u64>,
}

/// Which persistent-id tuples a pickle may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PersistentIds {
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

pub(crate) struct Machine<'p> {
    pub(crate) path: &'p Path,
    /// What is being unpickled, for errors (`all_dtypes/data.pkl`).
    pub(crate) label: String,
    pub(crate) mode: Mode,
    pub(crate) persistent_ids: PersistentIds,
    pub(crate) objects: Vec<Object>,
    pub(crate) storages: Vec<PickledStorage>,
    pub(crate) storage_index: HashMap<String, usize>,
    pub(crate) tensors: Vec<TensorRecord>,
    pub(crate) report: ScanReport,
    /// Byte offset of the opcode being run, for errors.
    pub(crate) at: usize,
    /// Values created so far (all pickles this machine ran), against [`MAX_VALUES`].
    pub(crate) values: u64,
    /// `depth[id]`: how deep containers nest inside `objects[id]` (1 for one with no container
    /// inside), as far as known when elements were added, against [`MAX_DEPTH`].
    depth: Vec<u32>,
}

impl<'p> Machine<'p> {
    pub(crate) fn new(
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
            values: 0,
            depth: Vec::new(),
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
            return Err(self.err(format!(
                "pickle too large: more than {MAX_OBJECTS} containers"
            )));
        }
        let inner = match &obj {
            Object::Tuple(v) | Object::List(v) | Object::Set(v) => self.max_depth(v.iter()),
            Object::Dict(d) => self.max_depth(d.entries.iter().flat_map(|(k, v)| [k, v])),
        };
        self.check_depth(inner)?;
        self.objects.push(obj);
        self.depth.push(inner + 1);
        Ok(Value::Object(self.objects.len() - 1))
    }

    /// The deepest nesting among `values` (0 when none is a container).
    fn max_depth<'v>(&self, values: impl Iterator<Item = &'v Value>) -> u32 {
        values
            .filter_map(|v| match v {
                Value::Object(id) => self.depth.get(*id).copied(),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Refuses a container that would hold containers nested `inner` deep.
    fn check_depth(&self, inner: u32) -> Result<()> {
        if inner >= MAX_DEPTH {
            return Err(self.err(format!(
                "pickle too deep: containers nested more than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// Records that `items` were added to the container `target`.
    fn deepen(&mut self, target: &Value, items: &[Value]) -> Result<()> {
        if let Some(id) = target_object(target) {
            let inner = self.max_depth(items.iter());
            self.check_depth(inner)?;
            if let Some(d) = self.depth.get_mut(id) {
                *d = (*d).max(inner + 1);
            }
        }
        Ok(())
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
    pub(crate) fn run(&mut self, data: &[u8], start: usize) -> Result<(Value, usize)> {
        let mut r = Decoder::new(data, start);
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();

        loop {
            self.at = r.pos();
            let Op {
                code: op,
                name,
                arg,
                ..
            } = r.next_op().map_err(|e| {
                let msg = match e {
                    DecodeError::NoStop { .. } => "pickle ends without STOP (truncated?)".into(),
                    DecodeError::Unknown { code, .. } => {
                        format!("unknown pickle opcode 0x{code:02x}")
                    }
                    other => other.to_string(),
                };
                self.err(msg)
            })?;
            let uint = match arg {
                Arg::UInt(v) => v,
                _ => 0,
            };
            let bytes: &[u8] = match arg {
                Arg::Bytes(b) | Arg::Line(b) => b,
                _ => &[],
            };
            let mut push: Option<Value> = None;
            match op {
                0x80 => {
                    if uint > 5 {
                        return Err(self.err(format!("unknown pickle protocol {uint}")));
                    }
                }
                0x95 => {
                    // FRAME only announces the length of what follows; it is not needed to parse.
                    if uint > r.remaining() as u64 {
                        return Err(self.err(format!(
                            "FRAME of {uint} bytes runs past the end of the pickle"
                        )));
                    }
                }
                b'.' => {
                    let v = stack
                        .pop()
                        .ok_or_else(|| self.err("STOP with an empty stack"))?;
                    return Ok((v, r.pos()));
                }
                b'(' => {
                    if marks.len() >= MAX_MARKS {
                        return Err(self.err(format!(
                            "pickle too deep: more than {MAX_MARKS} nested MARKs"
                        )));
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
                b'K' | b'M' => push = Some(Value::Int(uint as i128)),
                b'J' => {
                    let Arg::Int(v) = arg else { unreachable!() };
                    push = Some(Value::Int(v as i128))
                }
                0x8a | 0x8b => {
                    if bytes.len() > MAX_INT_BYTES {
                        return Err(self.err(format!(
                            "{name} integer of {} bytes is too large",
                            bytes.len()
                        )));
                    }
                    push = Some(Value::Int(le_signed(bytes)));
                }
                b'G' => push = Some(Value::Float(f64::from_be_bytes(bytes.try_into().unwrap()))),
                b'X' | 0x8c | 0x8d | b'U' => {
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
                b'C' | b'B' | 0x8e => push = Some(Value::Bytes(bytes.into())),
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
                b'c' | b'i' => {
                    let Arg::Lines(module, attr) = arg else {
                        unreachable!()
                    };
                    if module.len() > MAX_GLOBAL_LINE || attr.len() > MAX_GLOBAL_LINE {
                        return Err(
                            self.err(format!("{name} names longer than {MAX_GLOBAL_LINE} bytes"))
                        );
                    }
                    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned);
                    let (module, attr) = match (text(module), text(attr)) {
                        (Ok(m), Ok(a)) => (m, a),
                        _ => return Err(self.err(format!("{name} names are not valid UTF-8"))),
                    };
                    // An INST names its class inline: a global outside the allowlist is refused
                    // for safety here, exactly as GLOBAL refuses it.
                    let g = self.global(&module, &attr)?;
                    if op == b'i' {
                        let _args = self.take_marked(&mut stack, &mut marks)?;
                        push = Some(self.call_unsupported(name, g)?);
                    } else {
                        push = Some(g);
                    }
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
                b'o' => {
                    // OBJ: MARK class args... OBJ builds class(*args).
                    let mut items = self.take_marked(&mut stack, &mut marks)?;
                    if items.is_empty() {
                        return Err(self.err("OBJ needs a class after its MARK"));
                    }
                    let class = items.swap_remove(0);
                    push = Some(self.call_unsupported(name, class)?);
                }
                0x92 => {
                    // NEWOBJ_EX: class, args, kwargs -> class.__new__(class, *args, **kwargs).
                    if stack.len() < 3 {
                        return Err(self.err("NEWOBJ_EX needs a class, its arguments and keywords"));
                    }
                    let mut three = stack.split_off(stack.len() - 3);
                    let class = three.swap_remove(0);
                    push = Some(self.call_unsupported(name, class)?);
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
                        0x94 => u32::try_from(memo.len())
                            .map_err(|_| self.err("MEMOIZE beyond 2^32 entries"))?,
                        _ => uint as u32,
                    };
                    let v = stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err(format!("{name} with an empty stack")))?;
                    if memo.len() >= MAX_MEMO && !memo.contains_key(&index) {
                        return Err(self.err(format!(
                            "pickle too large: more than {MAX_MEMO} memo entries"
                        )));
                    }
                    memo.insert(index, v);
                }
                b'h' | b'j' => {
                    let index = uint as u32;
                    let v = memo
                        .get(&index)
                        .cloned()
                        .ok_or_else(|| self.err(format!("{name} {index}: no such memo entry")))?;
                    push = Some(v);
                }
                _ => {
                    return Err(self.err(format!(
                        "pickle opcode {name} (0x{op:02x}) is not supported"
                    )));
                }
            }
            if let Some(v) = push {
                self.values += 1;
                if self.values > MAX_VALUES {
                    return Err(self.err(format!(
                        "pickle too large: more than {MAX_VALUES} objects created"
                    )));
                }
                if stack.len() >= MAX_STACK {
                    return Err(self.err(format!(
                        "pickle too large: more than {MAX_STACK} values on the pickle stack"
                    )));
                }
                stack.push(v);
            }
        }
    }

    /// INST, OBJ and NEWOBJ_EX construct an object from a class; ckpt's loader (like torch's
    /// weights-only unpickler) implements none of them. A class outside the allowlist was
    /// already refused as unsafe when it was named; an allowlisted one is merely unsupported.
    fn call_unsupported(&mut self, opcode: &str, class: Value) -> Result<Value> {
        let target = match &class {
            Value::Global(g) => format!(" (of {g:?})"),
            Value::Symbol(s) => format!(" (of '{s}')"),
            other => format!(" (of a {})", other.kind(self)),
        };
        if self.mode == Mode::Scan {
            if let Value::Symbol(s) = &class {
                self.report.calls.push(s.to_string());
            }
            return Ok(Value::Opaque);
        }
        Err(self.err(format!(
            "pickle opcode {opcode} is not supported{target}; nothing was executed"
        )))
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
                "pickle too large: a container holds more than {MAX_CONTAINER_LEN} elements"
            )));
        }
        self.deepen(target, &items)?;
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
                "pickle too large: a dict holds more than {MAX_CONTAINER_LEN} entries"
            )));
        }
        self.deepen(target, &items)?;
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
///
/// The pickle starts at byte `start` of `data`; `path` and `label` (e.g. `archive/data.pkl`)
/// name it in errors. Returns the report and the offset just past the STOP opcode. Fails with
/// [`Error::Invalid`] on a malformed or truncated pickle or one over the machine's budgets.
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
    }

    #[test]
    fn inst_obj_newobj_ex_refuse_unsafe_classes_like_reduce() {
        // INST names its class inline: os.system is refused for safety (exit 4), not as an
        // unsupported opcode.
        let e = load(b"\x80\x02(X\x02\x00\x00\x00lsios\nsystem\n.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Unsafe { msg, .. } if msg.contains("'os.system'") && msg.contains("pickle byte 10")),
            "{e}"
        );
        // An allowlisted class is merely unsupported by these opcodes (exit 3).
        let e = load(b"\x80\x02(icollections\nOrderedDict\n.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Invalid { msg, .. } if msg.contains("INST is not supported")),
            "{e:?}"
        );
        let e = load(b"\x80\x02(ccollections\nOrderedDict\no.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Invalid { msg, .. } if msg.contains("OBJ is not supported")),
            "{e:?}"
        );
        let e = load(b"\x80\x04ccollections\nOrderedDict\n)}\x92.")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Invalid { msg, .. } if msg.contains("NEWOBJ_EX is not supported")),
            "{e:?}"
        );
        let e = load(b"\x80\x04\x8c\x02os\x8c\x06system\x93)}\x92.")
            .err()
            .unwrap();
        assert!(matches!(&e, Error::Unsafe { .. }), "{e:?}");
    }

    #[test]
    fn a_million_levels_of_nesting_are_refused_without_overflow() {
        // EMPTY_LIST x 1e6 then APPEND x 1e6: nested bottom-up.
        let n = 1_000_000;
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', n));
        p.extend(std::iter::repeat_n(b'a', n - 1));
        p.push(b'.');
        let e = load(&p).err().unwrap();
        assert!(e.to_string().contains("pickle too deep"), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("pickle byte {}", 2 + n + MAX_DEPTH as usize - 1)),
            "{e}"
        );
        // MARK x 1e6.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', n));
        p.push(b'.');
        let e = load(&p).err().unwrap();
        assert!(e.to_string().contains("pickle too deep"), "{e}");
        // Nested top-down through the memo (the depth is not visible when each list is
        // filled): the machine keeps it in its arena, and dropping it does not recurse.
        let mut p = b"\x80\x02]".to_vec();
        for i in 0..n as u32 {
            p.extend(b"]r");
            p.extend((i + 1).to_le_bytes());
            p.extend(b"a");
            p.extend(b"0j");
            p.extend((i + 1).to_le_bytes());
        }
        p.push(b'.');
        let (m, _) = load(&p).unwrap();
        assert_eq!(m.objects.len(), n + 1);
        drop(m);
    }

    #[test]
    fn objects_created_have_a_budget() {
        // DUP forever: every value is tiny, but there are more than the budget allows.
        let mut p = b"\x80\x02N".to_vec();
        let chunk = [b'2'; 1000];
        // The stack holds at most MAX_STACK values, so pop them in batches: MARK DUP... POP_MARK.
        let mut body = vec![b'('];
        body.extend_from_slice(&chunk);
        body.push(b'1');
        let reps = (MAX_VALUES as usize / chunk.len()) + 2;
        for _ in 0..reps {
            p.extend_from_slice(&body);
        }
        p.push(b'.');
        let t = std::time::Instant::now();
        let e = load(&p).err().unwrap();
        assert!(e.to_string().contains("pickle too large"), "{e}");
        assert!(e.to_string().contains("objects created"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
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
        let e = load(&p).err().unwrap();
        assert!(e.to_string().contains("pickle too deep"), "{e}");
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, MAX_DEPTH as usize - 1));
        p.push(b'.');
        let (m, _) = load(&p).unwrap();
        assert_eq!(m.objects.len(), MAX_DEPTH as usize);
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
