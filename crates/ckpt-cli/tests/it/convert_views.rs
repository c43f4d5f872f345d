//! `ckpt convert` of expanded views (`torch.zeros(1).expand(N, M)`, stride 0) and of sources
//! whose `.bin` output would exceed the torch reader's own limits.

use std::path::Path;
use std::process::{Command, Output};

fn ckpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .expect("run ckpt")
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A STORED zip with torch.save's record set (`archive/data.pkl`, `.format_version`,
/// `.storage_alignment`, `byteorder`, `data/<k>`, `version`, `.data/serialization_id`).
fn torch_zip(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut records: Vec<(String, Vec<u8>)> = vec![
        ("archive/data.pkl".into(), pickle.to_vec()),
        ("archive/.format_version".into(), b"1".to_vec()),
        ("archive/.storage_alignment".into(), b"64".to_vec()),
        ("archive/byteorder".into(), b"little".to_vec()),
    ];
    for (k, d) in storages {
        records.push((format!("archive/data/{k}"), d.to_vec()));
    }
    records.push(("archive/version".into(), b"3\n".to_vec()));
    records.push((
        "archive/.data/serialization_id".into(),
        b"0123456789012345678901234567890123456789".to_vec(),
    ));
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in &records {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut h = Vec::new();
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(records.len() as u16).to_le_bytes());
    out.extend_from_slice(&(records.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn binunicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

fn int(v: u32) -> Vec<u8> {
    let mut out = vec![b'J'];
    out.extend_from_slice(&v.to_le_bytes());
    out
}

/// The pickle torch writes for `{'w': torch.full((1,), 1.5).expand(rows, cols)}`:
/// `_rebuild_tensor_v2(storage('0', FloatStorage, numel 1), 0, (rows, cols), (0, 0), False,
/// OrderedDict())`, memo PUTs as CPython's pickler places them.
fn expanded_pickle(rows: u32, cols: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00".to_vec();
    p.extend(binunicode("w"));
    p.extend_from_slice(b"q\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((");
    p.extend(binunicode("storage"));
    p.extend_from_slice(b"q\x03ctorch\nFloatStorage\nq\x04");
    p.extend(binunicode("0"));
    p.extend_from_slice(b"q\x05");
    p.extend(binunicode("cpu"));
    p.extend_from_slice(b"q\x06K\x01tq\x07QK\x00");
    p.extend(int(rows));
    p.extend(int(cols));
    p.extend_from_slice(
        b"\x86q\x08K\x00K\x00\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs.",
    );
    p
}

fn write_expanded(dir: &Path, rows: u32, cols: u32) -> std::path::PathBuf {
    let path = dir.join("expanded.bin");
    let zip = torch_zip(
        &expanded_pickle(rows, cols),
        &[("0", &1.5f32.to_le_bytes()[..])],
    );
    std::fs::write(&path, zip).unwrap();
    path
}

/// Issue #14 item 4: a 40 GB expand() of 4 stored bytes used to abort the process ("memory
/// allocation of 40000000000 bytes failed", SIGABRT) and leave its temporary file. It is now
/// refused with exit 5 naming the tensor, and nothing is left behind.
#[test]
fn expanded_view_is_refused_by_default_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_expanded(dir.path(), 100_000, 100_000);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let dst = out_dir.join("w.safetensors");
    for extra in [&[][..], &["--dtype", "f16"][..]] {
        let mut args = vec!["convert", src.to_str().unwrap(), dst.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = ckpt(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{extra:?}: {err}");
        assert!(
            err.contains("'w'")
                && err.contains("40000000000")
                && err.contains("--allow-expanded-views"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    }
    // inspect only describes it.
    let out = ckpt(&["inspect", src.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With the flag a small expanded view is written dense (and verified) without error.
#[test]
fn expanded_view_is_written_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_expanded(dir.path(), 300, 500);
    let dst = dir.path().join("w.safetensors");
    let out = ckpt(&[
        "convert",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--allow-expanded-views",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ck = ckpt_safetensors::read(&dst).unwrap();
    let t = &ck.tensors[0];
    assert_eq!((t.name.as_str(), t.shape.clone()), ("w", vec![300, 500]));
    let bytes = t.bytes().unwrap();
    assert_eq!(bytes.len(), 300 * 500 * 4);
    assert!(bytes.chunks(4).all(|c| c == 1.5f32.to_le_bytes()));
}

/// Issue #14 item 10: 700,000 one-byte tensors make a pickle of 4,200,002 containers. The
/// reader's old container limit (4,194,304) refused it, after the old writer had written it;
/// the reader's budgets now admit a torch-written pickle of a million tensors and more (issue #14
/// round 2), so it converts and reads back. (The refusal before writing, for checkpoints over the
/// limits, is tested by ckpt-torch's `check_limits` tests.)
#[test]
fn bin_of_700k_tensors_is_within_the_reader_limits() {
    let dir = tempfile::tempdir().unwrap();
    let n = 700_000usize;
    let mut header = String::from("{");
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[{i},{}]}}",
            i + 1
        ));
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + n, 7);
    let src = dir.path().join("many.safetensors");
    std::fs::write(&src, bytes).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let dst = out_dir.join("many.bin");
    let out = ckpt(&["convert", src.to_str().unwrap(), dst.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let back = ckpt_torch::read(&dst, &Default::default()).unwrap();
    assert_eq!(back.tensors.len(), n);
}
