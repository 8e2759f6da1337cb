//! Byte buffers reused per thread, for the copies of request heads.
//!
//! A request takes a buffer when it is sent and gives it back when its
//! response future is dropped (on whichever thread that is), so in a steady
//! state nothing is allocated.

use std::cell::{Cell, RefCell};
use std::mem;
use std::ops::{Deref, DerefMut};

/// How many idle buffers a thread keeps. The cap bounds what a thread keeps
/// after a burst; a burst larger than this on one thread frees the surplus,
/// to be allocated again by the next burst.
const POOL_SIZE: usize = 256;

/// Buffers that grew past this (a request with huge headers) are not pooled.
const MAX_POOLED_BYTES: usize = 16 * 1024;

thread_local! {
    /// The buffer given back last, taken first: a request at a time per
    /// thread (the common case) takes and gives back this one without
    /// touching the pool, a swap instead of a `RefCell` borrow and a `Vec`
    /// push and pop (about 70 instructions a request; BENCHMARKS.md).
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A byte buffer from this thread's pool (or a new one if the pool is empty),
/// wiped and given back to the pool of the thread that drops it.
#[derive(Default)]
pub(super) struct PooledBuf {
    bytes: Vec<u8>,
}

impl PooledBuf {
    pub(super) fn take() -> Self {
        let spare = SPARE.try_with(Cell::take).unwrap_or_default();
        if spare.capacity() != 0 {
            return Self { bytes: spare };
        }
        Self::take_pooled()
    }

    #[cold]
    fn take_pooled() -> Self {
        let bytes = POOL
            .try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        Self { bytes }
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut bytes = mem::take(&mut self.bytes);
        if bytes.capacity() == 0 || bytes.capacity() > MAX_POOLED_BYTES {
            return;
        }
        // Header values may be secrets (cookies, API keys): wipe them before
        // the buffer is reused.
        bytes.fill(0);
        bytes.clear();
        // During thread teardown the pool is gone; the buffer is just freed.
        let Ok(previous) = SPARE.try_with(|spare| spare.replace(bytes)) else {
            return;
        };
        if previous.capacity() != 0 {
            give_back(previous);
        }
    }
}

/// Pools a buffer the spare slot had (several requests in flight on this
/// thread), up to [`POOL_SIZE`].
#[cold]
fn give_back(bytes: Vec<u8>) {
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_SIZE {
            pool.push(bytes);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty() {
        let mut buf = PooledBuf::take();
        buf.extend_from_slice(b"cookie: session=abc");
        let (ptr, capacity) = (buf.as_ptr(), buf.capacity());
        drop(buf);
        let reused = PooledBuf::take();
        assert!(reused.is_empty());
        assert_eq!((reused.as_ptr(), reused.capacity()), (ptr, capacity));
    }

    #[test]
    fn huge_buffers_are_not_pooled() {
        let mut buf = PooledBuf::take();
        buf.reserve(MAX_POOLED_BYTES + 1);
        let ptr = buf.as_ptr();
        drop(buf);
        assert_ne!(PooledBuf::take().as_ptr(), ptr);
    }

    #[test]
    fn requests_in_flight_together_each_get_a_buffer_and_all_are_kept() {
        let bufs: Vec<PooledBuf> = (0..3)
            .map(|i| {
                let mut buf = PooledBuf::take();
                buf.push(i);
                buf
            })
            .collect();
        let ptrs: Vec<_> = bufs.iter().map(|buf| buf.as_ptr()).collect();
        assert!(ptrs[0] != ptrs[1] && ptrs[1] != ptrs[2] && ptrs[0] != ptrs[2]);
        drop(bufs);
        // One spare, the others pooled: taken again, wiped, none allocated.
        let again: Vec<PooledBuf> = (0..3).map(|_| PooledBuf::take()).collect();
        let mut reused: Vec<_> = again.iter().map(|buf| buf.as_ptr()).collect();
        reused.sort();
        let mut ptrs = ptrs;
        ptrs.sort();
        assert_eq!(reused, ptrs);
        assert!(again.iter().all(|buf| buf.is_empty()));
    }
}
