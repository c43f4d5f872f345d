//! Prints what ckpt-torch reads from a checkpoint: tensors (dtype, shape, view), extras, globals.
//! Usage: cargo run -p ckpt-torch --example torch_dump -- FILE [KEY]
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: torch_dump FILE [KEY]");
        std::process::exit(2);
    };
    let path = Path::new(file);
    match ckpt_torch::scan_globals(path) {
        Ok(g) => println!("globals: {g:?}"),
        Err(e) => println!("scan error: {e}"),
    }
    let opts = ckpt_torch::ReadOptions {
        key: args.get(2).cloned(),
    };
    match ckpt_torch::read(path, &opts) {
        Ok(ck) => {
            println!("format: {}", ck.format.name());
            for t in &ck.tensors {
                let v = t.view().unwrap();
                println!(
                    "{} {} {:?} storage#{} ({}) offset {} strides {:?}",
                    t.name, t.dtype, t.shape, v.storage.id, v.storage.label, v.offset, v.strides
                );
            }
            for (k, v) in &ck.extras {
                println!("extra {k} = {v}");
            }
        }
        Err(e) => {
            println!("error ({:?}): {e}", e.kind());
            std::process::exit(1);
        }
    }
}
