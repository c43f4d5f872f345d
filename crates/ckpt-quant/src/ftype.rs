//! llama.cpp's `llama_ftype` (the `general.file_type` of a GGUF) and llama-quantize's names for it.

use ckpt_core::{Error, GgmlType, Result};
use std::fmt;

/// A whole-file quantization mix, numbered like `llama_ftype`.
#[allow(non_camel_case_types)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Ftype {
    /// `LLAMA_FTYPE_ALL_F32`: every tensor F32.
    F32 = 0,
    /// `LLAMA_FTYPE_MOSTLY_F16`: most tensors F16.
    F16 = 1,
    /// `LLAMA_FTYPE_MOSTLY_Q4_0`: most tensors Q4_0.
    Q4_0 = 2,
    /// `LLAMA_FTYPE_MOSTLY_Q4_1`: most tensors Q4_1.
    Q4_1 = 3,
    /// `LLAMA_FTYPE_MOSTLY_Q8_0`: most tensors Q8_0.
    Q8_0 = 7,
    /// `LLAMA_FTYPE_MOSTLY_Q5_0`: most tensors Q5_0.
    Q5_0 = 8,
    /// `LLAMA_FTYPE_MOSTLY_Q5_1`: most tensors Q5_1.
    Q5_1 = 9,
    /// `LLAMA_FTYPE_MOSTLY_Q2_K`: most tensors Q2_K.
    Q2_K = 10,
    /// `LLAMA_FTYPE_MOSTLY_Q3_K_S`: most tensors Q3_K (the small mix).
    Q3_K_S = 11,
    /// `LLAMA_FTYPE_MOSTLY_Q3_K_M`: most tensors Q3_K (the medium mix).
    Q3_K_M = 12,
    /// `LLAMA_FTYPE_MOSTLY_Q3_K_L`: most tensors Q3_K (the large mix).
    Q3_K_L = 13,
    /// `LLAMA_FTYPE_MOSTLY_Q4_K_S`: most tensors Q4_K (the small mix).
    Q4_K_S = 14,
    /// `LLAMA_FTYPE_MOSTLY_Q4_K_M`: most tensors Q4_K (the medium mix).
    Q4_K_M = 15,
    /// `LLAMA_FTYPE_MOSTLY_Q5_K_S`: most tensors Q5_K (the small mix).
    Q5_K_S = 16,
    /// `LLAMA_FTYPE_MOSTLY_Q5_K_M`: most tensors Q5_K (the medium mix).
    Q5_K_M = 17,
    /// `LLAMA_FTYPE_MOSTLY_Q6_K`: most tensors Q6_K.
    Q6_K = 18,
    /// `LLAMA_FTYPE_MOSTLY_IQ2_XXS`: most tensors IQ2_XXS.
    IQ2_XXS = 19,
    /// `LLAMA_FTYPE_MOSTLY_IQ2_XS`: most tensors IQ2_XS.
    IQ2_XS = 20,
    /// `LLAMA_FTYPE_MOSTLY_Q2_K_S`: most tensors Q2_K (the small mix).
    Q2_K_S = 21,
    /// `LLAMA_FTYPE_MOSTLY_IQ3_XS`: most tensors IQ3_S.
    IQ3_XS = 22,
    /// `LLAMA_FTYPE_MOSTLY_IQ3_XXS`: most tensors IQ3_XXS.
    IQ3_XXS = 23,
    /// `LLAMA_FTYPE_MOSTLY_IQ1_S`: most tensors IQ1_S.
    IQ1_S = 24,
    /// `LLAMA_FTYPE_MOSTLY_IQ4_NL`: most tensors IQ4_NL.
    IQ4_NL = 25,
    /// `LLAMA_FTYPE_MOSTLY_IQ3_S`: most tensors IQ3_S.
    IQ3_S = 26,
    /// `LLAMA_FTYPE_MOSTLY_IQ3_M`: most tensors IQ3_S.
    IQ3_M = 27,
    /// `LLAMA_FTYPE_MOSTLY_IQ2_S`: most tensors IQ2_XS.
    IQ2_S = 28,
    /// `LLAMA_FTYPE_MOSTLY_IQ2_M`: most tensors IQ2_S.
    IQ2_M = 29,
    /// `LLAMA_FTYPE_MOSTLY_IQ4_XS`: most tensors IQ4_XS.
    IQ4_XS = 30,
    /// `LLAMA_FTYPE_MOSTLY_IQ1_M`: most tensors IQ1_M.
    IQ1_M = 31,
    /// `LLAMA_FTYPE_MOSTLY_BF16`: most tensors BF16.
    BF16 = 32,
    /// `LLAMA_FTYPE_MOSTLY_TQ1_0`: most tensors TQ1_0.
    TQ1_0 = 36,
    /// `LLAMA_FTYPE_MOSTLY_TQ2_0`: most tensors TQ2_0.
    TQ2_0 = 37,
    /// `LLAMA_FTYPE_MOSTLY_MXFP4_MOE`: MXFP4 for the expert (3-D) tensors of
    /// a mixture-of-experts model, Q8_0 for the others.
    MXFP4_MOE = 38,
    /// `LLAMA_FTYPE_MOSTLY_NVFP4`: most tensors NVFP4.
    NVFP4 = 39,
    /// `LLAMA_FTYPE_MOSTLY_Q1_0`: most tensors Q1_0.
    Q1_0 = 40,
    /// `LLAMA_FTYPE_MOSTLY_Q2_0`: most tensors Q2_0.
    Q2_0 = 41,
}

/// (ftype, llama-quantize name, default tensor type) in llama-quantize's listing order.
const FTYPES: &[(Ftype, &str, GgmlType)] = &[
    (Ftype::Q4_0, "Q4_0", GgmlType::Q4_0),
    (Ftype::Q4_1, "Q4_1", GgmlType::Q4_1),
    (Ftype::MXFP4_MOE, "MXFP4_MOE", GgmlType::MXFP4),
    (Ftype::NVFP4, "NVFP4", GgmlType::NVFP4),
    (Ftype::Q5_0, "Q5_0", GgmlType::Q5_0),
    (Ftype::Q5_1, "Q5_1", GgmlType::Q5_1),
    (Ftype::Q1_0, "Q1_0", GgmlType::Q1_0),
    (Ftype::Q2_0, "Q2_0", GgmlType::Q2_0),
    (Ftype::IQ2_XXS, "IQ2_XXS", GgmlType::IQ2_XXS),
    (Ftype::IQ2_XS, "IQ2_XS", GgmlType::IQ2_XS),
    (Ftype::IQ2_S, "IQ2_S", GgmlType::IQ2_XS),
    (Ftype::IQ2_M, "IQ2_M", GgmlType::IQ2_S),
    (Ftype::IQ1_S, "IQ1_S", GgmlType::IQ1_S),
    (Ftype::IQ1_M, "IQ1_M", GgmlType::IQ1_M),
    (Ftype::TQ1_0, "TQ1_0", GgmlType::TQ1_0),
    (Ftype::TQ2_0, "TQ2_0", GgmlType::TQ2_0),
    (Ftype::Q2_K, "Q2_K", GgmlType::Q2_K),
    (Ftype::Q2_K_S, "Q2_K_S", GgmlType::Q2_K),
    (Ftype::IQ3_XXS, "IQ3_XXS", GgmlType::IQ3_XXS),
    (Ftype::IQ3_S, "IQ3_S", GgmlType::IQ3_S),
    (Ftype::IQ3_M, "IQ3_M", GgmlType::IQ3_S),
    (Ftype::IQ3_XS, "IQ3_XS", GgmlType::IQ3_S),
    (Ftype::Q3_K_S, "Q3_K_S", GgmlType::Q3_K),
    (Ftype::Q3_K_M, "Q3_K_M", GgmlType::Q3_K),
    (Ftype::Q3_K_L, "Q3_K_L", GgmlType::Q3_K),
    (Ftype::IQ4_NL, "IQ4_NL", GgmlType::IQ4_NL),
    (Ftype::IQ4_XS, "IQ4_XS", GgmlType::IQ4_XS),
    (Ftype::Q4_K_S, "Q4_K_S", GgmlType::Q4_K),
    (Ftype::Q4_K_M, "Q4_K_M", GgmlType::Q4_K),
    (Ftype::Q5_K_S, "Q5_K_S", GgmlType::Q5_K),
    (Ftype::Q5_K_M, "Q5_K_M", GgmlType::Q5_K),
    (Ftype::Q6_K, "Q6_K", GgmlType::Q6_K),
    (Ftype::Q8_0, "Q8_0", GgmlType::Q8_0),
    (Ftype::F16, "F16", GgmlType::F16),
    (Ftype::BF16, "BF16", GgmlType::BF16),
    (Ftype::F32, "F32", GgmlType::F32),
];

/// llama-quantize's short aliases: the plain K names mean the _M mix.
const ALIASES: &[(&str, Ftype)] = &[
    ("Q3_K", Ftype::Q3_K_M),
    ("Q4_K", Ftype::Q4_K_M),
    ("Q5_K", Ftype::Q5_K_M),
];

impl Ftype {
    fn entry(self) -> &'static (Ftype, &'static str, GgmlType) {
        FTYPES
            .iter()
            .find(|e| e.0 == self)
            .expect("every Ftype has a table row")
    }
    /// The number written as `general.file_type`.
    pub fn id(self) -> u32 {
        self as u32
    }
    /// The ftype numbered `id` (`general.file_type`); `None` for numbers llama.cpp no longer
    /// uses or never used.
    pub fn from_id(id: u32) -> Option<Ftype> {
        FTYPES.iter().find(|e| e.0 as u32 == id).map(|e| e.0)
    }
    /// llama-quantize's name (`Q4_K_M`, `F16`, ...).
    pub fn name(self) -> &'static str {
        self.entry().1
    }
    /// `llama_ftype_get_default_type`: the type most tensors get.
    pub fn default_type(self) -> GgmlType {
        self.entry().2
    }
    /// Whether this mix needs an importance matrix for its low-bit tensors.
    pub(crate) fn is_iq_low_bit(self) -> bool {
        matches!(
            self,
            Ftype::IQ2_XXS
                | Ftype::IQ2_XS
                | Ftype::IQ2_S
                | Ftype::IQ2_M
                | Ftype::IQ1_S
                | Ftype::IQ1_M
        )
    }
}

impl fmt::Display for Ftype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Ftype {
    type Err = Error;
    /// [`parse_ftype`].
    fn from_str(s: &str) -> Result<Ftype> {
        parse_ftype(s)
    }
}

/// Parses an ftype like llama-quantize: a name in any case (`q4_k_m`), the aliases `Q3_K`,
/// `Q4_K`, `Q5_K`, or the numeric `llama_ftype`. Unknown names list the valid ones.
pub fn parse_ftype(name: &str) -> Result<Ftype> {
    let trimmed = name.trim();
    if let Some(e) = FTYPES.iter().find(|e| e.1.eq_ignore_ascii_case(trimmed)) {
        return Ok(e.0);
    }
    if let Some(a) = ALIASES.iter().find(|a| a.0.eq_ignore_ascii_case(trimmed)) {
        return Ok(a.1);
    }
    if let Ok(id) = trimmed.parse::<u32>() {
        if let Some(f) = Ftype::from_id(id) {
            return Ok(f);
        }
    }
    let names: Vec<String> = FTYPES
        .iter()
        .map(|e| format!("{} ({})", e.1, e.0 as u32))
        .chain(
            ALIASES
                .iter()
                .map(|a| format!("{} (= {})", a.0, a.1.name())),
        )
        .collect();
    Err(Error::Usage(format!(
        "unknown quantization type '{name}'; valid types: {}",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_numbers() {
        assert_eq!(parse_ftype("q4_k_m").unwrap(), Ftype::Q4_K_M);
        assert_eq!(parse_ftype("Q4_K").unwrap(), Ftype::Q4_K_M);
        assert_eq!(parse_ftype("q3_k").unwrap(), Ftype::Q3_K_M);
        assert_eq!(parse_ftype("Q5_K").unwrap(), Ftype::Q5_K_M);
        assert_eq!(parse_ftype("bf16").unwrap(), Ftype::BF16);
        assert_eq!(parse_ftype("15").unwrap(), Ftype::Q4_K_M);
        assert_eq!(Ftype::Q8_0.id(), 7);
        assert_eq!(Ftype::Q4_K_S.default_type(), GgmlType::Q4_K);
        let err = parse_ftype("Q4_K_X").unwrap_err().to_string();
        assert!(
            err.contains("Q4_K_X") && err.contains("Q6_K") && err.contains("Q4_K (= Q4_K_M)"),
            "{err}"
        );
        assert!(parse_ftype("4").is_err()); // removed ftype numbers are not accepted
    }
}
