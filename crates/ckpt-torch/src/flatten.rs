//! Turns the unpickled object tree into named tensors and non-tensor extras.
//!
//! Dicts, OrderedDicts, lists and tuples are walked in pickle order and their keys joined with `.`
//! (integer keys and list indices in decimal). Tensors become core tensors viewing the storage
//! they were pickled against, so tensors of one torch storage share one `Storage` (same id).
//! Other leaves (numbers, strings, None, lists of them) become JSON extras.
//!
//! A pickle can share one container under many parents (memo references), so a few hundred
//! bytes can describe a tree with billions of paths (`DUP`/`TUPLE2` repeated). Before anything is
//! named, every container is measured once (memoised by object id): how many tensors and extras
//! its subtree would produce, how many name and extra bytes that takes, and how deep it goes.
//! A tree over one of the budgets below is refused up front, in time and memory proportional to
//! the pickle, not to its expansion.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use ckpt_core::tensor::is_contiguous;
use ckpt_core::{DType, Error, Result, Storage, Tensor, TensorData, View};
use serde_json::Value as Json;

use crate::globals::Global;
use crate::pickle::{Machine, ObjId, Object, Value};

/// Deepest container nesting walked (a self-referencing container ends here too).
const MAX_DEPTH: usize = 256;
/// Most tensors one checkpoint may name. Real checkpoints hold thousands to a few hundred
/// thousand; the reader's budgets ([`crate::pickle::MAX_OBJECTS`], `MAX_MEMO`, `MAX_VALUES`)
/// admit a torch-written pickle of about 2.8 million (measured: 1M tensors take 22M values,
/// 6M containers and 8M memo entries).
pub(crate) const MAX_TENSORS: u64 = 1 << 21;
/// Most non-tensor leaves (numbers, strings, lists of them) one checkpoint may name.
pub(crate) const MAX_EXTRAS: u64 = 1 << 21;
/// Most bytes of tensor and extra names in total (a real model's names take a few MB).
pub(crate) const MAX_NAME_BYTES: u64 = 256 << 20;
/// Most bytes of JSON the extras may expand to (estimated generously).
const MAX_EXTRA_BYTES: u64 = 256 << 20;

pub(crate) struct Flattened {
    pub tensors: Vec<Tensor>,
    pub extras: BTreeMap<String, Json>,
}

struct Walker<'a> {
    m: &'a Machine<'a>,
    storages: &'a [Arc<Storage>],
    path: &'a Path,
    out: Flattened,
    /// What each container's subtree produces, measured once per object.
    costs: HashMap<ObjId, Cost>,
    /// Containers being measured (a container reached again while open is a cycle).
    open: HashSet<ObjId>,
    /// The keys leading to the value being measured (for errors).
    trail: Vec<String>,
}

/// What walking one value produces. Counts saturate; `names` is an upper bound on the bytes of
/// the produced names relative to the value (each key counted with its `.`).
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    tensors: u64,
    extras: u64,
    names: u64,
    /// Estimated memory of the extras' JSON values.
    extra_bytes: u64,
    /// Levels of containers below this value (0 for a leaf or an empty container).
    height: usize,
    /// For a value made only of scalars and sequences of them: its JSON size estimate (it then
    /// becomes one extra); None when it holds a dict or a tensor.
    plain: Option<u64>,
}

impl Cost {
    fn leaves(&self) -> u64 {
        self.tensors.saturating_add(self.extras)
    }
}

/// JSON memory estimate per value (serde_json's `Value` is 32 bytes) besides its text.
const JSON_VALUE: u64 = 32;

/// Flattens `root` (or its `key` entry) into tensors and extras. `storages[i]` backs the pickle's
/// storage `i`.
pub(crate) fn flatten(
    m: &Machine,
    root: &Value,
    storages: &[Arc<Storage>],
    key: Option<&str>,
    path: &Path,
) -> Result<Flattened> {
    let mut w = Walker {
        m,
        storages,
        path,
        out: Flattened {
            tensors: Vec::new(),
            extras: BTreeMap::new(),
        },
        costs: HashMap::new(),
        open: HashSet::new(),
        trail: Vec::new(),
    };
    // Names are relative to the selected subtree.
    let start = match key {
        None => root.clone(),
        Some(k) => w.select(root, k)?,
    };
    // A lone tensor is named by the key that selected it (or `tensor` for a bare saved tensor).
    let name = if matches!(start, Value::Tensor(_)) {
        key.unwrap_or("tensor")
    } else {
        ""
    };
    let cost = w.measure(&start, 0)?;
    w.check_budget(&cost, name)?;
    w.out.tensors.reserve_exact(cost.tensors as usize);
    w.walk(&start, name, 0)?;
    Ok(w.out)
}

/// The keys of the root dict (for error messages and callers choosing a subtree).
pub(crate) fn top_level_keys(m: &Machine, root: &Value) -> Vec<String> {
    match root {
        Value::Object(id) => match &m.objects[*id] {
            Object::Dict(d) => d.entries.iter().filter_map(|(k, _)| key_text(k)).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn key_text(k: &Value) -> Option<String> {
    Some(match k {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::None => "None".to_string(),
        Value::Float(f) => f.to_string(),
        _ => return None,
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Walker<'_> {
    fn dict_entries(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match v {
            Value::Object(id) => match &self.m.objects[*id] {
                Object::Dict(d) => Some(&d.entries),
                _ => None,
            },
            _ => None,
        }
    }

    /// The subtree under `key`: an entry of the root dict, or a dotted path of nested entries.
    fn select(&self, root: &Value, key: &str) -> Result<Value> {
        let lookup = |v: &Value, k: &str| -> Option<Value> {
            self.dict_entries(v)?
                .iter()
                .find(|(ek, _)| key_text(ek).as_deref() == Some(k))
                .map(|(_, ev)| ev.clone())
        };
        if let Some(v) = lookup(root, key) {
            return Ok(v);
        }
        let mut cur = Some(root.clone());
        for part in key.split('.') {
            cur = cur.and_then(|c| lookup(&c, part));
        }
        cur.ok_or_else(|| {
            let keys = top_level_keys(self.m, root);
            let listed = if keys.is_empty() {
                format!(
                    "the checkpoint's root is a {}, not a dict",
                    root.kind(self.m)
                )
            } else {
                format!(
                    "top-level keys: {}",
                    keys.iter()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Error::Usage(format!(
                "{}: no key '{key}' in the checkpoint ({listed})",
                self.path.display()
            ))
        })
    }

    /// Measures what walking `v` at `depth` produces, each container once.
    fn measure(&mut self, v: &Value, depth: usize) -> Result<Cost> {
        let id = match v {
            Value::Tensor(_) => {
                return Ok(Cost {
                    tensors: 1,
                    ..Cost::default()
                })
            }
            Value::Object(id) => *id,
            scalar => {
                let size = JSON_VALUE.saturating_add(self.scalar_json_size(scalar));
                return Ok(Cost {
                    extras: 1,
                    extra_bytes: size,
                    plain: Some(size),
                    ..Cost::default()
                });
            }
        };
        if let Some(c) = self.costs.get(&id) {
            // Reached again, maybe deeper than before.
            if depth + c.height > MAX_DEPTH {
                return Err(self.too_deep());
            }
            return Ok(*c);
        }
        if depth + 1 > MAX_DEPTH || self.open.contains(&id) {
            return Err(self.too_deep());
        }
        self.open.insert(id);
        let mut c = Cost::default();
        let m = self.m;
        match &m.objects[id] {
            Object::Dict(d) => {
                if d.entries.is_empty() {
                    c.extras = 1;
                    c.extra_bytes = JSON_VALUE;
                }
                for (k, child) in &d.entries {
                    let key = key_text(k).unwrap_or_default();
                    self.trail.push(key);
                    let cc = self.measure(child, depth + 1)?;
                    let key_len = self.trail.pop().map_or(0, |k| k.len() as u64 + 1);
                    c.add_child(&cc, key_len);
                }
                c.plain = None;
            }
            Object::Tuple(items) | Object::List(items) | Object::Set(items) => {
                let mut plain = Some(2 * JSON_VALUE);
                for (i, child) in items.iter().enumerate() {
                    self.trail.push(i.to_string());
                    let cc = self.measure(child, depth + 1)?;
                    let key_len = self.trail.pop().map_or(0, |k| k.len() as u64 + 1);
                    c.add_child(&cc, key_len);
                    plain = plain.zip(cc.plain).map(|(a, b)| a.saturating_add(b));
                }
                if let Some(size) = plain {
                    // A sequence of scalars is one extra holding its JSON array.
                    c = Cost {
                        extras: 1,
                        extra_bytes: size,
                        plain,
                        height: c.height,
                        ..Cost::default()
                    };
                }
            }
        }
        self.open.remove(&id);
        self.costs.insert(id, c);
        Ok(c)
    }

    fn too_deep(&self) -> Error {
        Error::invalid(
            self.path,
            format!(
                "'{}': containers nested deeper than {MAX_DEPTH} levels (or a container that holds itself)",
                self.trail.join(".")
            ),
        )
    }

    /// Refuses a tree that would produce more than a checkpoint ever holds.
    fn check_budget(&self, c: &Cost, name: &str) -> Result<()> {
        let names = c
            .names
            .saturating_add(c.leaves().saturating_mul(name.len() as u64 + 1));
        let over = if c.tensors > MAX_TENSORS {
            Some(format!(
                "{} tensors (at most {MAX_TENSORS} are read)",
                c.tensors
            ))
        } else if c.extras > MAX_EXTRAS {
            Some(format!(
                "{} non-tensor values (at most {MAX_EXTRAS} are read)",
                c.extras
            ))
        } else if names > MAX_NAME_BYTES {
            Some(format!(
                "{names} bytes of names (at most {MAX_NAME_BYTES} are read)"
            ))
        } else if c.extra_bytes > MAX_EXTRA_BYTES {
            Some(format!(
                "about {} bytes of non-tensor values (at most {MAX_EXTRA_BYTES} are read)",
                c.extra_bytes
            ))
        } else {
            None
        };
        match over {
            None => Ok(()),
            Some(what) => Err(Error::invalid(
                self.path,
                format!(
                    "the pickle's containers share references so that flattening them would name {what}; \
                     refused as a pickle bomb (nothing was expanded)"
                ),
            )),
        }
    }

    /// JSON text size estimate of a scalar (what `plain_json` makes of it).
    fn scalar_json_size(&self, v: &Value) -> u64 {
        match v {
            Value::Str(s) => s.len() as u64 + 2,
            Value::Bytes(b) => 2 * b.len() as u64 + 2,
            Value::Symbol(s) => s.len() as u64 + 2,
            Value::Storage(i) => self.m.storages[*i].key.len() as u64 + 24,
            _ => 48,
        }
    }

    fn walk(&mut self, v: &Value, name: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(
                self.path,
                format!("'{name}': containers nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match v {
            Value::Tensor(i) => {
                let t = self.tensor(*i, name)?;
                self.out.tensors.push(t);
            }
            Value::Object(id) => match &self.m.objects[*id] {
                Object::Dict(d) => {
                    if d.entries.is_empty() && !name.is_empty() {
                        self.out
                            .extras
                            .insert(name.to_string(), Json::Object(Default::default()));
                    }
                    for (k, child) in &d.entries {
                        let key = key_text(k).ok_or_else(|| {
                            Error::invalid(
                                self.path,
                                format!("'{name}': a dict key is a {}", k.kind(self.m)),
                            )
                        })?;
                        self.walk(child, &join(name, &key), depth + 1)?;
                    }
                }
                Object::Tuple(items) | Object::List(items) | Object::Set(items) => {
                    // Measured up front: whether the sequence holds a dict or a tensor is known
                    // without trying to render it (which a shared tree would make exponential).
                    let plain = self.costs.get(id).is_some_and(|c| c.plain.is_some());
                    if let Some(json) = plain.then(|| self.plain_json(v, depth)).flatten() {
                        self.out.extras.insert(name.to_string(), json);
                    } else {
                        for (i, child) in items.iter().enumerate() {
                            self.walk(child, &join(name, &i.to_string()), depth + 1)?;
                        }
                    }
                }
            },
            other => {
                let json = self.plain_json(other, depth).unwrap_or(Json::Null);
                self.out.extras.insert(name.to_string(), json);
            }
        }
        Ok(())
    }

    /// The JSON form of a value made only of scalars and sequences of scalars; None when it holds
    /// a dict or a tensor (those are walked instead).
    fn plain_json(&self, v: &Value, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match v {
            Value::None => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => {
                if let Ok(x) = i64::try_from(*i) {
                    Json::from(x)
                } else if let Ok(x) = u64::try_from(*i) {
                    Json::from(x)
                } else {
                    Json::String(i.to_string())
                }
            }
            Value::Float(f) => float_json(*f),
            Value::Complex(re, im) => Json::Array(vec![float_json(*re), float_json(*im)]),
            Value::Str(s) => Json::String(s.to_string()),
            Value::Bytes(b) => Json::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Global(g) => Json::String(global_text(g)),
            Value::Symbol(s) => Json::String(s.to_string()),
            Value::Storage(i) => {
                Json::String(format!("<torch storage '{}'>", self.m.storages[*i].key))
            }
            Value::Opaque => Json::String("<object>".into()),
            Value::Tensor(_) => return None,
            Value::Object(id) => match &self.m.objects[*id] {
                Object::Dict(_) => return None,
                Object::Tuple(items) | Object::List(items) | Object::Set(items) => Json::Array(
                    items
                        .iter()
                        .map(|x| self.plain_json(x, depth + 1))
                        .collect::<Option<Vec<_>>>()?,
                ),
            },
        })
    }

    /// The core tensor for pickled tensor `i`, named `name`.
    fn tensor(&self, i: usize, name: &str) -> Result<Tensor> {
        let rec = &self.m.tensors[i];
        let storage = self.storages[rec.storage].clone();
        let Some(dtype) = rec.dtype.dtype else {
            return Err(Error::Unsupported(format!(
                "{}: tensor '{name}' has torch dtype {}, which safetensors cannot represent",
                self.path.display(),
                rec.dtype.name
            )));
        };
        let contiguous = is_contiguous(&rec.shape, &rec.strides);
        let (shape, offset, strides) = if dtype == DType::F4 {
            // torch's float4_e2m1fn_x2 packs two values per element; safetensors F4 counts values.
            let (Some(&last), true) = (rec.shape.last(), contiguous) else {
                return Err(Error::Unsupported(format!(
                    "{}: tensor '{name}' (float4_e2m1fn_x2, shape {:?}, strides {:?}): only contiguous tensors of at \
                     least one dimension are supported",
                    self.path.display(),
                    rec.shape,
                    rec.strides
                )));
            };
            let (Some(values), Some(offset)) = (last.checked_mul(2), rec.offset.checked_mul(2))
            else {
                return Err(Error::invalid(
                    self.path,
                    format!("tensor '{name}': float4 size or offset overflows"),
                ));
            };
            let mut shape = rec.shape.clone();
            *shape.last_mut().unwrap() = values;
            (shape, offset, None)
        } else {
            let strides = (!contiguous).then(|| rec.strides.clone());
            (rec.shape.clone(), rec.offset, strides)
        };
        let t = Tensor {
            name: name.to_string(),
            dtype,
            shape,
            data: TensorData::View(View {
                storage,
                offset,
                strides,
            }),
        };
        t.validate()?;
        Ok(t)
    }
}

impl Cost {
    /// Adds a child reached through a key of `key_len` bytes (with its `.`).
    fn add_child(&mut self, c: &Cost, key_len: u64) {
        self.tensors = self.tensors.saturating_add(c.tensors);
        self.extras = self.extras.saturating_add(c.extras);
        self.names = self
            .names
            .saturating_add(c.names)
            .saturating_add(c.leaves().saturating_mul(key_len));
        self.extra_bytes = self.extra_bytes.saturating_add(c.extra_bytes);
        self.height = self.height.max(c.height + 1);
    }
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or_else(|| Json::String(f.to_string()))
}

fn global_text(g: &Global) -> String {
    match g {
        Global::DType(d) => format!("torch.{}", d.name),
        Global::Unsupported(name) => format!("torch.{name}"),
        Global::Storage(c) => c.name(),
        other => format!("{other:?}"),
    }
}
