//! The one pickle opcode decoder: splits a pickle stream into `(offset, opcode, argument)`
//! without interpreting anything. Both the restricted unpickler ([`crate::pickle::Machine`]) and
//! the static scanner ([`crate::scan::walk`]) read their input through it, so they can never
//! disagree about where one opcode ends and the next begins.
//!
//! Every length is checked against the remaining bytes before anything is read, so a hostile
//! length costs nothing; a line argument is searched for its newline once, so decoding is linear
//! in the input.

use std::fmt;

/// Opcode names (every opcode of protocols 0-5).
pub(crate) fn opcode_name(op: u8) -> Option<&'static str> {
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

/// The argument an opcode carries in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg<'d> {
    /// No argument.
    None,
    /// A little-endian unsigned integer: BININT1, BININT2, PROTO, FRAME, EXT1/2/4, and the memo
    /// index of BINGET / LONG_BINGET / BINPUT / LONG_BINPUT.
    UInt(u64),
    /// BININT's signed 32-bit integer.
    Int(i32),
    /// The bytes of a length-prefixed argument (strings, bytes, LONG1/LONG4) or BINFLOAT's 8.
    Bytes(&'d [u8]),
    /// A newline-terminated argument (INT, LONG, FLOAT, STRING, UNICODE, PERSID, GET, PUT),
    /// without its newline.
    Line(&'d [u8]),
    /// The two lines of GLOBAL and INST: module and name.
    Lines(&'d [u8], &'d [u8]),
}

/// One decoded opcode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'d> {
    /// Byte offset of the opcode in the data.
    pub at: usize,
    pub code: u8,
    pub name: &'static str,
    pub arg: Arg<'d>,
}

/// Why the stream cannot be decoded any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The data ends where an opcode should be.
    NoStop { at: usize },
    /// A byte that is no opcode of protocols 0-5.
    Unknown { at: usize, code: u8 },
    /// A fixed-size or newline-terminated argument is cut off by the end of the data.
    Truncated { at: usize, name: &'static str },
    /// A length-prefixed argument longer than the rest of the data.
    TooLong {
        at: usize,
        name: &'static str,
        len: u64,
    },
    /// LONG4 / BINSTRING with a negative length (the unpickler refuses it).
    Negative {
        at: usize,
        name: &'static str,
        len: i32,
    },
}

impl DecodeError {
    /// Byte offset of the opcode that cannot be decoded.
    pub fn at(&self) -> usize {
        match *self {
            DecodeError::NoStop { at }
            | DecodeError::Unknown { at, .. }
            | DecodeError::Truncated { at, .. }
            | DecodeError::TooLong { at, .. }
            | DecodeError::Negative { at, .. } => at,
        }
    }
}

/// The message without the offset (callers say where).
impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NoStop { .. } => write!(f, "the pickle ends without STOP (truncated?)"),
            DecodeError::Unknown { code, .. } => write!(
                f,
                "unknown pickle opcode 0x{code:02x}; the rest cannot be parsed"
            ),
            DecodeError::Truncated { name, .. } => write!(
                f,
                "the argument of {name} runs past the end of the pickle (truncated?)"
            ),
            DecodeError::TooLong { name, len, .. } => write!(
                f,
                "{name} of {len} bytes runs past the end of the pickle (truncated?)"
            ),
            DecodeError::Negative { name, len, .. } => write!(
                f,
                "{name} has a negative length ({len}); the unpickler stops here"
            ),
        }
    }
}

/// Decodes opcodes one at a time from a start offset.
pub(crate) struct Decoder<'d> {
    data: &'d [u8],
    pos: usize,
}

impl<'d> Decoder<'d> {
    pub fn new(data: &'d [u8], start: usize) -> Decoder<'d> {
        Decoder {
            data,
            pos: start.min(data.len()),
        }
    }

    /// The offset of the next opcode (after the last one decoded).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the last opcode decoded.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'d [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len())?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Some(s)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        let b = self.take(n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(b);
        Some(u64::from_le_bytes(buf))
    }

    fn line(&mut self) -> Option<&'d [u8]> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    /// The next opcode and its argument. On an error the decoder stays where it was.
    pub fn next_op(&mut self) -> Result<Op<'d>, DecodeError> {
        let at = self.pos;
        let r = self.decode(at);
        if r.is_err() {
            self.pos = at;
        }
        r
    }

    fn decode(&mut self, at: usize) -> Result<Op<'d>, DecodeError> {
        let code = self.take(1).ok_or(DecodeError::NoStop { at })?[0];
        let name = opcode_name(code).ok_or(DecodeError::Unknown { at, code })?;
        let cut = DecodeError::Truncated { at, name };
        let arg = match code {
            b'K' | 0x80 | 0x82 | b'h' | b'q' => Arg::UInt(self.uint(1).ok_or(cut)?),
            b'M' | 0x83 => Arg::UInt(self.uint(2).ok_or(cut)?),
            0x84 | b'j' | b'r' => Arg::UInt(self.uint(4).ok_or(cut)?),
            0x95 => Arg::UInt(self.uint(8).ok_or(cut)?),
            b'J' => Arg::Int(self.uint(4).ok_or(cut)? as u32 as i32),
            b'G' => Arg::Bytes(self.take(8).ok_or(cut)?),
            0x8b | b'T' => {
                let len = self.uint(4).ok_or(cut)? as u32 as i32;
                if len < 0 {
                    return Err(DecodeError::Negative { at, name, len });
                }
                self.sized(at, name, len as u64)?
            }
            0x8a | b'U' | 0x8c | b'C' | b'X' | b'B' | 0x8d | 0x8e | 0x96 => {
                let width = match code {
                    0x8a | b'U' | 0x8c | b'C' => 1,
                    b'X' | b'B' => 4,
                    _ => 8,
                };
                let len = self.uint(width).ok_or(cut)?;
                self.sized(at, name, len)?
            }
            b'I' | b'L' | b'F' | b'S' | b'V' | b'P' | b'g' | b'p' => {
                Arg::Line(self.line().ok_or(cut)?)
            }
            b'c' | b'i' => {
                let module = self.line().ok_or(cut.clone())?;
                Arg::Lines(module, self.line().ok_or(cut)?)
            }
            _ => Arg::None,
        };
        Ok(Op {
            at,
            code,
            name,
            arg,
        })
    }

    fn sized(&mut self, at: usize, name: &'static str, len: u64) -> Result<Arg<'d>, DecodeError> {
        usize::try_from(len)
            .ok()
            .and_then(|n| self.take(n))
            .map(Arg::Bytes)
            .ok_or(DecodeError::TooLong { at, name, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &[u8]) -> (Vec<(usize, &'static str)>, Option<DecodeError>) {
        let mut d = Decoder::new(data, 0);
        let mut ops = Vec::new();
        loop {
            match d.next_op() {
                Ok(op) => {
                    ops.push((op.at, op.name));
                    if op.code == b'.' {
                        return (ops, None);
                    }
                }
                Err(e) => return (ops, Some(e)),
            }
        }
    }

    #[test]
    fn offsets_names_and_arguments() {
        let (ops, e) = all(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.");
        assert!(e.is_none());
        assert_eq!(
            ops,
            [
                (0, "PROTO"),
                (2, "GLOBAL"),
                (13, "BINUNICODE"),
                (20, "TUPLE1"),
                (21, "REDUCE"),
                (22, "STOP")
            ]
        );
        let mut d = Decoder::new(b"ios\nsystem\n", 0);
        let op = d.next_op().unwrap();
        assert_eq!(op.arg, Arg::Lines(b"os", b"system"));
    }

    #[test]
    fn hostile_lengths_are_errors_not_reads() {
        let (_, e) = all(b"\x80\x02X\xff\xff\xff\x7fabc");
        assert_eq!(
            e,
            Some(DecodeError::TooLong {
                at: 2,
                name: "BINUNICODE",
                len: 0x7fff_ffff
            })
        );
        let (_, e) = all(b"\x8b\xff\xff\xff\xff");
        assert!(matches!(e, Some(DecodeError::Negative { len: -1, .. })));
        let (_, e) = all(b"\x8d\xff\xff\xff\xff\xff\xff\xff\xffab");
        assert!(matches!(e, Some(DecodeError::TooLong { .. })));
        let (_, e) = all(b"K");
        assert_eq!(
            e,
            Some(DecodeError::Truncated {
                at: 0,
                name: "BININT1"
            })
        );
        let (_, e) = all(b"N\xff");
        assert_eq!(e, Some(DecodeError::Unknown { at: 1, code: 0xff }));
        let (_, e) = all(b"N");
        assert_eq!(e, Some(DecodeError::NoStop { at: 1 }));
    }
}
