//! Output buffers handed back by writers once their bytes are on disk, for the next computed
//! tensor to reuse. A fresh multi-megabyte allocation costs a page fault and a zeroed page per
//! 4 KiB and an munmap afterwards, which dominated conversions once the arithmetic was cheap.

use std::sync::Mutex;

/// At most this many idle buffers are kept (one per writer thread is enough).
const KEEP: usize = 4;

static IDLE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` bytes. Its contents are unspecified (zeros or an earlier tensor's
/// bytes): callers overwrite every byte.
pub fn take(len: usize) -> Vec<u8> {
    let reused = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest idle buffer that already holds `len` initialised bytes, else the largest.
        let fit = idle
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let pick = fit.or_else(|| {
            idle.iter()
                .enumerate()
                .max_by_key(|(_, b)| b.len())
                .map(|(i, _)| i)
        });
        pick.map(|i| idle.swap_remove(i))
    };
    match reused {
        Some(mut b) => {
            if b.len() >= len {
                b.truncate(len);
            } else {
                b.resize(len, 0);
            }
            b
        }
        None => {
            let b = vec![0u8; len];
            advise_huge_pages(&b);
            b
        }
    }
}

/// Asks for transparent huge pages on a fresh, untouched allocation: a 50 MB tensor then costs
/// a few dozen page faults instead of twelve thousand.
fn advise_huge_pages(b: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (b.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (b.as_ptr() as usize + b.len()) / HUGE * HUGE;
        if end > start {
            // Advisory only: failure just means ordinary pages.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
}

/// Returns a buffer for reuse.
pub fn give(buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    // Its length is what was initialised, so a later `take` can shrink it without zeroing.
    let len = buf.len();
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < KEEP {
        idle.push(buf);
    } else if let Some((i, _)) = idle
        .iter()
        .enumerate()
        .min_by_key(|(_, b)| b.len())
        .filter(|(_, b)| b.len() < len)
    {
        idle[i] = buf;
    }
}

/// Frees every idle buffer (a writer calls this when its output is complete).
pub fn clear() {
    IDLE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_sizes_exactly() {
        clear();
        let mut a = take(1000);
        assert_eq!(a.len(), 1000);
        a.iter_mut().for_each(|b| *b = 7);
        let ptr = a.as_ptr();
        give(a);
        let b = take(500);
        assert_eq!(
            (b.len(), b.as_ptr()),
            (500, ptr),
            "the idle buffer is reused without reallocating"
        );
        give(b);
        let c = take(2000);
        assert_eq!(c.len(), 2000);
        assert!(c[500..].iter().all(|&x| x == 0), "growth is zero-filled");
        clear();
    }
}
