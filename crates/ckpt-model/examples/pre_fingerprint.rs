//! Prints ckpt's pre-tokenizer fingerprint (llama.cpp's `get_vocab_base_pre` hash) of each
//! tokenizer.json given, one `PATH<TAB>HASH` line each (for scripts/interop/tokenizer_fingerprint.py).

use std::path::Path;

use ckpt_model::vocab::bpe::{load_tokenizer, pre_tokenizer_hash};

fn main() {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        let p = Path::new(&arg);
        match load_tokenizer(p).and_then(|t| pre_tokenizer_hash(&t, p)) {
            Ok(h) => println!("{arg}\t{h}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
