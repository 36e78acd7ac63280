//! 1,000 documents of 100k words plan in far less than 200 MB: documents are not stored.
//! A counting allocator measures the peak of live heap bytes during `Workload::build`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ldqa_model::PromptSource;
use ldqa_workload::{Workload, WorkloadConfig};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
#[allow(unsafe_code, reason = "an allocator that measures the peak")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn thousand_documents_of_100k_words_plan_under_200_mb() {
    let config = WorkloadConfig {
        num_documents: 1000,
        document_length: 100_000,
        repeat_count: 3,
        hit_miss: Some("1:1".parse().unwrap()),
        ..Default::default()
    };
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let w = Workload::build(&config).unwrap();
    let planned = PEAK.load(Ordering::Relaxed) - before;
    // Rendering reuses one buffer: memory grows with the requests in flight only.
    let mut buf = String::new();
    let mut bytes = 0usize;
    for spec in &w.query {
        w.write_prompt(spec, &mut buf);
        bytes += buf.len();
    }
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!("plan peak {planned} B, with rendering {peak} B, rendered {bytes} B in total");
    assert!(
        bytes > 3 * 1000 * 300_000,
        "every prompt really was rendered"
    );
    assert!(planned < 200 << 20, "planning peaked at {planned} bytes");
    assert!(peak < 200 << 20, "rendering peaked at {peak} bytes");
}
