//! A counting global allocator: the bytes still allocated, for the suites that
//! measure what caches cost at rest.
//!
//! Not a module of `support/mod.rs`: a global allocator is crate-wide, so only
//! the memory suites opt in, with
//! `#[path = "support/live_bytes.rs"] mod live_bytes;`, each alone in its
//! binary so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes allocated and not yet freed, by the whole process.
pub fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}
