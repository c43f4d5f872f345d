//! What the allowlisted callables do when a pickle calls them (REDUCE / NEWOBJ), and how storage
//! persistent ids are interpreted. Everything here builds plain values; nothing is imported or run.

use std::rc::Rc;

use ckpt_core::{Error, Result};

use crate::globals::{Global, Rebuild, StorageClass, TorchDType};
use crate::pickle::{
    Dict, Machine, Mode, Object, PersistentIds, PickledStorage, TensorRecord, Value,
};

/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 256;

impl Machine<'_> {
    fn args_of(&self, args: &Value, what: &str) -> Result<Vec<Value>> {
        match args {
            Value::Object(id) => match &self.objects[*id] {
                Object::Tuple(items) => Ok(items.clone()),
                _ => Err(self.err(format!(
                    "arguments of {what} are a {}, not a tuple",
                    args.kind(self)
                ))),
            },
            _ => Err(self.err(format!(
                "arguments of {what} are a {}, not a tuple",
                args.kind(self)
            ))),
        }
    }

    /// `callable(*args)` for an allowlisted global.
    pub(crate) fn reduce(&mut self, g: Global, args: Value) -> Result<Value> {
        let what = format!("{g:?}");
        let args = self.args_of(&args, &what)?;
        match g {
            Global::OrderedDict => {
                let mut dict = Dict::new(true);
                match args.as_slice() {
                    [] => {}
                    [pairs] => {
                        let pairs = self
                            .sequence(pairs)
                            .ok_or_else(|| self.err("OrderedDict() of a non-sequence"))?;
                        for p in pairs {
                            match self.sequence(p) {
                                Some([k, v]) => dict.insert(k.clone(), v.clone()),
                                _ => {
                                    return Err(
                                        self.err("OrderedDict() item is not a (key, value) pair")
                                    )
                                }
                            }
                        }
                    }
                    _ => return Err(self.err("OrderedDict() takes at most one argument")),
                }
                self.new_object(Object::Dict(dict))
            }
            Global::Rebuild(r) => self.rebuild(r, args),
            Global::Size => match args.as_slice() {
                [dims] => {
                    let dims = self
                        .sequence(dims)
                        .ok_or_else(|| self.err("torch.Size() of a non-sequence"))?
                        .to_vec();
                    self.new_tuple(dims)
                }
                _ => Err(self.err("torch.Size() takes one argument")),
            },
            Global::Device => match args.first() {
                Some(Value::Str(s)) => Ok(Value::Str(s.clone())),
                _ => Err(self.err("torch.device() needs a device name")),
            },
            Global::CodecsEncode => match args.as_slice() {
                [Value::Str(s), Value::Str(enc)] => self.encode(s, enc),
                _ => Err(self.err("_codecs.encode() needs a string and an encoding")),
            },
            Global::ByteArray => match args.as_slice() {
                [] => Ok(Value::Bytes(Rc::from(&[][..]))),
                [Value::Bytes(b)] => Ok(Value::Bytes(b.clone())),
                [Value::Str(s), Value::Str(enc)] => self.encode(s, enc),
                _ => Err(self.err("unsupported bytearray() arguments")),
            },
            Global::Set => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [seq] => self.set_items_of(seq)?,
                    _ => return Err(self.err("set() takes at most one argument")),
                };
                self.new_object(Object::Set(items))
            }
            Global::Complex => {
                let num = |v: Option<&Value>| match v {
                    None => Some(0.0),
                    Some(Value::Int(i)) => Some(*i as f64),
                    Some(Value::Float(f)) => Some(*f),
                    _ => None,
                };
                match (args.len() <= 2).then(|| (num(args.first()), num(args.get(1)))) {
                    Some((Some(re), Some(im))) => Ok(Value::Complex(re, im)),
                    _ => Err(self.err("complex() needs one or two numbers")),
                }
            }
            Global::Storage(_)
            | Global::DType(_)
            | Global::TensorClass
            | Global::ParameterClass => {
                Err(self.err(format!("{what} cannot be called in a checkpoint")))
            }
            Global::Unsupported(name) => Err(self.unsupported(name)),
        }
    }

    fn set_items_of(&self, seq: &Value) -> Result<Vec<Value>> {
        match seq {
            Value::Object(id) => match &self.objects[*id] {
                Object::Tuple(v) | Object::List(v) | Object::Set(v) => Ok(v.clone()),
                Object::Dict(d) => Ok(d.entries.iter().map(|(k, _)| k.clone()).collect()),
            },
            other => Err(self.err(format!("set() of a {}", other.kind(self)))),
        }
    }

    fn encode(&self, s: &str, encoding: &str) -> Result<Value> {
        match encoding.to_ascii_lowercase().replace('_', "-").as_str() {
            "latin1" | "latin-1" | "iso-8859-1" => {
                let bytes: Option<Vec<u8>> =
                    s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                bytes
                    .map(|b| Value::Bytes(b.into()))
                    .ok_or_else(|| self.err("latin-1 text holds a character above U+00FF"))
            }
            "utf-8" | "utf8" => Ok(Value::Bytes(s.as_bytes().into())),
            other => Err(self.err(format!(
                "_codecs.encode() with unsupported encoding '{other}'"
            ))),
        }
    }

    fn unsupported(&self, name: &str) -> Error {
        let what = match name {
            "rebuild_qtensor" => "quantized tensors",
            "rebuild_sparse_tensor" | "get_layout" => "sparse tensors",
            "rebuild_nested_tensor" => "nested tensors",
            "rebuild_meta_tensor_no_storage" => "meta tensors (they hold no data)",
            "rebuild_wrapper_subclass" => "tensor subclasses",
            _ => "tensors of this kind",
        };
        Error::Unsupported(format!(
            "{}: {}: pickle byte {}: {what} ({name}) cannot be converted",
            self.path.display(),
            self.label,
            self.at
        ))
    }

    /// `cls.__new__(cls, *args)` (NEWOBJ) for the few classes that can be created empty.
    pub(crate) fn new_instance(&mut self, g: Global, args: Value) -> Result<Value> {
        let _ = self.args_of(&args, "NEWOBJ")?;
        match g {
            Global::OrderedDict => self.new_object(Object::Dict(Dict::new(true))),
            Global::Set => self.new_object(Object::Set(Vec::new())),
            other => Err(self.err(format!("NEWOBJ of {other:?} is not supported"))),
        }
    }

    fn rebuild(&mut self, r: Rebuild, args: Vec<Value>) -> Result<Value> {
        match r {
            Rebuild::Tensor => match args.as_slice() {
                [storage, offset, size, stride] => {
                    self.make_tensor(storage, offset, size, stride, None)
                }
                _ => Err(self.err(format!(
                    "_rebuild_tensor takes 4 arguments, got {}",
                    args.len()
                ))),
            },
            Rebuild::TensorV2 => match args.as_slice() {
                [storage, offset, size, stride, _requires_grad, _hooks]
                | [storage, offset, size, stride, _requires_grad, _hooks, _] => {
                    self.make_tensor(storage, offset, size, stride, None)
                }
                _ => Err(self.err(format!(
                    "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                    args.len()
                ))),
            },
            Rebuild::TensorV3 => match args.as_slice() {
                [storage, offset, size, stride, _requires_grad, _hooks, dtype]
                | [storage, offset, size, stride, _requires_grad, _hooks, dtype, _] => {
                    let Value::Global(Global::DType(dtype)) = dtype else {
                        return Err(self.err(format!(
                            "_rebuild_tensor_v3 dtype argument is a {}",
                            dtype.kind(self)
                        )));
                    };
                    self.make_tensor(storage, offset, size, stride, Some(dtype))
                }
                _ => Err(self.err(format!(
                    "_rebuild_tensor_v3 takes 7 or 8 arguments, got {}",
                    args.len()
                ))),
            },
            // A parameter is its data tensor; the grad flag and hooks do not matter to a converter.
            Rebuild::Parameter | Rebuild::ParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) if (3..=4).contains(&args.len()) => Ok(t.clone()),
                _ => Err(self.err("_rebuild_parameter needs a tensor and its flags")),
            },
            Rebuild::FromTypeV2 => {
                let [func, class, inner, _state] = args.as_slice() else {
                    return Err(self.err(format!(
                        "_rebuild_from_type_v2 takes 4 arguments, got {}",
                        args.len()
                    )));
                };
                let Value::Global(Global::Rebuild(inner_rebuild)) = func else {
                    return Err(self
                        .err("_rebuild_from_type_v2 wraps something other than a tensor rebuild"));
                };
                if *inner_rebuild == Rebuild::FromTypeV2 {
                    return Err(self.err("_rebuild_from_type_v2 wraps itself"));
                }
                if !matches!(
                    class,
                    Value::Global(Global::TensorClass | Global::ParameterClass)
                ) {
                    return Err(
                        self.err("_rebuild_from_type_v2 of a type other than Tensor / Parameter")
                    );
                }
                let inner = self.args_of(inner, "_rebuild_from_type_v2")?;
                self.rebuild(*inner_rebuild, inner)
            }
        }
    }

    fn dims(&self, v: &Value, what: &str) -> Result<Vec<u64>> {
        let items = self
            .sequence(v)
            .ok_or_else(|| self.err(format!("tensor {what} is a {}, not a tuple", v.kind(self))))?;
        if items.len() > MAX_DIMS {
            return Err(self.err(format!(
                "tensor has {} dimensions (at most {MAX_DIMS} are supported)",
                items.len()
            )));
        }
        items
            .iter()
            .map(|d| match d {
                Value::Int(i) => {
                    u64::try_from(*i).map_err(|_| self.err(format!("tensor {what} holds {i}")))
                }
                other => Err(self.err(format!("tensor {what} holds a {}", other.kind(self)))),
            })
            .collect()
    }

    fn make_tensor(
        &mut self,
        storage: &Value,
        offset: &Value,
        size: &Value,
        stride: &Value,
        dtype: Option<&'static TorchDType>,
    ) -> Result<Value> {
        let Value::Storage(index) = *storage else {
            return Err(self.err(format!(
                "tensor rebuilt from a {}, not a storage",
                storage.kind(self)
            )));
        };
        let offset = match offset {
            Value::Int(i) => u64::try_from(*i)
                .map_err(|_| self.err(format!("storage offset {i} is negative")))?,
            other => return Err(self.err(format!("storage offset is a {}", other.kind(self)))),
        };
        let shape = self.dims(size, "size")?;
        let strides = self.dims(stride, "stride")?;
        if shape.len() != strides.len() {
            return Err(self.err(format!(
                "tensor has {} sizes but {} strides",
                shape.len(),
                strides.len()
            )));
        }
        let class = self.storages[index].class;
        let dtype = match (dtype, class) {
            (Some(d), _) => d,
            (None, StorageClass::Typed(d)) => d,
            (None, _) => {
                return Err(self.err(format!(
                    "tensor of storage '{}' ({}) does not say its dtype",
                    self.storages[index].key,
                    class.name()
                )))
            }
        };
        self.tensors.push(TensorRecord {
            storage: index,
            dtype,
            offset,
            shape,
            strides,
        });
        Ok(Value::Tensor(self.tensors.len() - 1))
    }

    /// Interprets `('storage', class, key, location, numel[, view_metadata])`.
    pub(crate) fn persistent_load(&mut self, pid: Value) -> Result<Value> {
        if self.mode == Mode::Scan {
            return Ok(Value::Opaque);
        }
        if self.persistent_ids == PersistentIds::Forbidden {
            return Err(self.err("unexpected persistent id"));
        }
        let items = self
            .sequence(&pid)
            .ok_or_else(|| self.err(format!("persistent id is a {}", pid.kind(self))))?
            .to_vec();
        match items.first() {
            Some(Value::Str(tag)) if &**tag == "storage" => {}
            Some(Value::Str(tag)) if &**tag == "module" => return Err(self.err(
                "the checkpoint pickles whole nn.Module objects; only state dicts are supported",
            )),
            _ => return Err(self.err("persistent id is not a ('storage', ...) tuple")),
        }
        let (class, key, numel) = match items.as_slice() {
            [_, class, key, _location, numel] => (class, key, numel),
            [_, class, key, _location, numel, view]
                if self.persistent_ids == PersistentIds::Legacy =>
            {
                if !matches!(view, Value::None) {
                    return Err(
                        self.err("legacy storage views (pre-1.0 checkpoints) are not supported")
                    );
                }
                (class, key, numel)
            }
            _ => return Err(self.err(format!("storage persistent id has {} fields", items.len()))),
        };
        let Value::Global(Global::Storage(class)) = class else {
            return Err(self.err(format!(
                "storage persistent id names a {} as its class",
                class.kind(self)
            )));
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return Err(self.err(format!("storage key is a {}", other.kind(self)))),
        };
        let numel = match numel {
            Value::Int(i) => u64::try_from(*i)
                .map_err(|_| self.err(format!("storage '{key}' has {i} elements")))?,
            other => {
                return Err(self.err(format!("storage '{key}' size is a {}", other.kind(self))))
            }
        };
        if let Some(&index) = self.storage_index.get(&key) {
            let known = &self.storages[index];
            if known.class != *class || known.numel != numel {
                return Err(self.err(format!(
                    "storage '{key}' is declared as {} x {} and as {} x {}",
                    known.numel,
                    known.class.name(),
                    numel,
                    class.name()
                )));
            }
            return Ok(Value::Storage(index));
        }
        let storage = PickledStorage {
            key: key.clone(),
            class: *class,
            numel,
        };
        if storage.nbytes().is_none() && class.unit_size().is_some() {
            return Err(self.err(format!("storage '{key}' size overflows")));
        }
        self.storages.push(storage);
        self.storage_index.insert(key, self.storages.len() - 1);
        Ok(Value::Storage(self.storages.len() - 1))
    }
}
