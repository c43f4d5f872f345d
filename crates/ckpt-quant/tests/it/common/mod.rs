//! A minimal GGUF reader for tests (little-endian v3 files only), independent of ckpt-gguf so the
//! kernels can be checked on their own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

pub struct TestTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub ggml_type: u32,
    pub data: Vec<u8>,
}

pub struct TestGguf {
    pub kvs: Vec<(String, u32)>,
    pub tensors: Vec<TestTensor>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    /// Skips a value of GGUF type `t`; returns it as u64 when it is an integer scalar.
    fn skip_value(&mut self, t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(self.take(1)[0] as u64),
            2 | 3 => Some(u16::from_le_bytes(self.take(2).try_into().unwrap()) as u64),
            4 | 5 => Some(self.u32() as u64),
            6 => {
                self.take(4);
                None
            }
            10 | 11 => Some(self.u64()),
            12 => {
                self.take(8);
                None
            }
            8 => {
                self.string();
                None
            }
            9 => {
                let et = self.u32();
                let n = self.u64();
                for _ in 0..n {
                    self.skip_value(et);
                }
                None
            }
            _ => panic!("bad GGUF value type {t}"),
        }
    }
}

/// (block size, type size) for the types in the fixtures.
pub fn layout(t: u32) -> (u64, u64) {
    let ty = ckpt_core::GgmlType::from_id(t).expect("known ggml type");
    (ty.block_size() as u64, ty.type_size() as u64)
}

pub fn read_gguf(path: &Path) -> TestGguf {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Cursor { b: &bytes, pos: 0 };
    assert_eq!(c.take(4), b"GGUF");
    assert_eq!(c.u32(), 3);
    let n_tensors = c.u64();
    let n_kv = c.u64();
    let mut kvs = Vec::new();
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = c.string();
        let t = c.u32();
        let v = c.skip_value(t);
        if key == "general.alignment" {
            alignment = v.unwrap();
        }
        kvs.push((key, t));
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string();
        let nd = c.u32();
        let ne: Vec<u64> = (0..nd).map(|_| c.u64()).collect();
        let t = c.u32();
        let off = c.u64();
        infos.push((name, ne, t, off));
    }
    let data_start = c.pos.div_ceil(alignment as usize) * alignment as usize;
    let tensors = infos
        .into_iter()
        .map(|(name, ne, t, off)| {
            let (bs, ts) = layout(t);
            let n: u64 = ne.iter().product();
            let nbytes = (n / bs * ts) as usize;
            let start = data_start + off as usize;
            TestTensor {
                name,
                ne,
                ggml_type: t,
                data: bytes[start..start + nbytes].to_vec(),
            }
        })
        .collect();
    TestGguf { kvs, tensors }
}

pub fn f32_values(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}
