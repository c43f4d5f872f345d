//! `cargo run -p ckpt-quant --example quantize -- INPUT OUTPUT FTYPE [--imatrix FILE] [--pure]`
//! A thin driver over `quantize_gguf`, handy for comparing with llama-quantize by hand.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let mut imatrix = None;
    let mut pure = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--imatrix" => imatrix = it.next(),
            "--pure" => pure = true,
            _ => positional.push(a),
        }
    }
    if positional.len() != 3 {
        eprintln!("usage: quantize INPUT OUTPUT FTYPE [--imatrix FILE] [--pure]");
        std::process::exit(2);
    }
    let run = || -> ckpt_core::Result<ckpt_quant::QuantizeReport> {
        let mut opts = ckpt_quant::QuantizeOptions::new(ckpt_quant::parse_ftype(&positional[2])?);
        opts.pure = pure;
        opts.imatrix = imatrix.map(Into::into);
        opts.overwrite = true;
        ckpt_quant::quantize_gguf(positional[0].as_ref(), positional[1].as_ref(), &opts)
    };
    match run() {
        Ok(report) => {
            for t in &report.tensors {
                let fallback = t
                    .fallback_from
                    .map(|f| format!(" (fallback from {f})"))
                    .unwrap_or_default();
                println!(
                    "{:<36} {:>6} -> {:<6}{}{}",
                    t.name,
                    t.from,
                    t.to,
                    if t.used_imatrix { " imatrix" } else { "" },
                    fallback
                );
            }
            println!("{} -> {} bytes", report.input_bytes, report.output_bytes);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
