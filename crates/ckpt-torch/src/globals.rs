//! The allowlist: the only pickle globals a checkpoint may name, resolved symbolically.
//!
//! Nothing here imports or calls anything. A `GLOBAL module name` opcode is looked up in this
//! table; a name that is not in it (whatever it is, `os.system`, `builtins.eval`, its Python 2
//! spelling `__builtin__.eval`, ...) is refused by the pickle machine.

use ckpt_core::DType;

/// A torch element type as the pickle names it, with what ckpt can do with it.
#[derive(Debug, PartialEq, Eq)]
pub struct TorchDType {
    /// torch's name without the `torch.` prefix (`float32`, `float8_e4m3fn`, `complex128`).
    pub name: &'static str,
    /// Bytes per element of the torch dtype (`float4_e2m1fn_x2` packs two values in one byte).
    pub elem_size: u64,
    /// The safetensors / core dtype, or None when safetensors has no equivalent.
    pub dtype: Option<DType>,
    /// The legacy typed storage class (`FloatStorage`), for dtypes that have one.
    pub(crate) storage_class: Option<&'static str>,
}

const fn row(
    name: &'static str,
    elem_size: u64,
    dtype: Option<DType>,
    storage_class: Option<&'static str>,
) -> TorchDType {
    TorchDType {
        name,
        elem_size,
        dtype,
        storage_class,
    }
}

/// Every torch dtype a checkpoint can name (torch 2.15), including those ckpt refuses to convert.
pub(crate) static TORCH_DTYPES: &[TorchDType] = &[
    row("float64", 8, Some(DType::F64), Some("DoubleStorage")),
    row("float32", 4, Some(DType::F32), Some("FloatStorage")),
    row("float16", 2, Some(DType::F16), Some("HalfStorage")),
    row("bfloat16", 2, Some(DType::BF16), Some("BFloat16Storage")),
    row("int64", 8, Some(DType::I64), Some("LongStorage")),
    row("int32", 4, Some(DType::I32), Some("IntStorage")),
    row("int16", 2, Some(DType::I16), Some("ShortStorage")),
    row("int8", 1, Some(DType::I8), Some("CharStorage")),
    row("uint8", 1, Some(DType::U8), Some("ByteStorage")),
    row("bool", 1, Some(DType::Bool), Some("BoolStorage")),
    row(
        "complex64",
        8,
        Some(DType::C64),
        Some("ComplexFloatStorage"),
    ),
    row("complex128", 16, None, Some("ComplexDoubleStorage")),
    row("complex32", 4, None, None),
    row("qint8", 1, None, Some("QInt8Storage")),
    row("quint8", 1, None, Some("QUInt8Storage")),
    row("qint32", 4, None, Some("QInt32Storage")),
    row("quint4x2", 1, None, Some("QUInt4x2Storage")),
    row("quint2x4", 1, None, Some("QUInt2x4Storage")),
    row("float8_e4m3fn", 1, Some(DType::F8E4M3), None),
    row("float8_e5m2", 1, Some(DType::F8E5M2), None),
    row("float8_e4m3fnuz", 1, Some(DType::F8E4M3Fnuz), None),
    row("float8_e5m2fnuz", 1, Some(DType::F8E5M2Fnuz), None),
    row("float8_e8m0fnu", 1, Some(DType::F8E8M0), None),
    row("float4_e2m1fn_x2", 1, Some(DType::F4), None),
    row("uint16", 2, Some(DType::U16), None),
    row("uint32", 4, Some(DType::U32), None),
    row("uint64", 8, Some(DType::U64), None),
    row("bits1x8", 1, None, None),
    row("bits2x4", 1, None, None),
    row("bits4x2", 1, None, None),
    row("bits8", 1, None, None),
    row("bits16", 2, None, None),
    row("uint1", 1, None, None),
    row("uint2", 1, None, None),
    row("uint3", 1, None, None),
    row("uint4", 1, None, None),
    row("uint5", 1, None, None),
    row("uint6", 1, None, None),
    row("uint7", 1, None, None),
    row("int1", 1, None, None),
    row("int2", 1, None, None),
    row("int3", 1, None, None),
    row("int4", 1, None, None),
    row("int5", 1, None, None),
    row("int6", 1, None, None),
    row("int7", 1, None, None),
];

/// The torch dtype named `torch.<name>` in a pickle (`float32`, `bfloat16`, ...).
pub(crate) fn torch_dtype_by_name(name: &str) -> Option<&'static TorchDType> {
    TORCH_DTYPES.iter().find(|d| d.name == name)
}

/// The torch dtype ckpt writes for a core dtype.
pub(crate) fn torch_dtype_for(dtype: DType) -> Option<&'static TorchDType> {
    TORCH_DTYPES.iter().find(|d| d.dtype == Some(dtype))
}

/// The class named in a storage persistent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    /// `torch.FloatStorage` and friends: numel counts elements of that dtype.
    Typed(&'static TorchDType),
    /// `torch.storage.UntypedStorage`: numel counts bytes; the tensor names its dtype.
    Untyped,
    /// `torch.storage.TypedStorage` without a dtype of its own.
    TypedGeneric,
}

impl StorageClass {
    /// Bytes per unit of the persistent id's numel, when known.
    pub(crate) fn unit_size(self) -> Option<u64> {
        match self {
            StorageClass::Typed(d) => Some(d.elem_size),
            StorageClass::Untyped => Some(1),
            StorageClass::TypedGeneric => None,
        }
    }

    /// The class as the pickle names it (`torch.FloatStorage`, `torch.storage.UntypedStorage`).
    pub(crate) fn name(self) -> String {
        match self {
            StorageClass::Typed(d) => format!("torch.{}", d.storage_class.unwrap_or(d.name)),
            StorageClass::Untyped => "torch.storage.UntypedStorage".into(),
            StorageClass::TypedGeneric => "torch.storage.TypedStorage".into(),
        }
    }
}

/// The tensor-rebuilding functions of `torch._utils`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`
    Tensor,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    TensorV2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`
    TensorV3,
    /// `_rebuild_parameter(data, requires_grad, hooks)`
    Parameter,
    /// `_rebuild_parameter_with_state(data, requires_grad, hooks, state)`
    ParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`
    FromTypeV2,
}

/// Every global a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`, the container of a state dict.
    OrderedDict,
    /// One of the `torch._utils` tensor-rebuilding functions.
    Rebuild(Rebuild),
    /// A storage class named in a persistent id.
    Storage(StorageClass),
    /// A dtype object (`torch.float32`, ...), an argument of `_rebuild_tensor_v3`.
    DType(&'static TorchDType),
    /// `torch.Size(tuple)`
    Size,
    /// `torch.device('cpu')`
    Device,
    /// `torch.Tensor`, a type argument of `_rebuild_from_type_v2`.
    TensorClass,
    /// `torch.nn.parameter.Parameter`, likewise.
    ParameterClass,
    /// `_codecs.encode(str, 'latin1')`: how protocol 2 spells bytes.
    CodecsEncode,
    /// `builtins.set` (Python 2: `__builtin__.set`).
    Set,
    /// `builtins.complex`.
    Complex,
    /// `builtins.bytearray`.
    ByteArray,
    /// A torch global that is harmless but builds something ckpt cannot convert (quantized,
    /// sparse, meta or subclass tensors, and the layout / qscheme values they take).
    Unsupported(&'static str),
}

/// torch globals the safe loader accepts whose tensors have no safetensors form: refused as
/// unsupported rather than unsafe.
static UNSUPPORTED_TORCH_GLOBALS: &[(&str, &str)] = &[
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
    ("torch.serialization", "_get_layout"),
    ("torch", "per_tensor_affine"),
    ("torch", "per_channel_affine"),
    ("torch", "per_tensor_symmetric"),
    ("torch", "per_channel_symmetric"),
    ("torch", "per_channel_affine_float_qparams"),
    ("torch", "sparse_coo"),
    ("torch", "sparse_csr"),
    ("torch", "sparse_csc"),
    ("torch", "sparse_bsr"),
    ("torch", "sparse_bsc"),
];

/// The tensor classes of torch < 0.4 (`torch.FloatTensor`, ...), named by the legacy tar
/// format's `tensors` member: harmless types, but nothing ckpt builds.
const LEGACY_TENSOR_TYPES: &[&str] = &[
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "ByteTensor",
    "CharTensor",
    "ShortTensor",
    "IntTensor",
    "LongTensor",
];

/// Resolves `module.name` against the allowlist; None means the global is refused.
pub fn resolve(module: &str, name: &str) -> Option<Global> {
    if let Some(&(m, n)) = UNSUPPORTED_TORCH_GLOBALS
        .iter()
        .find(|&&(m, n)| m == module && n == name)
    {
        return Some(Global::Unsupported(if m == "torch" {
            n
        } else {
            n.trim_start_matches('_')
        }));
    }
    let global = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::Rebuild(Rebuild::Tensor),
        ("torch._utils", "_rebuild_tensor_v2") => Global::Rebuild(Rebuild::TensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Global::Rebuild(Rebuild::TensorV3),
        ("torch._utils", "_rebuild_parameter") => Global::Rebuild(Rebuild::Parameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Global::Rebuild(Rebuild::ParameterWithState)
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Global::Rebuild(Rebuild::FromTypeV2),
        ("torch.storage", "UntypedStorage") | ("torch", "UntypedStorage") => {
            Global::Storage(StorageClass::Untyped)
        }
        ("torch.storage", "TypedStorage") | ("torch", "TypedStorage") => {
            Global::Storage(StorageClass::TypedGeneric)
        }
        ("torch", "Size") => Global::Size,
        ("torch", "device") => Global::Device,
        ("torch", "Tensor") => Global::TensorClass,
        ("torch.nn.parameter", "Parameter") => Global::ParameterClass,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("builtins" | "__builtin__", "set") => Global::Set,
        ("builtins" | "__builtin__", "complex") => Global::Complex,
        ("builtins" | "__builtin__", "bytearray") => Global::ByteArray,
        ("torch" | "torch.cuda", class) if class.ends_with("Storage") => {
            let dtype = TORCH_DTYPES
                .iter()
                .find(|d| d.storage_class == Some(class))?;
            Global::Storage(StorageClass::Typed(dtype))
        }
        ("torch" | "torch.cuda", class) if LEGACY_TENSOR_TYPES.contains(&class) => {
            Global::Unsupported("legacy tensor type")
        }
        ("torch", dtype) => Global::DType(torch_dtype_by_name(dtype)?),
        _ => return None,
    };
    Some(global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_accepts_checkpoint_globals() {
        assert_eq!(
            resolve("collections", "OrderedDict"),
            Some(Global::OrderedDict)
        );
        assert!(
            matches!(resolve("torch", "FloatStorage"), Some(Global::Storage(StorageClass::Typed(d))) if d.name == "float32")
        );
        assert!(
            matches!(resolve("torch.cuda", "HalfStorage"), Some(Global::Storage(StorageClass::Typed(d))) if d.name == "float16")
        );
        assert!(
            matches!(resolve("torch", "float8_e4m3fn"), Some(Global::DType(d)) if d.dtype == Some(DType::F8E4M3))
        );
        assert_eq!(
            resolve("torch.storage", "UntypedStorage"),
            Some(Global::Storage(StorageClass::Untyped))
        );
        assert_eq!(
            resolve("torch._utils", "_rebuild_qtensor"),
            Some(Global::Unsupported("rebuild_qtensor"))
        );
        assert_eq!(
            resolve("torch", "per_tensor_affine"),
            Some(Global::Unsupported("per_tensor_affine"))
        );
    }

    #[test]
    fn allowlist_refuses_everything_else() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("__builtin__", "eval"),
            ("builtins", "getattr"),
            ("subprocess", "call"),
            ("commands", "call"),
            ("torch", "load"),
            ("torch", "FakeStorage"),
            ("torch.cuda", "float32"),
            ("collections", "defaultdict"),
        ] {
            assert_eq!(resolve(m, n), None, "{m}.{n} must be refused");
        }
    }
}
