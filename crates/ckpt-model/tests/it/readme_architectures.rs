//! README.md's architecture list (between the `architectures:start/end` markers) is the
//! registry's list of `architectures[0]` values, in registry order.

use std::path::Path;

#[test]
fn readme_lists_exactly_the_supported_architectures() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- architectures:start -->")
        .expect("start marker")
        + 28;
    let end = readme
        .find("<!-- architectures:end -->")
        .expect("end marker");
    let listed: Vec<&str> = readme[start..end]
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let registry: Vec<&str> = ckpt_model::arch::registry()
        .iter()
        .flat_map(|a| a.hf_names().iter().copied())
        .collect();
    assert_eq!(
        listed, registry,
        "README.md's architecture list is out of date"
    );
}
