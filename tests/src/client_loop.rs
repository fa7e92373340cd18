//! A client loop beside a change: attempts made one after the other on another thread, from
//! before the change starts until some time after it ended, every result kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What a loop made.
#[derive(Debug)]
pub struct Attempts<T> {
    /// Every result, in order.
    pub results: Vec<T>,
    /// How many were made while the change ran.
    pub during: usize,
}

/// Runs `attempt` in a loop on another thread: three attempts first, then `change` on this
/// thread, then `after` more attempts. Panics if the loop stalls for a minute.
pub fn around<T: Send + 'static>(
    mut attempt: impl FnMut() -> T + Send + 'static,
    change: impl FnOnce(),
    after: usize,
) -> Attempts<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let worker = {
        let (stop, results) = (stop.clone(), results.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = attempt();
                results.lock().unwrap().push(r);
            }
        })
    };
    let done = || results.lock().unwrap().len();
    let wait_for = |n: usize| {
        let start = Instant::now();
        while done() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the client loop stalled"
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(3);
    let before = done();
    change();
    let ended = done();
    wait_for(ended + after);
    stop.store(true, Ordering::SeqCst);
    worker.join().unwrap();
    let results = std::mem::take(&mut *results.lock().unwrap());
    Attempts {
        results,
        during: ended - before,
    }
}
