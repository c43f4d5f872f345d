//! Modelfiles: parsing with Ollama's rules (parser/parser.go: case-insensitive commands, `#`
//! comments, `"…"` and `"""…"""` values spanning lines, errors with line numbers), typing of
//! `PARAMETER` values (api.FormatParams), and printing back the way `ollama show --modelfile`
//! does.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::error::{OllamaError, Result};

/// One command; `name` is lower-case (`model` for FROM, the parameter name for PARAMETER) and
/// `args` is the unquoted value (`role: content` for MESSAGE), as Ollama stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command, lower-case (`model`, `template`, `system`, `message`, a parameter name, …).
    pub name: String,
    /// Its value, unquoted.
    pub args: String,
}

/// A parsed Modelfile: its commands in file order ([`Modelfile::parse`]; [`Display`](fmt::Display)
/// prints it back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modelfile {
    /// The commands in file order.
    pub commands: Vec<Command>,
}

const COMMANDS: &[&str] = &[
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
];

const INVALID_COMMAND: &str = "command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"";
const INVALID_ROLE: &str = "message role must be one of \"system\", \"user\", or \"assistant\"";

/// Parameters Ollama accepts but ignores with a warning.
pub(crate) const DEPRECATED_PARAMETERS: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Nil,
    Name,
    Value,
    Parameter,
    Message,
    Comment,
}

/// A parse failure: `(line N): message` like Ollama's `ParserError`, or `unexpected EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line of the error; 0 when it is not tied to a line (an unexpected end of
    /// the text, no FROM line).
    pub line: usize,
    /// Ollama's message.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "(line {}): {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for OllamaError {
    fn from(e: ParseError) -> OllamaError {
        OllamaError::bad_request(e.to_string())
    }
}

fn is_alpha(c: char) -> bool {
    c.is_ascii_alphabetic()
}
fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}
fn is_newline(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020. Rust has
/// no Unicode category tables in std, so this excludes what Go excludes in practice: controls,
/// spaces other than U+0020, format characters, private use and non-characters.
pub(crate) fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let v = c as u32;
    let format_char = matches!(v, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x1BCA0..=0x1BCA3 | 0xE0001 | 0xE0020..=0xE007F);
    let private_use = matches!(v, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let non_char = (v & 0xFFFE) == 0xFFFE || (0xFDD0..=0xFDEF).contains(&v);
    !(format_char || private_use || non_char)
}

fn step(c: char, state: State) -> std::result::Result<(State, Option<char>), &'static str> {
    Ok(match state {
        State::Nil => {
            if c == '#' {
                (State::Comment, None)
            } else if is_space(c) || is_newline(c) {
                (State::Nil, None)
            } else {
                (State::Name, Some(c))
            }
        }
        State::Name => {
            if is_alpha(c) {
                (State::Name, Some(c))
            } else if is_space(c) {
                (State::Value, None)
            } else {
                return Err(INVALID_COMMAND);
            }
        }
        State::Value => {
            if is_newline(c) || is_space(c) {
                (State::Nil, Some(c))
            } else {
                (State::Value, Some(c))
            }
        }
        State::Parameter => {
            if is_alpha(c) || c.is_ascii_digit() || c == '_' {
                (State::Parameter, Some(c))
            } else if is_space(c) {
                (State::Value, None)
            } else {
                return Err("unexpected EOF");
            }
        }
        State::Message => {
            if is_alpha(c) {
                (State::Message, Some(c))
            } else if is_space(c) {
                (State::Value, None)
            } else {
                return Err("unexpected EOF");
            }
        }
        State::Comment => {
            if is_newline(c) {
                (State::Nil, None)
            } else {
                (State::Comment, None)
            }
        }
    })
}

/// Strips `"""…"""` or `"…"`; `None` while a quote is still open.
fn unquote(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix("\"\"\"") {
        return if s.len() >= 6 && s.ends_with("\"\"\"") {
            Some(&rest[..rest.len() - 3])
        } else {
            None
        };
    }
    if let Some(rest) = s.strip_prefix('"') {
        return if s.len() >= 2 && s.ends_with('"') {
            Some(&rest[..rest.len() - 1])
        } else {
            None
        };
    }
    Some(s)
}

/// Quotes a value the way `ollama show --modelfile` prints it.
pub fn quote(s: &str) -> String {
    if s.contains('\n') || s.starts_with(' ') || s.ends_with(' ') {
        if s.contains('"') {
            return format!("\"\"\"{s}\"\"\"");
        }
        return format!("\"{s}\"");
    }
    s.to_string()
}

impl Modelfile {
    /// Parses Modelfile text with Ollama's state machine (a leading UTF-8 BOM is skipped).
    pub fn parse(text: &str) -> std::result::Result<Modelfile, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut commands = Vec::new();
        let mut cmd = Command {
            name: String::new(),
            args: String::new(),
        };
        let mut state = State::Nil;
        let mut line = 1usize;
        let mut buf = String::new();
        let mut role = String::new();

        for c in text.chars() {
            if is_newline(c) {
                line += 1;
            }
            let (mut next, out) = match step(c, state) {
                Ok(x) => x,
                Err("unexpected EOF") => {
                    return Err(ParseError {
                        line: 0,
                        message: format!("unexpected EOF: {buf}"),
                    })
                }
                Err(msg) => {
                    return Err(ParseError {
                        line,
                        message: msg.to_string(),
                    })
                }
            };
            let out = out.unwrap_or('\0');

            if next != state {
                match state {
                    State::Name => {
                        if !COMMANDS.contains(&buf.to_lowercase().as_str()) {
                            return Err(ParseError {
                                line,
                                message: INVALID_COMMAND.to_string(),
                            });
                        }
                        let lower = buf.to_lowercase();
                        match lower.as_str() {
                            "from" => cmd.name = "model".into(),
                            "parameter" => next = State::Parameter,
                            "message" => {
                                next = State::Message;
                                cmd.name = lower;
                            }
                            _ => cmd.name = lower,
                        }
                    }
                    State::Parameter => cmd.name = buf.clone(),
                    State::Message => {
                        if !matches!(buf.as_str(), "system" | "user" | "assistant") {
                            return Err(ParseError {
                                line,
                                message: INVALID_ROLE.to_string(),
                            });
                        }
                        role = buf.clone();
                    }
                    State::Comment | State::Nil => {}
                    State::Value => match unquote(buf.trim()) {
                        // An open quote, or a space inside the value: keep reading the value.
                        None => {
                            buf.push(out);
                            continue;
                        }
                        Some(_) if is_space(out) => {
                            buf.push(out);
                            continue;
                        }
                        Some(value) => {
                            let mut value = value.to_string();
                            if !role.is_empty() {
                                value = format!("{role}: {value}");
                                role.clear();
                            }
                            cmd.args = value;
                            commands.push(cmd.clone());
                        }
                    },
                }
                buf.clear();
                state = next;
            }

            if out != '\0' && is_go_printable(out) {
                buf.push(out);
            }
        }

        match state {
            State::Comment | State::Nil => {}
            State::Value => {
                let value = unquote(buf.trim()).ok_or_else(|| ParseError {
                    line: 0,
                    message: "unexpected EOF".into(),
                })?;
                let mut value = value.to_string();
                if !role.is_empty() {
                    value = format!("{role}: {value}");
                }
                cmd.args = value;
                commands.push(cmd);
            }
            _ => {
                return Err(ParseError {
                    line: 0,
                    message: "unexpected EOF".into(),
                })
            }
        }

        if !commands.iter().any(|c| c.name == "model") {
            return Err(ParseError {
                line: 0,
                message: "no FROM line".into(),
            });
        }
        Ok(Modelfile { commands })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name.as_str() {
            "model" => write!(f, "FROM {}", self.args),
            "license" | "template" | "system" | "adapter" | "renderer" | "parser" | "requires"
            | "draft" => {
                write!(f, "{} {}", self.name.to_uppercase(), quote(&self.args))
            }
            "message" => {
                let (role, content) = self.args.split_once(": ").unwrap_or((&self.args, ""));
                write!(f, "MESSAGE {role} {}", quote(content))
            }
            _ => write!(f, "PARAMETER {} {}", self.name, quote(&self.args)),
        }
    }
}

impl fmt::Display for Modelfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.commands {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// How Ollama types each known option (api.Options / api.Runner).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OptionKind {
    Int,
    Float,
    Bool,
    StringList,
}

fn option_kind(name: &str) -> Option<OptionKind> {
    Some(match name {
        "num_ctx" | "num_batch" | "num_gpu" | "main_gpu" | "num_thread" | "draft_num_predict"
        | "num_keep" | "seed" | "num_predict" | "top_k" | "repeat_last_n" => OptionKind::Int,
        "use_mmap" => OptionKind::Bool,
        "top_p" | "min_p" | "typical_p" | "temperature" | "repeat_penalty" | "presence_penalty"
        | "frequency_penalty" => OptionKind::Float,
        "stop" => OptionKind::StringList,
        _ => return None,
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A float32 value as a JSON number carrying the same shortest digits Go prints for it.
fn float32_json(v: f32) -> Option<Value> {
    if !v.is_finite() {
        return None;
    }
    let shortest: f64 = format!("{v}").parse().ok()?;
    serde_json::Number::from_f64(shortest).map(Value::Number)
}

/// Typed model parameters (`PARAMETER key value` lines), in Go map order (sorted keys).
pub(crate) type Parameters = BTreeMap<String, Value>;

/// Adds one `PARAMETER name value` the way the Ollama CLI does: ints become int64, floats
/// float32, `use_mmap` a bool, `stop` accumulates a list. Deprecated names are ignored (returns
/// a warning), unknown names and bad values are errors with Ollama's text.
pub(crate) fn add_parameter(
    params: &mut Parameters,
    name: &str,
    value: &str,
) -> Result<Option<String>> {
    if DEPRECATED_PARAMETERS.contains(&name) {
        return Ok(Some(format!("parameter {name} is deprecated")));
    }
    let kind = option_kind(name)
        .ok_or_else(|| OllamaError::bad_request(format!("unknown parameter '{name}'")))?;
    let typed = match kind {
        OptionKind::Int => Value::from(
            parse_go_int(value)
                .ok_or_else(|| OllamaError::bad_request(format!("invalid int value [{value}]")))?,
        ),
        OptionKind::Bool => Value::Bool(
            parse_go_bool(value)
                .ok_or_else(|| OllamaError::bad_request(format!("invalid bool value [{value}]")))?,
        ),
        OptionKind::Float => value
            .parse::<f32>()
            .ok()
            .and_then(float32_json)
            .ok_or_else(|| OllamaError::bad_request(format!("invalid float value [{value}]")))?,
        OptionKind::StringList => {
            let list = params
                .entry(name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            match list {
                Value::Array(items) => items.push(Value::String(value.to_string())),
                other => *other = Value::Array(vec![Value::String(value.to_string())]),
            }
            return Ok(None);
        }
    };
    params.insert(name.to_string(), typed);
    Ok(None)
}

/// Parses `KEY=VALUE` (the CLI's `--parameter` form) into [`add_parameter`].
pub(crate) fn add_parameter_assignment(
    params: &mut Parameters,
    assignment: &str,
) -> Result<Option<String>> {
    let (k, v) = assignment.split_once('=').ok_or_else(|| {
        OllamaError::bad_request(format!("parameter {assignment:?} is not KEY=VALUE"))
    })?;
    add_parameter(params, k.trim(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_rules() {
        assert_eq!(quote("<|eot_id|>"), "<|eot_id|>");
        assert_eq!(quote(" lead"), "\" lead\"");
        assert_eq!(quote("a\nb"), "\"a\nb\"");
        assert_eq!(quote("a\n\"b\""), "\"\"\"a\n\"b\"\"\"\"");
    }

    #[test]
    fn typed_parameters() {
        let mut p = Parameters::new();
        add_parameter(&mut p, "temperature", "0.7").unwrap();
        add_parameter(&mut p, "num_ctx", "4096").unwrap();
        add_parameter(&mut p, "stop", "<|im_end|>").unwrap();
        add_parameter(&mut p, "stop", "<|im_start|>").unwrap();
        add_parameter(&mut p, "use_mmap", "T").unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            crate::gojson::encode(&v),
            r#"{"num_ctx":4096,"stop":["\u003c|im_end|\u003e","\u003c|im_start|\u003e"],"temperature":0.7,"use_mmap":true}"#
        );
        assert_eq!(
            add_parameter(&mut p, "top_k", "4.5").unwrap_err().message,
            "invalid int value [4.5]"
        );
        assert_eq!(
            add_parameter(&mut p, "bogus", "1").unwrap_err().message,
            "unknown parameter 'bogus'"
        );
        assert!(add_parameter(&mut p, "mirostat", "2").unwrap().is_some());
    }
}
