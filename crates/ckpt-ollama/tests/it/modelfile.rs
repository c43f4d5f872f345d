//! Modelfile parsing with Ollama's rules (parser/parser.go) and printing back as
//! `ollama show --modelfile` does, including quoting edge cases.

use crate::common;

use ckpt_ollama::{Command, CreateSpec, Message, ModelSource, Modelfile};
use serde_json::json;

fn cmds(text: &str) -> Vec<(String, String)> {
    Modelfile::parse(text)
        .unwrap()
        .commands
        .into_iter()
        .map(|c| (c.name, c.args))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn commands_are_case_insensitive_and_comments_skipped() {
    let text = "# a comment\nfrom base-model\n  Parameter temperature 0.5\nsystem    be brief   \n# PARAMETER top_k 1\nLICENSE \"Apache 2.0  \"\n";
    assert_eq!(
        cmds(text),
        pairs(&[
            ("model", "base-model"),
            ("temperature", "0.5"),
            ("system", "be brief"),
            ("license", "Apache 2.0  ")
        ])
    );
}

#[test]
fn quoted_values() {
    let text = "FROM m\nTEMPLATE \"\"\"\n{{ .System }}\n\n{{ .Prompt }}\n\"\"\"   \nSYSTEM \"\"\"He said \"hi\" twice\"\"\"\nPARAMETER stop \"<|end|>\"\nPARAMETER stop \"  spaced  \"\nMESSAGE user \"\"\"multi\nline\"\"\"\nSYSTEM \"\"\"\"\"\"\n";
    assert_eq!(
        cmds(text),
        pairs(&[
            ("model", "m"),
            ("template", "\n{{ .System }}\n\n{{ .Prompt }}\n"),
            ("system", "He said \"hi\" twice"),
            ("stop", "<|end|>"),
            ("stop", "  spaced  "),
            ("message", "user: multi\nline"),
            ("system", ""),
        ])
    );
    // Quotes inside a triple-quoted value, and a lone single quote.
    assert_eq!(
        cmds("FROM m\nSYSTEM \"\"\"a\"b\"\"c\"\"\"\nLICENSE \"'\"")[1..],
        pairs(&[("system", "a\"b\"\"c"), ("license", "'")])
    );
    // Unquoted values keep inner spaces; CRLF line ends work.
    assert_eq!(
        cmds("FROM m\r\nSYSTEM two  words\r\n")[1..],
        pairs(&[("system", "two  words")])
    );
}

#[test]
fn errors_have_ollamas_text_and_line_numbers() {
    let err = |t: &str| Modelfile::parse(t).unwrap_err().to_string();
    assert_eq!(
        err("\nFROM foo\nBADCOMMAND x y\n"),
        "(line 3): command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\""
    );
    assert_eq!(
        err("FROM foo\nMESSAGE robot hi\n"),
        "(line 2): message role must be one of \"system\", \"user\", or \"assistant\""
    );
    assert_eq!(
        err("FROM foo\nPARAMETER param1\n"),
        "unexpected EOF: param1"
    );
    assert_eq!(
        err("FROM foo\nSYSTEM \"\"\"never closed\n"),
        "unexpected EOF"
    );
    assert_eq!(err("FROM foo\nSYSTEM \"\"\"almost\"\"\n"), "unexpected EOF");
    assert_eq!(err("SYSTEM hi\n"), "no FROM line");
    assert_eq!(err("FROM\n"), "(line 2): command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"");
}

#[test]
fn format_round_trips() {
    let modelfile = Modelfile {
        commands: vec![
            Command {
                name: "model".into(),
                args: "/blobs/sha256-abc".into(),
            },
            Command {
                name: "template".into(),
                args: "{{ .System }}\nUSER: \"{{ .Prompt }}\"".into(),
            },
            Command {
                name: "system".into(),
                args: " leading space".into(),
            },
            Command {
                name: "stop".into(),
                args: "<|im_end|>".into(),
            },
            Command {
                name: "temperature".into(),
                args: "0.7".into(),
            },
            Command {
                name: "license".into(),
                args: "line one\nline two".into(),
            },
            Command {
                name: "message".into(),
                args: "user: what's \"up\"?".into(),
            },
            Command {
                name: "message".into(),
                args: "assistant: two\nlines".into(),
            },
        ],
    };
    let text = modelfile.to_string();
    assert_eq!(
        text,
        "FROM /blobs/sha256-abc\nTEMPLATE \"\"\"{{ .System }}\nUSER: \"{{ .Prompt }}\"\"\"\"\nSYSTEM \" leading space\"\nPARAMETER stop <|im_end|>\nPARAMETER temperature 0.7\nLICENSE \"line one\nline two\"\nMESSAGE user what's \"up\"?\nMESSAGE assistant \"two\nlines\"\n"
    );
    assert_eq!(Modelfile::parse(&text).unwrap(), modelfile);
}

#[test]
fn modelfile_to_create_spec() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = common::tiny_model(dir.path(), "model.gguf", None, 1);
    let text = "FROM ./model.gguf\nPARAMETER temperature 0.7\nPARAMETER stop <|im_end|>\nPARAMETER stop </s>\nPARAMETER num_ctx 8192\nPARAMETER mirostat 2\nSYSTEM hi\nMESSAGE user ping\nLICENSE MIT\n";
    let (spec, warnings) =
        CreateSpec::from_modelfile(&Modelfile::parse(text).unwrap(), dir.path()).unwrap();
    assert_eq!(spec.source, ModelSource::Gguf(gguf));
    assert_eq!(
        warnings,
        vec!["parameter mirostat is deprecated".to_string()]
    );
    assert_eq!(
        serde_json::Value::Object(spec.parameters.clone()),
        json!({"num_ctx": 8192, "stop": ["<|im_end|>", "</s>"], "temperature": 0.7})
    );
    assert_eq!(spec.system.as_deref(), Some("hi"));
    assert_eq!(spec.messages, vec![Message::new("user", "ping")]);
    assert_eq!(spec.licenses, vec!["MIT".to_string()]);

    let (mut spec, _) =
        CreateSpec::from_modelfile(&Modelfile::parse("FROM llama3.2:1b\n").unwrap(), dir.path())
            .unwrap();
    spec.set_parameter("stop=<a>").unwrap();
    spec.set_parameter("stop=<b>").unwrap();
    spec.set_parameter("top_p=0.9").unwrap();
    assert_eq!(
        serde_json::Value::Object(spec.parameters.clone()),
        json!({"stop": ["<a>", "<b>"], "top_p": 0.9})
    );
    assert!(spec.set_parameter("temperature").is_err());
    assert_eq!(spec.source, ModelSource::Model("llama3.2:1b".into()));

    let err = CreateSpec::from_modelfile(
        &Modelfile::parse("FROM x\nPARAMETER top_k many\n").unwrap(),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.message, "invalid int value [many]");
}
