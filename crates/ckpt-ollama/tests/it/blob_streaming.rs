//! A large `/api/blobs` upload is streamed to disk: the server (in this process) never holds
//! the body, so the peak resident memory grows by far less than the upload. Alone in its test
//! binary so no other test moves the peak.

use std::io::{Read, Write};
use std::net::TcpStream;

use ckpt_ollama::{server, Store};
use sha2::{Digest as _, Sha256};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_large_blob_upload_is_streamed_not_buffered() {
    const SIZE: usize = 256 << 20;
    const CHUNK: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let handle = server::spawn(
        "127.0.0.1:0",
        store.clone(),
        server::ServerOptions::default(),
    )
    .unwrap();

    // The bytes are generated twice (hash first, then send) so the client holds one chunk only.
    let chunk_at =
        |i: usize| -> Vec<u8> { (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect() };
    let mut hasher = Sha256::new();
    for i in 0..SIZE / CHUNK {
        hasher.update(chunk_at(i));
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let before = vm_hwm_kib();
    let mut s = TcpStream::connect(handle.addr).unwrap();
    write!(
        s,
        "POST /api/blobs/sha256:{digest} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {SIZE}\r\n\r\n",
        handle.addr
    )
    .unwrap();
    for i in 0..SIZE / CHUNK {
        s.write_all(&chunk_at(i)).unwrap();
    }
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let grown_mib = (vm_hwm_kib().saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 64,
        "peak RSS grew by {grown_mib} MiB for a 256 MiB upload: the body was buffered"
    );
    let blob = store.root().join("blobs").join(format!("sha256-{digest}"));
    assert_eq!(std::fs::metadata(blob).unwrap().len(), SIZE as u64);
}
