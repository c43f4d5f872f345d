//! A parser for Go's `text/template` syntax (lexer + parser, no execution), so that a template
//! Ollama would refuse is refused at create time with the text Ollama gives.
//!
//! Ollama parses every template with `template.New("").Option("missingkey=zero").Funcs(funcs)
//! .Parse(s)` (template/template.go) and then walks the tree for its variables, which fails on a
//! `{{template "name"}}` without a pipeline. Go's parser (text/template/parse) checks that every
//! function exists, that every variable is declared, that control structures nest, and the
//! literal syntax of strings, characters and numbers; its messages have the form
//! `template: NAME:LINE: MESSAGE`, where NAME is empty for Ollama. This module follows the
//! behaviour of Go's lexer and parser (including their token look-ahead, which decides the line a
//! message names); it is written from the language's documented behaviour and the observed
//! messages, not translated from Go's sources.

use std::collections::HashMap;

/// Go's builtin template functions (text/template/funcs.go).
pub(crate) const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// The functions Ollama adds (`funcs` in template/template.go).
pub(crate) const OLLAMA_FUNCS: &[&str] =
    &["json", "currentDate", "yesterdayDate", "toTypeScriptType"];

/// Parses `text` as Ollama does (Go's parser with Go's builtins and Ollama's functions, then
/// Ollama's variable walk). The error is the text Ollama reports after `template error: `.
pub fn check_ollama_template(text: &str) -> Result<(), String> {
    let funcs: Vec<&str> = GO_BUILTINS.iter().chain(OLLAMA_FUNCS).copied().collect();
    let parsed = parse(text, &funcs)?;
    if parsed.template_without_pipeline {
        // Ollama's Identifiers(): a TemplateNode with a nil Pipe.
        return Err("undefined template specified".into());
    }
    Ok(())
}

/// What a successful parse reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    /// Some `{{template "x"}}` has no pipeline (Ollama refuses these).
    pub template_without_pipeline: bool,
    /// Ollama's `Template.Vars()`: the field and variable names used in commands (lower-cased,
    /// sorted, unique); names inside a parenthesised pipeline followed by a field are not seen,
    /// as in Ollama's walk.
    pub vars: Vec<String>,
}

/// Ollama's `Template.Vars()` of a template it accepts (used for capabilities: `tools`,
/// `suffix` → insert).
pub(crate) fn ollama_vars(text: &str) -> Result<Vec<String>, String> {
    let funcs: Vec<&str> = GO_BUILTINS.iter().chain(OLLAMA_FUNCS).copied().collect();
    let parsed = parse(text, &funcs)?;
    if parsed.template_without_pipeline {
        return Err("undefined template specified".into());
    }
    Ok(parsed.vars)
}

/// Parses `text` with Go's `text/template` rules and the given function names; the error is Go's
/// message (`template: :LINE: …`).
pub(crate) fn parse(text: &str, funcs: &[&str]) -> Result<Parsed, String> {
    let items = lex(text);
    let mut p = Parser {
        items,
        next: 0,
        funcs,
        tree_set: HashMap::new(),
        trees: Vec::new(),
        template_without_pipeline: false,
        idents: Vec::new(),
    };
    p.trees.push(Tree::new(""));
    let root = p.parse_top()?;
    p.add("", &root)?;
    let mut vars: Vec<String> = p.idents.iter().map(|v| v.to_lowercase()).collect();
    vars.sort();
    vars.dedup();
    Ok(Parsed {
        template_without_pipeline: p.template_without_pipeline,
        vars,
    })
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    Str,
    Text,
    Variable,
    // keywords
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl T {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            T::Block
                | T::Break
                | T::Continue
                | T::Dot
                | T::Define
                | T::Else
                | T::End
                | T::If
                | T::Nil
                | T::Range
                | T::Template
                | T::With
        )
    }
}

fn keyword(word: &str) -> Option<T> {
    Some(match word {
        "." => T::Dot,
        "block" => T::Block,
        "break" => T::Break,
        "continue" => T::Continue,
        "define" => T::Define,
        "else" => T::Else,
        "end" => T::End,
        "if" => T::If,
        "range" => T::Range,
        "nil" => T::Nil,
        "template" => T::Template,
        "with" => T::With,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Item {
    typ: T,
    val: String,
    line: usize,
}

impl Item {
    fn eof() -> Item {
        Item {
            typ: T::Eof,
            val: String::new(),
            line: 0,
        }
    }

    /// How Go prints a token in "unexpected …" messages.
    fn display(&self) -> String {
        match self.typ {
            T::Eof => "EOF".into(),
            T::Error => self.val.clone(),
            t if t.is_keyword() => format!("<{}>", self.val),
            _ if self.val.len() > 10 => {
                let short: String = self.val.chars().take(10).collect();
                format!("{}...", go_quote(&short))
            }
            _ => go_quote(&self.val),
        }
    }
}

/// Go's `%q` of a string (strconv.Quote).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) || c == '\u{ad}' || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#U` of a rune: `U+0041 'A'`.
fn go_rune_u(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || is_go_digit(c)
}

/// unicode.IsDigit: decimal digits (Nd). Rust's `is_numeric` also covers letter-like numerals;
/// `to_digit`-style checks cover only ASCII, so accept the common decimal-digit blocks.
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric() && !c.is_alphabetic())
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: usize,
    items: Vec<Item>,
    newlines: Vec<usize>,
}

enum St {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
    Done,
}

fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        items: Vec::new(),
        newlines: input.match_indices('\n').map(|(i, _)| i).collect(),
    };
    let mut st = St::Text;
    loop {
        st = match st {
            St::Done => break,
            St::Text => l.lex_text(),
            St::LeftDelim => l.lex_left_delim(),
            St::Comment => l.lex_comment(),
            St::RightDelim => l.lex_right_delim(),
            St::Inside => l.lex_inside(),
            St::Space => l.lex_space(),
            St::Identifier => l.lex_identifier(),
            St::Field => l.lex_field_or_variable(T::Field),
            St::Variable => l.lex_variable(),
            St::Char => l.lex_quoted('\'', T::CharConstant, "unterminated character constant"),
            St::Number => l.lex_number(),
            St::Quote => l.lex_quoted('"', T::Str, "unterminated quoted string"),
            St::RawQuote => l.lex_raw_quote(),
        };
    }
    l.items
}

impl Lexer<'_> {
    fn line_at(&self, pos: usize) -> usize {
        1 + self.newlines.partition_point(|&n| n < pos)
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, typ: T) {
        self.items.push(Item {
            typ,
            val: self.input[self.start..self.pos].to_string(),
            line: self.line_at(self.start),
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn errorf(&mut self, msg: String) -> St {
        self.items.push(Item {
            typ: T::Error,
            val: msg,
            line: self.line_at(self.start),
        });
        St::Done
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim(r) && r[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (r.starts_with(RIGHT), false)
    }

    fn lex_text(&mut self) -> St {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let mut trim = 0;
                if has_left_trim(&self.input[self.pos + LEFT.len()..]) {
                    let text = &self.input[self.start..self.pos];
                    trim = text.len() - text.trim_end_matches(is_space).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(T::Text);
                }
                self.pos += trim;
                self.ignore();
            }
            return St::LeftDelim;
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(T::Text);
        }
        self.emit(T::Eof);
        St::Done
    }

    fn lex_left_delim(&mut self) -> St {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.ignore();
            return St::Comment;
        }
        self.emit(T::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        St::Inside
    }

    fn lex_comment(&mut self) -> St {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.errorf("unclosed comment".into());
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.errorf("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
        }
        self.ignore();
        St::Text
    }

    fn lex_right_delim(&mut self) -> St {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(T::RightDelim);
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
            self.ignore();
        }
        St::Text
    }

    fn lex_inside(&mut self) -> St {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return St::RightDelim;
            }
            return self.errorf("unclosed left paren".into());
        }
        let c = self.next_char();
        let Some(r) = c else {
            return self.errorf("unclosed action".into());
        };
        match r {
            r if is_space(r) => {
                self.backup(c);
                return St::Space;
            }
            '=' => self.emit(T::Assign),
            ':' => {
                if self.next_char() != Some('=') {
                    return self.errorf("expected :=".into());
                }
                self.emit(T::Declare)
            }
            '|' => self.emit(T::Pipe),
            '"' => return St::Quote,
            '`' => return St::RawQuote,
            '$' => return St::Variable,
            '\'' => return St::Char,
            '.' => {
                if let Some(&b) = self.input.as_bytes().get(self.pos) {
                    if !b.is_ascii_digit() {
                        return St::Field;
                    }
                }
                self.backup(c);
                return St::Number;
            }
            '+' | '-' | '0'..='9' => {
                self.backup(c);
                return St::Number;
            }
            r if is_alnum(r) => {
                self.backup(c);
                return St::Identifier;
            }
            '(' => {
                self.paren_depth += 1;
                self.emit(T::LeftParen)
            }
            ')' => {
                if self.paren_depth == 0 {
                    return self.errorf("unexpected right paren".into());
                }
                self.paren_depth -= 1;
                self.emit(T::RightParen)
            }
            r if r.is_ascii() && !r.is_ascii_control() => self.emit(T::Char),
            r => {
                return self.errorf(format!(
                    "unrecognized character in action: {}",
                    go_rune_u(r)
                ))
            }
        }
        St::Inside
    }

    fn lex_space(&mut self) -> St {
        let mut n = 0;
        while self.peek_char().is_some_and(is_space) {
            self.next_char();
            n += 1;
        }
        let before = self.pos - 1;
        if has_right_trim(&self.input[before..]) && self.input[before + 2..].starts_with(RIGHT) {
            self.pos = before; // the space belongs to the trim marker
            if n == 1 {
                return St::RightDelim;
            }
        }
        self.emit(T::Space);
        St::Inside
    }

    fn at_terminator(&self) -> bool {
        match self.peek_char() {
            None => true,
            Some(r) if is_space(r) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn scan_alnum(&mut self) -> Option<char> {
        loop {
            let c = self.next_char();
            match c {
                Some(r) if is_alnum(r) => {}
                other => {
                    self.backup(other);
                    return other;
                }
            }
        }
    }

    fn lex_identifier(&mut self) -> St {
        let r = self.scan_alnum();
        if !self.at_terminator() {
            return self.bad_character(r);
        }
        let word = &self.input[self.start..self.pos];
        let typ = if let Some(k) = keyword(word) {
            k
        } else if word.starts_with('.') {
            T::Field
        } else if word == "true" || word == "false" {
            T::Bool
        } else {
            T::Identifier
        };
        self.emit(typ);
        St::Inside
    }

    fn bad_character(&mut self, r: Option<char>) -> St {
        // Go prints the rune that stopped the scan (EOF is -1, which cannot happen here since
        // EOF is a terminator).
        let shown = r
            .map(go_rune_u)
            .unwrap_or_else(|| "U+FFFFFFFFFFFFFFFF".into());
        self.errorf(format!("bad character {shown}"))
    }

    fn lex_variable(&mut self) -> St {
        if self.at_terminator() {
            self.emit(T::Variable);
            return St::Inside;
        }
        self.lex_field_or_variable(T::Variable)
    }

    fn lex_field_or_variable(&mut self, typ: T) -> St {
        if self.at_terminator() {
            self.emit(if typ == T::Variable {
                T::Variable
            } else {
                T::Dot
            });
            return St::Inside;
        }
        let r = self.scan_alnum();
        if !self.at_terminator() {
            return self.bad_character(r);
        }
        self.emit(typ);
        St::Inside
    }

    fn lex_quoted(&mut self, quote: char, typ: T, unterminated: &str) -> St {
        loop {
            match self.next_char() {
                Some('\\') => match self.next_char() {
                    Some(r) if r != '\n' => {}
                    _ => return self.errorf(unterminated.into()),
                },
                None | Some('\n') => return self.errorf(unterminated.into()),
                Some(r) if r == quote => break,
                _ => {}
            }
        }
        self.emit(typ);
        St::Inside
    }

    fn lex_raw_quote(&mut self) -> St {
        match self.rest().find('`') {
            Some(i) => self.pos += i + 1,
            None => {
                return self.errorf("unterminated raw quoted string".into());
            }
        }
        self.emit(T::RawString);
        St::Inside
    }

    fn lex_number(&mut self) -> St {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.errorf(format!("bad number syntax: {}", go_quote(&text)));
        }
        if matches!(self.peek_char(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_string();
                return self.errorf(format!("bad number syntax: {}", go_quote(&text)));
            }
            self.emit(T::Complex);
        } else {
            self.emit(T::Number);
        }
        St::Inside
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek_char() {
            Some(c) if valid.contains(c) => {
                self.next_char();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek_char().is_some_and(is_alnum) {
            self.next_char();
            return false;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Literal checks (Go's strconv rules, as the parser applies them)

const SYNTAX: &str = "invalid syntax";

/// strconv.UnquoteChar: one (possibly escaped) character of `s` and the rest.
fn unquote_char(s: &str, quote: char) -> Result<&str, &'static str> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(SYNTAX)?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(SYNTAX);
    }
    if c != '\\' {
        return Ok(chars.as_str());
    }
    let e = chars.next().ok_or(SYNTAX)?;
    let rest = chars.as_str();
    let hex = |n: usize| -> Result<(u32, &str), &'static str> {
        if rest.len() < n || !rest.is_char_boundary(n) {
            return Err(SYNTAX);
        }
        let v = u32::from_str_radix(&rest[..n], 16).map_err(|_| SYNTAX)?;
        if rest[..n].starts_with(['+', '-']) {
            return Err(SYNTAX);
        }
        Ok((v, &rest[n..]))
    };
    match e {
        'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => Ok(rest),
        '\'' | '"' if e == quote => Ok(rest),
        'x' => hex(2).map(|(_, r)| r),
        'u' | 'U' => {
            let (v, r) = hex(if e == 'u' { 4 } else { 8 })?;
            if char::from_u32(v).is_none() {
                return Err(SYNTAX);
            }
            Ok(r)
        }
        '0'..='7' => {
            let digits: String = std::iter::once(e).chain(rest.chars().take(2)).collect();
            if digits.len() != 3 || !digits.chars().all(|d| ('0'..='7').contains(&d)) {
                return Err(SYNTAX);
            }
            let v = u32::from_str_radix(&digits, 8).map_err(|_| SYNTAX)?;
            if v > 255 {
                return Err(SYNTAX);
            }
            Ok(&rest[2..])
        }
        _ => Err(SYNTAX),
    }
}

/// strconv.Unquote for the string tokens the lexer produces.
fn check_unquote(tok: &str) -> Result<(), &'static str> {
    if tok.starts_with('`') {
        return Ok(()); // raw strings always unquote (carriage returns are dropped)
    }
    let inner = tok
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or(SYNTAX)?;
    let mut s = inner;
    while !s.is_empty() {
        s = unquote_char(s, '"')?;
    }
    Ok(())
}

fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && (b'a'..=b'f').contains(&c.to_ascii_lowercase()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// strconv.ParseUint(s, 0, 64) (signed = false) / ParseInt(s, 0, 64) (signed = true).
fn parse_int_base0(s0: &str, signed: bool) -> bool {
    let mut s = s0;
    let mut neg = false;
    if signed {
        if let Some(r) = s.strip_prefix('+') {
            s = r;
        } else if let Some(r) = s.strip_prefix('-') {
            s = r;
            neg = true;
        }
    }
    if s.is_empty() {
        return false;
    }
    let b = s.as_bytes();
    let mut base = 10u32;
    if b[0] == b'0' {
        if b.len() >= 3 && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
            base = match b[1].to_ascii_lowercase() {
                b'b' => 2,
                b'o' => 8,
                _ => 16,
            };
            s = &s[2..];
        } else {
            base = 8;
            s = &s[1..];
        }
    }
    let mut n: u128 = 0;
    let mut underscores = false;
    for c in s.chars() {
        if c == '_' {
            underscores = true;
            continue;
        }
        let Some(d) = c.to_digit(36) else {
            return false;
        };
        if d >= base {
            return false;
        }
        n = n * base as u128 + d as u128;
        if n > u64::MAX as u128 {
            return false;
        }
    }
    if underscores && !underscore_ok(s0) {
        return false;
    }
    if signed {
        let limit = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
        n <= limit
    } else {
        true
    }
}

/// strconv.ParseFloat(s, 64) succeeds (finite result, Go's syntax).
fn parse_float_ok(s0: &str) -> bool {
    let s = s0.strip_prefix(['+', '-']).unwrap_or(s0);
    let lower = s.to_ascii_lowercase();
    let (hex, body) = match lower.strip_prefix("0x") {
        Some(b) => (true, b.to_string()),
        None => (false, lower.clone()),
    };
    let exp_char = if hex { 'p' } else { 'e' };
    let (mant, exp) = match body.find(exp_char) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (&body[..], None),
    };
    if hex && exp.is_none() {
        return false;
    }
    let mut saw_digit = false;
    let mut saw_dot = false;
    for c in mant.chars() {
        match c {
            '_' => {}
            '.' if !saw_dot => saw_dot = true,
            c if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() => saw_digit = true,
            _ => return false,
        }
    }
    if !saw_digit {
        return false;
    }
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !e.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return false;
        }
        if !e.chars().any(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if s0.contains('_') && !underscore_ok(s0) {
        return false;
    }
    let clean: String = s0.chars().filter(|&c| c != '_').collect();
    let value = if hex {
        hex_float_value(&clean)
    } else {
        clean.parse::<f64>().ok()
    };
    value.is_some_and(f64::is_finite)
}

fn hex_float_value(s: &str) -> Option<f64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = &s[2..];
    let p = body.find(['p', 'P'])?;
    let (mant, exp) = (&body[..p], &body[p + 1..]);
    let exp: i64 = exp.parse().ok()?;
    let mut v = 0f64;
    let mut scale = 0i64;
    let mut after_dot = false;
    for c in mant.chars() {
        if c == '.' {
            after_dot = true;
            continue;
        }
        v = v * 16.0 + c.to_digit(16)? as f64;
        if after_dot {
            scale -= 4;
        }
    }
    let r = v * 2f64.powi((exp + scale).clamp(-2000, 2000) as i32);
    Some(if neg { -r } else { r })
}

/// parse.newNumber's checks for a number, character or complex token.
fn check_number(text: &str, typ: T) -> Result<(), String> {
    match typ {
        T::CharConstant => {
            let tail = unquote_char(&text[1..], '\'').map_err(String::from)?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            Ok(())
        }
        T::Complex => Ok(()),
        _ => {
            if let Some(im) = text.strip_suffix('i') {
                if parse_float_ok(im) {
                    return Ok(());
                }
            }
            if parse_int_base0(text, false) || parse_int_base0(text, true) {
                return Ok(());
            }
            if parse_float_ok(text) {
                if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                    return Err(format!("integer overflow: {}", go_quote(text)));
                }
                return Ok(());
            }
            Err(format!("illegal number syntax: {}", go_quote(text)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

/// The node kinds the checks need.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action,
    If,
    Range,
    With,
    Template,
    Break,
    Continue,
    End,
    Else,
}

impl Node {
    fn display(&self) -> &'static str {
        match self {
            Node::End => "{{end}}",
            Node::Else => "{{else}}",
            _ => "node",
        }
    }
}

/// The kind of a command's operand (for the pipeline and chain checks).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arg {
    Bool,
    Dot,
    Nil,
    Number,
    Str,
    Field,
    Variable,
    Identifier,
    Pipe,
    Chain,
}

struct Tree {
    name: String,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    stack_depth: usize,
}

impl Tree {
    fn new(name: &str) -> Tree {
        Tree {
            name: name.to_string(),
            token: [Item::eof(), Item::eof(), Item::eof()],
            peek_count: 0,
            vars: vec!["$".into()],
            action_line: 0,
            range_depth: 0,
            stack_depth: 0,
        }
    }
}

type PResult<X> = Result<X, String>;

struct Parser<'f> {
    items: Vec<Item>,
    next: usize,
    funcs: &'f [&'f str],
    /// name → whether the stored tree is empty.
    tree_set: HashMap<String, bool>,
    trees: Vec<Tree>,
    template_without_pipeline: bool,
    /// Identifiers of field and variable operands, for Ollama's `Vars()`.
    idents: Vec<String>,
}

const MAX_STACK_DEPTH: usize = 10000;

impl Parser<'_> {
    fn t(&mut self) -> &mut Tree {
        self.trees.last_mut().expect("a tree is being parsed")
    }

    fn lex_next(&mut self) -> Item {
        match self.items.get(self.next) {
            Some(it) => {
                let it = it.clone();
                if it.typ != T::Error && it.typ != T::Eof {
                    self.next += 1;
                }
                it
            }
            None => Item::eof(),
        }
    }

    fn next_tok(&mut self) -> Item {
        if self.t().peek_count > 0 {
            self.t().peek_count -= 1;
        } else {
            let it = self.lex_next();
            self.t().token[0] = it;
        }
        let t = self.t();
        t.token[t.peek_count].clone()
    }

    fn backup(&mut self) {
        self.t().peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        let t = self.t();
        t.token[1] = t1;
        t.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        let t = self.t();
        t.token[1] = t1;
        t.token[2] = t2;
        t.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.t().peek_count > 0 {
            let t = self.t();
            return t.token[t.peek_count - 1].clone();
        }
        let it = self.lex_next();
        let t = self.t();
        t.peek_count = 1;
        t.token[0] = it.clone();
        it
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let tok = self.next_tok();
            if tok.typ != T::Space {
                return tok;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let tok = self.next_non_space();
        self.backup();
        tok
    }

    fn errorf<X>(&mut self, msg: impl Into<String>) -> PResult<X> {
        let line = self.t().token[0].line;
        Err(format!("template: :{line}: {}", msg.into()))
    }

    fn unexpected<X>(&mut self, tok: &Item, context: &str) -> PResult<X> {
        if tok.typ == T::Error {
            let action_line = self.t().action_line;
            let mut extra = String::new();
            if action_line != 0 && action_line != tok.line {
                extra = format!(" in action started at :{action_line}");
                if tok.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{extra}", tok.val));
        }
        self.errorf(format!("unexpected {} in {context}", tok.display()))
    }

    fn expect(&mut self, typ: T, context: &str) -> PResult<Item> {
        let tok = self.next_non_space();
        if tok.typ != typ {
            return self.unexpected(&tok, context);
        }
        Ok(tok)
    }

    fn has_function(&self, name: &str) -> bool {
        self.funcs.contains(&name)
    }

    fn add(&mut self, name: &str, root: &[Node]) -> PResult<()> {
        let empty = is_empty_list(root);
        match self.tree_set.get(name) {
            None | Some(true) => {
                self.tree_set.insert(name.to_string(), empty);
                Ok(())
            }
            Some(false) if !empty => self.errorf(format!(
                "template: multiple definition of template {}",
                go_quote(name)
            )),
            Some(false) => Ok(()),
        }
    }

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().typ != T::Eof {
            if self.peek().typ == T::LeftDelim {
                let delim = self.next_tok();
                if self.next_non_space().typ == T::Define {
                    self.trees.push(Tree::new("definition"));
                    let r = self.parse_definition();
                    if r.is_err() {
                        return r.map(|_| Vec::new());
                    }
                    self.trees.pop();
                    continue;
                }
                self.backup2(delim);
            }
            let n = self.text_or_action()?;
            match n {
                Node::End | Node::Else => {
                    return self.errorf(format!("unexpected {}", n.display()));
                }
                n => root.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let tok = self.next_non_space();
        if tok.typ != T::Str && tok.typ != T::RawString {
            return self.unexpected(&tok, context);
        }
        if let Err(e) = check_unquote(&tok.val) {
            return self.errorf(e);
        }
        let name = unquote_simple(&tok.val);
        self.t().name = name.clone();
        self.expect(T::RightDelim, context)?;
        let (list, end) = self.item_list()?;
        if end != Node::End {
            return self.errorf(format!("unexpected {} in {context}", end.display()));
        }
        self.add(&name, &list)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Node)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != T::Eof {
            let n = self.text_or_action()?;
            match n {
                Node::End | Node::Else => return Ok((list, n)),
                n => list.push(n),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Node> {
        let tok = self.next_non_space();
        match tok.typ {
            T::Text => Ok(Node::Text(tok.val)),
            T::LeftDelim => {
                self.t().action_line = tok.line;
                let r = self.action();
                self.t().action_line = 0;
                r
            }
            _ => self.unexpected(&tok, "input"),
        }
    }

    fn action(&mut self) -> PResult<Node> {
        let tok = self.next_non_space();
        match tok.typ {
            T::Block => return self.block_control(),
            T::Break => return self.break_control("{{break}}"),
            T::Continue => return self.break_control("{{continue}}"),
            T::Else => return self.else_control(),
            T::End => {
                self.expect(T::RightDelim, "end")?;
                return Ok(Node::End);
            }
            T::If => return self.parse_control("if").map(|_| Node::If),
            T::Range => return self.parse_control("range").map(|_| Node::Range),
            T::Template => return self.template_control(),
            T::With => return self.parse_control("with").map(|_| Node::With),
            _ => {}
        }
        self.backup();
        self.peek();
        self.pipeline("command", T::RightDelim)?;
        Ok(Node::Action)
    }

    fn break_control(&mut self, what: &str) -> PResult<Node> {
        let tok = self.next_non_space();
        if tok.typ != T::RightDelim {
            return self.unexpected(&tok, what);
        }
        if self.t().range_depth == 0 {
            return self.errorf(format!("{what} outside {{{{range}}}}"));
        }
        Ok(if what == "{{break}}" {
            Node::Break
        } else {
            Node::Continue
        })
    }

    fn else_control(&mut self) -> PResult<Node> {
        let peek = self.peek_non_space();
        if peek.typ == T::If || peek.typ == T::With {
            return Ok(Node::Else);
        }
        self.expect(T::RightDelim, "else")?;
        Ok(Node::Else)
    }

    /// Returns the number of commands in the pipeline (0 is an error already reported).
    fn pipeline(&mut self, context: &str, end: T) -> PResult<Vec<Arg>> {
        self.peek_non_space();
        let mut decls = 0usize;
        loop {
            let v = self.peek_non_space();
            if v.typ != T::Variable {
                break;
            }
            self.next_tok();
            let after = self.peek();
            let next = self.peek_non_space();
            if next.typ == T::Assign || next.typ == T::Declare {
                self.next_non_space();
                self.t().vars.push(v.val.clone());
                break;
            } else if next.typ == T::Char && next.val == "," {
                self.next_non_space();
                decls += 1;
                self.t().vars.push(v.val.clone());
                if context == "range" && decls < 2 {
                    match self.peek_non_space().typ {
                        T::Variable | T::RightDelim | T::RightParen => continue,
                        _ => return self.errorf("range can only initialize variables"),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            } else if after.typ == T::Space {
                self.backup3(v, after);
                break;
            } else {
                self.backup2(v);
                break;
            }
        }
        let mut firsts: Vec<Arg> = Vec::new();
        loop {
            let tok = self.next_non_space();
            if tok.typ == end {
                if firsts.is_empty() {
                    return self.errorf(format!("missing value for {context}"));
                }
                for (i, a) in firsts.iter().enumerate().skip(1) {
                    if matches!(a, Arg::Bool | Arg::Dot | Arg::Nil | Arg::Number | Arg::Str) {
                        return self.errorf(format!(
                            "non executable command in pipeline stage {}",
                            i + 1
                        ));
                    }
                }
                return Ok(firsts);
            }
            match tok.typ {
                T::Bool
                | T::CharConstant
                | T::Complex
                | T::Dot
                | T::Field
                | T::Identifier
                | T::Number
                | T::Nil
                | T::RawString
                | T::Str
                | T::Variable
                | T::LeftParen => {
                    self.backup();
                    let first = self.command()?;
                    firsts.push(first);
                    if firsts.len() > 100000 {
                        return self.errorf("pipeline too long");
                    }
                }
                _ => return self.unexpected(&tok, context),
            }
        }
    }

    /// Parses a command; returns the kind of its first operand.
    fn command(&mut self) -> PResult<Arg> {
        self.peek_non_space();
        let mut first: Option<Arg> = None;
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                first.get_or_insert(op);
            }
            let tok = self.next_tok();
            match tok.typ {
                T::Space => continue,
                T::RightDelim | T::RightParen => self.backup(),
                T::Pipe => {}
                _ => return self.unexpected(&tok, "operand"),
            }
            break;
        }
        match first {
            Some(a) => Ok(a),
            None => self.errorf("empty command"),
        }
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let before = self.idents.len();
        let Some((node, shown)) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ == T::Field {
            let mut fields = Vec::new();
            while self.peek().typ == T::Field {
                fields.push(self.next_tok().val);
            }
            if matches!(node, Arg::Field | Arg::Variable) {
                // The chain is merged into the field or variable node: its idents grow.
                self.idents.extend(
                    fields
                        .iter()
                        .flat_map(|f| f.split('.').filter(|p| !p.is_empty()).map(String::from)),
                );
            } else {
                // A chain node: Ollama's walk does not look inside it.
                self.idents.truncate(before);
            }
            return Ok(Some(match node {
                Arg::Field => Arg::Field,
                Arg::Variable => Arg::Variable,
                Arg::Bool | Arg::Str | Arg::Number | Arg::Nil | Arg::Dot => {
                    return self.errorf(format!("unexpected . after term {}", go_quote(&shown)));
                }
                _ => Arg::Chain,
            }));
        }
        Ok(Some(node))
    }

    fn term(&mut self) -> PResult<Option<(Arg, String)>> {
        let tok = self.next_non_space();
        let out = match tok.typ {
            T::Identifier => {
                if !self.has_function(&tok.val) {
                    return self.errorf(format!("function {} not defined", go_quote(&tok.val)));
                }
                (Arg::Identifier, tok.val)
            }
            T::Dot => (Arg::Dot, ".".into()),
            T::Nil => (Arg::Nil, "nil".into()),
            T::Variable => {
                let head = tok.val.split('.').next().unwrap_or("").to_string();
                if !self.t().vars.contains(&head) {
                    return self.errorf(format!("undefined variable {}", go_quote(&head)));
                }
                self.idents.push(tok.val.clone());
                (Arg::Variable, tok.val)
            }
            T::Field => {
                self.idents.extend(
                    tok.val
                        .split('.')
                        .filter(|p| !p.is_empty())
                        .map(String::from),
                );
                (Arg::Field, tok.val)
            }
            T::Bool => (Arg::Bool, tok.val),
            T::CharConstant | T::Complex | T::Number => {
                if let Err(e) = check_number(&tok.val, tok.typ) {
                    return self.errorf(e);
                }
                (Arg::Number, tok.val)
            }
            T::LeftParen => {
                if self.t().stack_depth >= MAX_STACK_DEPTH {
                    return self.errorf("max expression depth exceeded");
                }
                self.t().stack_depth += 1;
                let r = self.pipeline("parenthesized pipeline", T::RightParen);
                self.t().stack_depth -= 1;
                r?;
                (Arg::Pipe, String::new())
            }
            T::Str | T::RawString => {
                if let Err(e) = check_unquote(&tok.val) {
                    return self.errorf(e);
                }
                (Arg::Str, tok.val)
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(out))
    }

    fn parse_control(&mut self, context: &str) -> PResult<()> {
        let nvars = self.t().vars.len();
        let r = self.parse_control_inner(context);
        self.t().vars.truncate(nvars);
        r
    }

    fn parse_control_inner(&mut self, context: &str) -> PResult<()> {
        self.pipeline(context, T::RightDelim)?;
        if context == "range" {
            self.t().range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.t().range_depth -= 1;
        }
        let (_, next) = r?;
        if next == Node::Else {
            if context == "if" && self.peek().typ == T::If {
                self.next_tok();
                self.parse_control("if")?;
            } else if context == "with" && self.peek().typ == T::With {
                self.next_tok();
                self.parse_control("with")?;
            } else {
                let (_, next) = self.item_list()?;
                if next != Node::End {
                    return self.errorf(format!("expected end; found {}", next.display()));
                }
            }
        }
        Ok(())
    }

    fn parse_template_name(&mut self, tok: &Item, context: &str) -> PResult<String> {
        match tok.typ {
            T::Str | T::RawString => {
                if let Err(e) = check_unquote(&tok.val) {
                    return self.errorf(e);
                }
                Ok(unquote_simple(&tok.val))
            }
            _ => self.unexpected(tok, context),
        }
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let tok = self.next_non_space();
        let name = self.parse_template_name(&tok, context)?;
        self.pipeline(context, T::RightDelim)?;
        self.trees.push(Tree::new(&name));
        let r = self.item_list();
        let (list, end) = r?;
        if end != Node::End {
            // Go reports this with the enclosing tree's last token.
            self.trees.pop();
            return self.errorf(format!("unexpected {} in {context}", end.display()));
        }
        self.add(&name, &list)?;
        self.trees.pop();
        Ok(Node::Template)
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let tok = self.next_non_space();
        self.parse_template_name(&tok, context)?;
        if self.next_non_space().typ != T::RightDelim {
            self.backup();
            self.pipeline(context, T::RightDelim)?;
        } else {
            self.template_without_pipeline = true;
        }
        Ok(Node::Template)
    }
}

fn is_empty_list(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

/// The value of a string token already checked by [`check_unquote`] (names of templates only;
/// escapes are resolved for the common cases).
fn unquote_simple(tok: &str) -> String {
    if let Some(raw) = tok.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return raw.replace('\r', "");
    }
    let inner = &tok[1..tok.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str) -> String {
        check_ollama_template(t).unwrap_err()
    }

    #[test]
    fn basics() {
        check_ollama_template("{{ .Prompt }}").unwrap();
        assert_eq!(
            err("{{ undefinedFunc .Prompt }}"),
            "template: :1: function \"undefinedFunc\" not defined"
        );
        assert_eq!(err("{{ $x }}"), "template: :1: undefined variable \"$x\"");
        assert_eq!(err("{{ }}"), "template: :1: missing value for command");
    }
}
