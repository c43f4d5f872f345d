//! Model names the way Ollama parses and validates them (types/model/name.go):
//! `[scheme://][host/][namespace/]model[:tag]`, defaults `registry.ollama.ai`, `library`, `latest`.

use std::fmt;
use std::path::PathBuf;

/// The host of a name without one.
pub(crate) const DEFAULT_HOST: &str = "registry.ollama.ai";
/// The namespace of a name without one.
pub(crate) const DEFAULT_NAMESPACE: &str = "library";
/// The tag of a name without one.
pub(crate) const DEFAULT_TAG: &str = "latest";

/// Ollama fills a part that is present but empty (`a/:x`, `/m`) with this, which is never valid.
const MISSING_PART: &str = "!MISSING!";

/// The message Ollama's server returns for a name that does not validate.
pub(crate) const INVALID_MODEL_NAME: &str = "invalid model name";

/// A full Ollama model name, defaults filled in; [`Display`](fmt::Display) prints
/// `host/namespace/model:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelName {
    /// The registry host (`registry.ollama.ai` by default).
    pub host: String,
    /// The namespace (`library` by default).
    pub namespace: String,
    /// The model (`llama3.2`).
    pub model: String,
    /// The tag (`latest` by default).
    pub tag: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Host,
    Namespace,
    Model,
    Tag,
}

impl ModelName {
    /// Parses `s` and fills in the defaults, without validating (see [`ModelName::is_valid`]).
    pub(crate) fn parse_unchecked(s: &str) -> ModelName {
        let mut rest = s.to_string();
        let mut name = ModelName {
            host: String::new(),
            namespace: String::new(),
            model: String::new(),
            tag: String::new(),
        };
        // The tag is what follows the last ':' only when that ':' comes after the last '/', so a
        // host port (`host:5000/ns/m`) is not mistaken for a tag.
        let last_colon = s.rfind(':');
        let last_slash = s.rfind('/');
        if last_colon.is_some() && (last_slash.is_none() || last_colon > last_slash) {
            let (before, after) = cut_promised(&rest, ':').expect("colon present");
            rest = before;
            name.tag = after;
        }
        match cut_promised(&rest, '/') {
            None => name.model = rest,
            Some((before, model)) => {
                name.model = model;
                let before_owned = before;
                match cut_promised(&before_owned, '/') {
                    None => name.namespace = before_owned.clone(),
                    Some((host, namespace)) => {
                        name.namespace = namespace;
                        name.host = match host.split_once("://") {
                            Some((_scheme, h)) => h.to_string(),
                            None => host,
                        };
                    }
                }
            }
        }
        if name.host.is_empty() {
            name.host = DEFAULT_HOST.to_string();
        }
        if name.namespace.is_empty() {
            name.namespace = DEFAULT_NAMESPACE.to_string();
        }
        if name.tag.is_empty() {
            name.tag = DEFAULT_TAG.to_string();
        }
        name
    }

    /// Parses and validates; the error text is Ollama's (`invalid model name`).
    pub fn parse(s: &str) -> crate::Result<ModelName> {
        let name = ModelName::parse_unchecked(s);
        if name.is_valid() {
            Ok(name)
        } else {
            Err(crate::OllamaError::bad_request(INVALID_MODEL_NAME))
        }
    }

    /// The name of the manifest at `host/namespace/model/tag` relative to `manifests/`.
    pub(crate) fn from_parts(parts: [&str; 4]) -> Option<ModelName> {
        let name = ModelName {
            host: parts[0].to_string(),
            namespace: parts[1].to_string(),
            model: parts[2].to_string(),
            tag: parts[3].to_string(),
        };
        name.is_valid().then_some(name)
    }

    /// Every part is valid by Ollama's rules (`Name.IsValid`).
    pub(crate) fn is_valid(&self) -> bool {
        valid_part(Part::Host, &self.host)
            && valid_part(Part::Namespace, &self.namespace)
            && valid_part(Part::Model, &self.model)
            && valid_part(Part::Tag, &self.tag)
    }

    /// `model:tag`, `namespace/model:tag` or `host/namespace/model:tag`, dropping default parts
    /// (the form `ollama list` shows).
    pub(crate) fn display_shortest(&self) -> String {
        let mut s = String::new();
        if !self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            s.push_str(&self.host);
            s.push('/');
            s.push_str(&self.namespace);
            s.push('/');
        } else if !self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
            s.push_str(&self.namespace);
            s.push('/');
        }
        s.push_str(&self.model);
        s.push(':');
        s.push_str(&self.tag);
        s
    }

    /// Path of the manifest relative to the `manifests` directory.
    pub(crate) fn relative_path(&self) -> PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag]
            .iter()
            .collect()
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }
}

/// Splits at the last `sep`; a side left empty becomes [`MISSING_PART`].
fn cut_promised(s: &str, sep: char) -> Option<(String, String)> {
    let i = s.rfind(sep)?;
    let before = &s[..i];
    let after = &s[i + sep.len_utf8()..];
    let or_missing = |x: &str| {
        if x.is_empty() {
            MISSING_PART.to_string()
        } else {
            x.to_string()
        }
    };
    Some((or_missing(before), or_missing(after)))
}

fn valid_part(kind: Part, s: &str) -> bool {
    let max = if kind == Part::Host { 350 } else { 80 };
    if s.is_empty() || s.len() > max {
        return false;
    }
    for (i, c) in s.char_indices() {
        let alnum = c.is_ascii_alphanumeric() || c == '_';
        if i == 0 {
            if !alnum {
                return false;
            }
            continue;
        }
        let ok = match c {
            '-' => true,
            '.' => kind != Part::Namespace,
            ':' => kind == Part::Host,
            _ => alnum,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_shortest() {
        let n = ModelName::parse("llama3.2").unwrap();
        assert_eq!(n.to_string(), "registry.ollama.ai/library/llama3.2:latest");
        assert_eq!(n.display_shortest(), "llama3.2:latest");
        let n = ModelName::parse("me/m:q4").unwrap();
        assert_eq!(n.display_shortest(), "me/m:q4");
        let n = ModelName::parse("registry.ollama.ai/library/qwen2.5:0.5b").unwrap();
        assert_eq!(n.display_shortest(), "qwen2.5:0.5b");
        let n = ModelName::parse("hf.co/user/Repo-GGUF:Q4_K_M").unwrap();
        assert_eq!(
            (
                n.host.as_str(),
                n.namespace.as_str(),
                n.model.as_str(),
                n.tag.as_str()
            ),
            ("hf.co", "user", "Repo-GGUF", "Q4_K_M")
        );
        assert_eq!(
            n.relative_path(),
            PathBuf::from("hf.co/user/Repo-GGUF/Q4_K_M")
        );
        let n = ModelName::parse("https://example.com:5000/team/m").unwrap();
        assert_eq!(n.host, "example.com:5000");
        assert_eq!(n.display_shortest(), "example.com:5000/team/m:latest");
    }

    #[test]
    fn validation_rules() {
        for bad in [
            "",
            "a/:x",
            ":x",
            "-m",
            "m:t/x",
            "ns.dot/m",
            "m:ta:g",
            "m!",
            "é",
            &"x".repeat(81),
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        for good in [
            "m",
            "_m",
            "m-1.2_x:Tag.1-x",
            &"x".repeat(80),
            "h.o:st/n_s-1/m",
        ] {
            assert!(ModelName::parse(good).is_ok(), "{good:?} should be valid");
        }
    }
}
