//! The global allocator: two dlmalloc heaps, one for big buffers (event JSON,
//! payload strings, pages of events) and one for everything else. Wasm
//! memory never shrinks, so what matters is whether a call's big buffers find
//! room in what the last call freed. In one shared heap they often do not:
//! the small objects that outlive a call (the new state, caches) are placed
//! in the space big buffers left and split it, and the next big buffer grows
//! the memory (docs/architecture.md#the-append-path). Apart, the big heap is
//! whole again after every call.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;

use dlmalloc::Dlmalloc;

/// Allocations of at least this many bytes go to the big heap.
const BIG_BYTES: usize = 64 * 1024;

struct SplitHeap {
    small: UnsafeCell<Dlmalloc>,
    big: UnsafeCell<Dlmalloc>,
}

// Wasm without threads: only one thread ever reaches the heaps.
unsafe impl Sync for SplitHeap {}

#[global_allocator]
static HEAP: SplitHeap = SplitHeap { small: UnsafeCell::new(Dlmalloc::new()), big: UnsafeCell::new(Dlmalloc::new()) };

impl SplitHeap {
    /// The heap that serves (and frees) allocations of `size` bytes.
    #[allow(clippy::mut_from_ref)]
    unsafe fn heap(&self, size: usize) -> &mut Dlmalloc {
        &mut *if size >= BIG_BYTES { self.big.get() } else { self.small.get() }
    }
}

unsafe impl GlobalAlloc for SplitHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap(layout.size()).malloc(layout.size(), layout.align())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.heap(layout.size()).calloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.heap(layout.size()).free(ptr, layout.size(), layout.align())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if (layout.size() >= BIG_BYTES) == (new_size >= BIG_BYTES) {
            return self.heap(layout.size()).realloc(ptr, layout.size(), layout.align(), new_size);
        }
        // Crossing heaps: allocate in the other one, move, free here.
        let moved = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        moved
    }
}
