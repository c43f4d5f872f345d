//! Element types: every safetensors/torch dtype plus ggml's block-quantized types.
//!
//! Shapes everywhere in ckpt are in row-major (numpy / torch) order, outermost dimension first.
//! For block-quantized ggml types the *last* dimension (ggml's `ne0`) is the one split into blocks.

use std::fmt;

/// ggml tensor types as numbered in `ggml.h`, with their block layout.
#[allow(non_camel_case_types)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgmlType {
    /// `GGML_TYPE_F32`: IEEE 754 single precision.
    F32 = 0,
    /// `GGML_TYPE_F16`: IEEE 754 half precision.
    F16 = 1,
    /// `GGML_TYPE_Q4_0`: blocks of 32 elements in 18 bytes.
    Q4_0 = 2,
    /// `GGML_TYPE_Q4_1`: blocks of 32 elements in 20 bytes.
    Q4_1 = 3,
    /// `GGML_TYPE_Q5_0`: blocks of 32 elements in 22 bytes.
    Q5_0 = 6,
    /// `GGML_TYPE_Q5_1`: blocks of 32 elements in 24 bytes.
    Q5_1 = 7,
    /// `GGML_TYPE_Q8_0`: blocks of 32 elements in 34 bytes.
    Q8_0 = 8,
    /// `GGML_TYPE_Q8_1`: blocks of 32 elements in 36 bytes.
    Q8_1 = 9,
    /// `GGML_TYPE_Q2_K`: blocks of 256 elements in 84 bytes.
    Q2_K = 10,
    /// `GGML_TYPE_Q3_K`: blocks of 256 elements in 110 bytes.
    Q3_K = 11,
    /// `GGML_TYPE_Q4_K`: blocks of 256 elements in 144 bytes.
    Q4_K = 12,
    /// `GGML_TYPE_Q5_K`: blocks of 256 elements in 176 bytes.
    Q5_K = 13,
    /// `GGML_TYPE_Q6_K`: blocks of 256 elements in 210 bytes.
    Q6_K = 14,
    /// `GGML_TYPE_Q8_K`: blocks of 256 elements in 292 bytes.
    Q8_K = 15,
    /// `GGML_TYPE_IQ2_XXS`: blocks of 256 elements in 66 bytes.
    IQ2_XXS = 16,
    /// `GGML_TYPE_IQ2_XS`: blocks of 256 elements in 74 bytes.
    IQ2_XS = 17,
    /// `GGML_TYPE_IQ3_XXS`: blocks of 256 elements in 98 bytes.
    IQ3_XXS = 18,
    /// `GGML_TYPE_IQ1_S`: blocks of 256 elements in 50 bytes.
    IQ1_S = 19,
    /// `GGML_TYPE_IQ4_NL`: blocks of 32 elements in 18 bytes.
    IQ4_NL = 20,
    /// `GGML_TYPE_IQ3_S`: blocks of 256 elements in 110 bytes.
    IQ3_S = 21,
    /// `GGML_TYPE_IQ2_S`: blocks of 256 elements in 82 bytes.
    IQ2_S = 22,
    /// `GGML_TYPE_IQ4_XS`: blocks of 256 elements in 136 bytes.
    IQ4_XS = 23,
    /// `GGML_TYPE_I8`: signed 8-bit integer.
    I8 = 24,
    /// `GGML_TYPE_I16`: signed 16-bit integer.
    I16 = 25,
    /// `GGML_TYPE_I32`: signed 32-bit integer.
    I32 = 26,
    /// `GGML_TYPE_I64`: signed 64-bit integer.
    I64 = 27,
    /// `GGML_TYPE_F64`: IEEE 754 double precision.
    F64 = 28,
    /// `GGML_TYPE_IQ1_M`: blocks of 256 elements in 56 bytes.
    IQ1_M = 29,
    /// `GGML_TYPE_BF16`: bfloat16 (the top half of an f32).
    BF16 = 30,
    /// `GGML_TYPE_TQ1_0`: blocks of 256 elements in 54 bytes.
    TQ1_0 = 34,
    /// `GGML_TYPE_TQ2_0`: blocks of 256 elements in 66 bytes.
    TQ2_0 = 35,
    /// `GGML_TYPE_MXFP4`: blocks of 32 elements in 17 bytes.
    MXFP4 = 39,
    /// `GGML_TYPE_NVFP4`: blocks of 64 elements in 36 bytes.
    NVFP4 = 40,
    /// `GGML_TYPE_Q1_0`: blocks of 128 elements in 18 bytes.
    Q1_0 = 41,
    /// `GGML_TYPE_Q2_0`: blocks of 64 elements in 18 bytes.
    Q2_0 = 42,
}

/// (type, name, elements per block, bytes per block)
const GGML_LAYOUT: &[(GgmlType, &str, usize, usize)] = &[
    (GgmlType::F32, "F32", 1, 4),
    (GgmlType::F16, "F16", 1, 2),
    (GgmlType::Q4_0, "Q4_0", 32, 18),
    (GgmlType::Q4_1, "Q4_1", 32, 20),
    (GgmlType::Q5_0, "Q5_0", 32, 22),
    (GgmlType::Q5_1, "Q5_1", 32, 24),
    (GgmlType::Q8_0, "Q8_0", 32, 34),
    (GgmlType::Q8_1, "Q8_1", 32, 36),
    (GgmlType::Q2_K, "Q2_K", 256, 84),
    (GgmlType::Q3_K, "Q3_K", 256, 110),
    (GgmlType::Q4_K, "Q4_K", 256, 144),
    (GgmlType::Q5_K, "Q5_K", 256, 176),
    (GgmlType::Q6_K, "Q6_K", 256, 210),
    (GgmlType::Q8_K, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, "IQ4_XS", 256, 136),
    (GgmlType::I8, "I8", 1, 1),
    (GgmlType::I16, "I16", 1, 2),
    (GgmlType::I32, "I32", 1, 4),
    (GgmlType::I64, "I64", 1, 8),
    (GgmlType::F64, "F64", 1, 8),
    (GgmlType::IQ1_M, "IQ1_M", 256, 56),
    (GgmlType::BF16, "BF16", 1, 2),
    (GgmlType::TQ1_0, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, "MXFP4", 32, 17),
    (GgmlType::NVFP4, "NVFP4", 64, 36),
    (GgmlType::Q1_0, "Q1_0", 128, 18),
    (GgmlType::Q2_0, "Q2_0", 64, 18),
];

impl GgmlType {
    /// Every type, in `ggml.h` order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        GGML_LAYOUT.iter().map(|e| e.0)
    }
    fn layout(self) -> &'static (GgmlType, &'static str, usize, usize) {
        GGML_LAYOUT
            .iter()
            .find(|e| e.0 == self)
            .expect("every GgmlType has a layout row")
    }
    /// The type numbered `id` in `ggml.h` (as a GGUF tensor info stores it); `None` for removed
    /// or unknown numbers.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_LAYOUT.iter().find(|e| e.0 as u32 == id).map(|e| e.0)
    }
    /// The number `ggml.h` gives this type.
    pub fn id(self) -> u32 {
        self as u32
    }
    /// ggml's name for the type (`Q4_K`, `F16`, ...).
    pub fn name(self) -> &'static str {
        self.layout().1
    }
    /// The type with this ggml name, in any case (`q8_0`).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GGML_LAYOUT
            .iter()
            .find(|e| e.1.eq_ignore_ascii_case(name))
            .map(|e| e.0)
    }
    /// Elements per block (`ggml_blck_size`; 1 for plain numbers).
    pub fn block_size(self) -> usize {
        self.layout().2
    }
    /// Bytes per block (`ggml_type_size`).
    pub fn type_size(self) -> usize {
        self.layout().3
    }
    /// Whether the type stores blocks of several elements (Q4_0, Q4_K, IQ2_XXS, MXFP4, ...).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }
    /// Bytes of one row of `n` elements, or None when `n` is not a whole number of blocks.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.type_size() as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An element type. Plain types are shared by safetensors, torch and GGUF; block-quantized ggml
/// types appear only in GGUF files.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Boolean, one byte per element (safetensors `BOOL`, torch `bool`).
    Bool,
    /// Unsigned 8-bit integer (`U8`, `uint8`).
    U8,
    /// Signed 8-bit integer (`I8`, `int8`).
    I8,
    /// Unsigned 16-bit integer (`U16`, `uint16`).
    U16,
    /// Signed 16-bit integer (`I16`, `int16`).
    I16,
    /// IEEE 754 half precision (`F16`, `float16`).
    F16,
    /// bfloat16, the top half of an f32 (`BF16`, `bfloat16`).
    BF16,
    /// Unsigned 32-bit integer (`U32`, `uint32`).
    U32,
    /// Signed 32-bit integer (`I32`, `int32`).
    I32,
    /// IEEE 754 single precision (`F32`, `float32`).
    F32,
    /// Unsigned 64-bit integer (`U64`, `uint64`).
    U64,
    /// Signed 64-bit integer (`I64`, `int64`).
    I64,
    /// IEEE 754 double precision (`F64`, `float64`).
    F64,
    /// Complex number of two f32, real part first (`C64`, `complex64`).
    C64,
    /// 8-bit float, 4 exponent and 3 mantissa bits, no infinities (`F8_E4M3`, `float8_e4m3fn`).
    F8E4M3,
    /// 8-bit float, 5 exponent and 2 mantissa bits (`F8_E5M2`, `float8_e5m2`).
    F8E5M2,
    /// 8-bit power-of-two scale, exponent bits only (`F8_E8M0`, `float8_e8m0fnu`).
    F8E8M0,
    /// `F8_E4M3FNUZ` / `float8_e4m3fnuz`: like E4M3, without negative zero.
    F8E4M3Fnuz,
    /// `F8_E5M2FNUZ` / `float8_e5m2fnuz`: like E5M2, without negative zero.
    F8E5M2Fnuz,
    /// 4-bit float E2M1, two elements per byte (`F4`; torch `float4_e2m1fn_x2` counts pairs).
    F4,
    /// 6-bit float E2M3, packed (`F6_E2M3`; no torch dtype).
    F6E2M3,
    /// 6-bit float E3M2, packed (`F6_E3M2`; no torch dtype).
    F6E3M2,
    /// A block-quantized ggml type (never F32/F16/BF16/I*/F64, which map to the plain variants).
    Ggml(GgmlType),
}

/// (dtype, safetensors name, bits per element, torch dtype name)
const PLAIN: &[(DType, &str, usize, &str)] = &[
    (DType::Bool, "BOOL", 8, "bool"),
    (DType::U8, "U8", 8, "uint8"),
    (DType::I8, "I8", 8, "int8"),
    (DType::U16, "U16", 16, "uint16"),
    (DType::I16, "I16", 16, "int16"),
    (DType::F16, "F16", 16, "float16"),
    (DType::BF16, "BF16", 16, "bfloat16"),
    (DType::U32, "U32", 32, "uint32"),
    (DType::I32, "I32", 32, "int32"),
    (DType::F32, "F32", 32, "float32"),
    (DType::U64, "U64", 64, "uint64"),
    (DType::I64, "I64", 64, "int64"),
    (DType::F64, "F64", 64, "float64"),
    (DType::C64, "C64", 64, "complex64"),
    (DType::F8E4M3, "F8_E4M3", 8, "float8_e4m3fn"),
    (DType::F8E5M2, "F8_E5M2", 8, "float8_e5m2"),
    (DType::F8E8M0, "F8_E8M0", 8, "float8_e8m0fnu"),
    (DType::F8E4M3Fnuz, "F8_E4M3FNUZ", 8, "float8_e4m3fnuz"),
    (DType::F8E5M2Fnuz, "F8_E5M2FNUZ", 8, "float8_e5m2fnuz"),
    (DType::F4, "F4", 4, "float4_e2m1fn_x2"),
    (DType::F6E2M3, "F6_E2M3", 6, ""),
    (DType::F6E3M2, "F6_E3M2", 6, ""),
];

impl DType {
    fn plain(self) -> Option<&'static (DType, &'static str, usize, &'static str)> {
        PLAIN.iter().find(|e| e.0 == self)
    }

    /// Every element-wise (non-ggml) dtype, in safetensors' table order.
    pub fn all_plain() -> impl Iterator<Item = DType> {
        PLAIN.iter().map(|e| e.0)
    }

    /// The dtype tag used in safetensors headers (`F32`, `BF16`, `F8_E4M3`, …).
    pub fn safetensors_name(self) -> Option<&'static str> {
        self.plain().map(|e| e.1)
    }

    /// The dtype of a safetensors header tag (exact case).
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        PLAIN.iter().find(|e| e.1 == name).map(|e| e.0)
    }

    /// torch's name without the `torch.` prefix (`float32`, `float8_e4m3fn`, …).
    pub fn torch_name(self) -> Option<&'static str> {
        self.plain().map(|e| e.3).filter(|n| !n.is_empty())
    }

    /// Bits per element for element-wise types; None for block-quantized types.
    pub fn bits(self) -> Option<usize> {
        self.plain().map(|e| e.2)
    }

    /// Bytes per element when that is a whole number (not F4/F6/block types).
    pub fn elem_size(self) -> Option<usize> {
        match self.bits() {
            Some(b) if b % 8 == 0 => Some(b / 8),
            _ => None,
        }
    }

    /// The unit in which bytes are swapped between big and little endian (complex swaps per half).
    pub fn swap_unit(self) -> usize {
        match self {
            DType::C64 => 4,
            _ => self.elem_size().unwrap_or(1),
        }
    }

    /// Whether the elements are floating point (any width, F8/F6/F4 included; not complex and
    /// not ggml block types).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F16
                | DType::BF16
                | DType::F32
                | DType::F64
                | DType::F8E4M3
                | DType::F8E5M2
                | DType::F8E8M0
                | DType::F8E4M3Fnuz
                | DType::F8E5M2Fnuz
                | DType::F4
                | DType::F6E2M3
                | DType::F6E3M2
        )
    }

    /// The ggml tensor type that stores this dtype in a GGUF file, if there is one.
    pub fn to_ggml(self) -> Option<GgmlType> {
        Some(match self {
            DType::F32 => GgmlType::F32,
            DType::F16 => GgmlType::F16,
            DType::BF16 => GgmlType::BF16,
            DType::F64 => GgmlType::F64,
            DType::I8 => GgmlType::I8,
            DType::I16 => GgmlType::I16,
            DType::I32 => GgmlType::I32,
            DType::I64 => GgmlType::I64,
            DType::Ggml(g) => g,
            _ => return None,
        })
    }

    /// The dtype of data stored as ggml type `t`: the plain variant for F32, F16, BF16, F64 and
    /// the integers, [`DType::Ggml`] for block types.
    pub fn from_ggml(t: GgmlType) -> DType {
        match t {
            GgmlType::F32 => DType::F32,
            GgmlType::F16 => DType::F16,
            GgmlType::BF16 => DType::BF16,
            GgmlType::F64 => DType::F64,
            GgmlType::I8 => DType::I8,
            GgmlType::I16 => DType::I16,
            GgmlType::I32 => DType::I32,
            GgmlType::I64 => DType::I64,
            other => DType::Ggml(other),
        }
    }

    /// Exact byte size of a dense tensor of this type and shape; errors on overflow or when the
    /// shape does not fit the type (sub-byte total, partial ggml block).
    pub fn nbytes(self, shape: &[u64]) -> Result<u64, String> {
        let numel =
            numel(shape).ok_or_else(|| format!("element count of shape {shape:?} overflows"))?;
        match self {
            DType::Ggml(g) => {
                let row = shape.last().copied().unwrap_or(1);
                if row % g.block_size() as u64 != 0 {
                    return Err(format!(
                        "row length {row} is not a multiple of the {} block size {}",
                        g.name(),
                        g.block_size()
                    ));
                }
                (numel / g.block_size() as u64)
                    .checked_mul(g.type_size() as u64)
                    .ok_or_else(|| format!("byte size of shape {shape:?} overflows"))
            }
            _ => {
                let bits = numel
                    .checked_mul(self.bits().unwrap() as u64)
                    .ok_or_else(|| format!("byte size of shape {shape:?} overflows"))?;
                if bits % 8 != 0 {
                    return Err(format!(
                        "{numel} elements of {self} do not fill whole bytes"
                    ));
                }
                Ok(bits / 8)
            }
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::Ggml(g) => f.write_str(g.name()),
            d => f.write_str(d.safetensors_name().unwrap()),
        }
    }
}

/// Product of the dimensions (1 for a 0-d scalar), None on overflow.
pub fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::all_plain() {
            assert_eq!(
                DType::from_safetensors_name(d.safetensors_name().unwrap()),
                Some(d)
            );
        }
        for g in GgmlType::all() {
            assert_eq!(GgmlType::from_id(g.id()), Some(g));
            assert_eq!(DType::from_ggml(g).to_ggml(), Some(g));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::F32.nbytes(&[]).unwrap(), 4);
        assert_eq!(DType::F32.nbytes(&[0, 4]).unwrap(), 0);
        assert!(DType::F4.nbytes(&[3]).is_err());
        assert_eq!(DType::F4.nbytes(&[4]).unwrap(), 2);
        assert_eq!(DType::F6E2M3.nbytes(&[4]).unwrap(), 3);
        assert_eq!(
            DType::Ggml(GgmlType::Q4_K).nbytes(&[2, 512]).unwrap(),
            4 * 144
        );
        assert!(DType::Ggml(GgmlType::Q4_K).nbytes(&[2, 100]).is_err());
        assert!(DType::F32.nbytes(&[u64::MAX, 2]).is_err());
    }
}
