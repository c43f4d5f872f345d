//! SentencePiece `tokenizer.model`: a protobuf `ModelProto`, decoded by hand (no protobuf
//! runtime, nothing executed). Only what the converter asks sentencepiece for is kept: each
//! piece's text, score and type, plus the normalizer flags some architectures export.

use std::path::Path;

use ckpt_core::{Error, Result};

/// sentencepiece's `ModelProto.SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

#[derive(Clone, Debug)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub kind: PieceType,
}

#[derive(Clone, Debug)]
pub struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    /// NormalizerSpec.add_dummy_prefix (default true).
    pub add_dummy_prefix: bool,
    /// NormalizerSpec.remove_extra_whitespaces (default true).
    pub remove_extra_whitespaces: bool,
    /// NormalizerSpec.precompiled_charsmap (empty when absent).
    pub precompiled_charsmap: Vec<u8>,
    /// TrainerSpec.model_type: 1 UNIGRAM (the default), 2 BPE, 3 WORD, 4 CHAR.
    pub model_type: u64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: &str) -> Error {
        Error::invalid(
            self.path,
            format!("sentencepiece model: {msg} at byte {}", self.pos),
        )
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("field runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Returns (field number, wire type, payload for length-delimited / the varint value).
    fn field(&mut self) -> Result<(u64, Field<'a>)> {
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.bytes(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| self.err("length too large"))?;
                Field::Bytes(self.bytes(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap())),
            _ => return Err(self.err(&format!("unsupported wire type {wire}"))),
        };
        Ok((num, f))
    }
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl SentencePieceModel {
    pub fn load(path: &Path) -> Result<SentencePieceModel> {
        let buf = ckpt_core::hf::read_side_file(path)?;
        Self::parse(&buf, path)
    }

    pub fn parse(buf: &[u8], path: &Path) -> Result<SentencePieceModel> {
        let mut r = Reader { buf, pos: 0, path };
        let mut model = SentencePieceModel {
            pieces: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            precompiled_charsmap: Vec::new(),
            model_type: 1,
        };
        while !r.done() {
            let at = r.pos;
            match r.field()? {
                (1, Field::Bytes(b)) => model.pieces.push(parse_piece(b, path, at)?),
                (2, Field::Bytes(b)) => parse_trainer(b, path, &mut model)?,
                (3, Field::Bytes(b)) => parse_normalizer(b, path, &mut model)?,
                (1 | 3, _) => {
                    return Err(Error::invalid(
                        path,
                        format!("sentencepiece model: field at byte {at} has the wrong wire type"),
                    ))
                }
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err(Error::invalid(path, "sentencepiece model has no pieces"));
        }
        Ok(model)
    }
}

fn parse_piece(buf: &[u8], path: &Path, at: usize) -> Result<Piece> {
    let mut r = Reader { buf, pos: 0, path };
    let mut piece = Piece {
        text: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    while !r.done() {
        match r.field()? {
            (1, Field::Bytes(b)) => {
                piece.text = String::from_utf8(b.to_vec()).map_err(|_| {
                    Error::invalid(
                        path,
                        format!("sentencepiece piece at byte {at} is not UTF-8"),
                    )
                })?
            }
            (2, Field::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Field::Varint(t)) => {
                piece.kind = match t {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => {
                        return Err(Error::invalid(
                            path,
                            format!("sentencepiece piece at byte {at} has unknown type {other}"),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_normalizer(buf: &[u8], path: &Path, model: &mut SentencePieceModel) -> Result<()> {
    let mut r = Reader { buf, pos: 0, path };
    while !r.done() {
        match r.field()? {
            (2, Field::Bytes(b)) => model.precompiled_charsmap = b.to_vec(),
            (3, Field::Varint(v)) => model.add_dummy_prefix = v != 0,
            (4, Field::Varint(v)) => model.remove_extra_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(())
}

fn parse_trainer(buf: &[u8], path: &Path, model: &mut SentencePieceModel) -> Result<()> {
    let mut r = Reader { buf, pos: 0, path };
    while !r.done() {
        if let (3, Field::Varint(v)) = r.field()? {
            model.model_type = v;
        }
    }
    Ok(())
}
