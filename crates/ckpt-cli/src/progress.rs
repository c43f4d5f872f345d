//! Progress bars on stderr, hidden when stderr is not a terminal or output is quiet/JSON.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use ckpt::{ProgressEvent, SharedProgress};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Bars {
    enabled: bool,
    current: Arc<Mutex<Option<ProgressBar>>>,
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        Bars {
            enabled: !quiet && std::io::stderr().is_terminal(),
            current: Arc::new(Mutex::new(None)),
        }
    }

    pub fn callback(&self) -> SharedProgress {
        let enabled = self.enabled;
        let current = self.current.clone();
        Arc::new(move |ev: ProgressEvent<'_>| {
            if !enabled {
                return;
            }
            let mut cur = current.lock().unwrap();
            match ev {
                ProgressEvent::Start { phase, total } => {
                    if let Some(old) = cur.take() {
                        old.finish_and_clear();
                    }
                    let bar = ProgressBar::new(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap()
                        .progress_chars("=> "),
                    );
                    bar.set_message(phase.to_string());
                    *cur = Some(bar);
                }
                ProgressEvent::Advance { bytes } => {
                    if let Some(b) = cur.as_ref() {
                        b.inc(bytes);
                    }
                }
                ProgressEvent::Finish => {
                    if let Some(b) = cur.take() {
                        b.finish_and_clear();
                    }
                }
                _ => {}
            }
        })
    }

    pub fn finish(&self) {
        if let Some(b) = self.current.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}
