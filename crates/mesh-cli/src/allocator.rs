//! The process's allocator: mimalloc or the C library's, chosen once, at
//! the process's first allocation, from `MESH_ALLOCATOR`.
//!
//! mimalloc frees the many small, short-lived values of statements,
//! plans and lineage faster than the C library's allocator (as
//! DataFusion's own CLI does), but its first pages cost a one-shot
//! command part of its start (BENCHMARKS.md, "The allocator at
//! start-up"). The variable lets an operator choose, and lets one build
//! be measured both ways.
//!
//! Invariant: the choice is made before the first block is handed out
//! and never changes, so every block is freed by the allocator that gave
//! it. Deciding reads the environment with `getenv`, which does not
//! allocate.
//!
//! The workspace's one `unsafe` code: a `GlobalAlloc` cannot be written
//! without it. Each block passes its caller's contract to one allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// The variable naming the allocator.
pub const VARIABLE: &str = "MESH_ALLOCATOR";

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;
/// mimalloc, because the variable held something else; said on stderr
/// once the process can allocate.
const MIMALLOC_UNKNOWN: u8 = 3;

static CHOSEN: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The global allocator: dispatches every call to the chosen one.
pub struct Allocator;

#[inline]
fn chosen() -> u8 {
    match CHOSEN.load(Ordering::Relaxed) {
        UNDECIDED => decide(),
        c => c,
    }
}

#[cold]
fn decide() -> u8 {
    // SAFETY: the name is a valid C string; the process never sets its
    // environment, so nothing writes it while it is read.
    let value = unsafe { libc::getenv(c"MESH_ALLOCATOR".as_ptr()) };
    let choice = if value.is_null() {
        MIMALLOC
    } else {
        // SAFETY: `getenv` returns a valid C string or null.
        match unsafe { CStr::from_ptr(value) }.to_bytes() {
            b"" | b"mimalloc" => MIMALLOC,
            b"system" => SYSTEM,
            _ => MIMALLOC_UNKNOWN,
        }
    };
    // Two threads may race here before `main`'s first allocation is
    // done; both read the same variable, and the first store wins.
    match CHOSEN.compare_exchange(UNDECIDED, choice, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => choice,
        Err(earlier) => earlier,
    }
}

#[inline]
fn system() -> bool {
    chosen() == SYSTEM
}

/// The warning for a value `MESH_ALLOCATOR` does not name, if it held one.
pub fn warning() -> Option<String> {
    (chosen() == MIMALLOC_UNKNOWN).then(|| {
        let value = std::env::var_os(VARIABLE).unwrap_or_default();
        format!(
            "warning: {VARIABLE}={} names no allocator; using mimalloc (set it to `mimalloc` or `system`)",
            value.to_string_lossy()
        )
    })
}

// SAFETY: every call goes to one allocator, the same for the whole
// process (see the module's invariant), whose own `GlobalAlloc`
// contract is passed through unchanged.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if system() {
            unsafe { System.alloc(layout) }
        } else {
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if system() {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if system() {
            unsafe { System.dealloc(ptr, layout) }
        } else {
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if system() {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every alignment the process asks for come back aligned,
    /// writable and freeable through the dispatch, whichever allocator
    /// this test process chose.
    #[test]
    fn blocks_round_trip_through_the_chosen_allocator() {
        let a = Allocator;
        for align in [1, 8, 16, 64, 4096] {
            for size in [1, 24, 4000, 1 << 20] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc_zeroed(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0);
                    assert_eq!(*p, 0);
                    *p.add(size - 1) = 7;
                    let q = a.realloc(p, layout, size * 2);
                    assert!(!q.is_null());
                    assert_eq!(*q.add(size - 1), 7);
                    a.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
                }
            }
        }
        assert_ne!(chosen(), UNDECIDED);
    }
}
