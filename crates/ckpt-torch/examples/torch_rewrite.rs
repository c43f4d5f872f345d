//! Reads a torch checkpoint and writes its tensors back as a torch zip checkpoint.
//! Usage: cargo run -p ckpt-torch --example torch_rewrite -- IN OUT [KEY]
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: torch_rewrite IN OUT [KEY]");
        std::process::exit(2);
    };
    let opts = ckpt_torch::ReadOptions {
        key: args.get(3).cloned(),
    };
    let result = ckpt_torch::read(Path::new(input), &opts).and_then(|ck| {
        ckpt_torch::write(Path::new(output), &ck.tensors, true).map(|_| ck.tensors.len())
    });
    match result {
        Ok(n) => println!("wrote {n} tensors to {output}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
