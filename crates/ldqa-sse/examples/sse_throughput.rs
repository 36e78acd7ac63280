//! Decoder throughput over a synthetic vLLM-like chat stream.
//!
//! ```text
//! cargo run -p ldqa-sse --release --example sse_throughput [events]
//! ```
//!
//! Prints events/s and MB/s for three read sizes, for decoding alone and for decoding
//! plus [`ldqa_sse::parse_event`], and the heap allocations per event (counted by a
//! wrapping global allocator) once the decoder's buffers have warmed up. Every tenth
//! token contains a `\n` escape, which makes the JSON layer copy that token's text.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ldqa_sse::{parse_event, Decoder, StreamData};

struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts calls.
#[allow(unsafe_code, reason = "an allocator that counts allocations")]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A stream shaped like vLLM's `/v1/chat/completions` output (see tests/data/vllm_chat.sse).
fn synthetic_stream(content_events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let head = r#"data: {"id":"chatcmpl-9f2c1a7e5b3d4c6a8e0f1b2c3d4e5f60","object":"chat.completion.chunk","created":1764316800,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"#;
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(
        br#""role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    );
    out.extend_from_slice(b"\n\n");
    for i in 0..content_events {
        out.extend_from_slice(head.as_bytes());
        let token = if i % 10 == 9 { r"\n" } else { " hi" };
        out.extend_from_slice(
            format!(r#""content":"{token}"}},"logprobs":null,"finish_reason":null}}]}}"#)
                .as_bytes(),
        );
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(br#"data: {"choices":[],"usage":{"prompt_tokens":10001,"total_tokens":10101,"completion_tokens":100}}"#);
    out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    out
}

struct Run {
    events: u64,
    content: u64,
    seconds: f64,
    allocations: u64,
}

fn run(stream: &[u8], read_bytes: usize, interpret: bool) -> Run {
    let mut decoder = Decoder::new();
    // Warm up: let the buffers reach their steady size.
    for chunk in stream.chunks(read_bytes).take(64) {
        decoder.feed(chunk, |e| drop(black_box(e)));
    }
    decoder.reset();
    let (mut events, mut content) = (0u64, 0u64);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    for chunk in stream.chunks(read_bytes) {
        decoder.push(chunk);
        while let Some(event) = decoder.next_event() {
            events += 1;
            if interpret {
                if let Ok(StreamData::Chunk(c)) =
                    parse_event(&event.expect("synthetic stream is valid"))
                {
                    content += u64::from(c.has_content());
                }
            } else {
                black_box(event.map(|e| e.data.len()).ok());
            }
        }
    }
    let end = decoder.finish();
    assert!(!end.mid_event);
    let seconds = start.elapsed().as_secs_f64();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    Run {
        events,
        content,
        seconds,
        allocations,
    }
}

fn main() {
    let content_events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500_000);
    let stream = synthetic_stream(content_events);
    println!(
        "stream: {} events, {:.1} MB",
        content_events + 3,
        stream.len() as f64 / 1e6
    );
    for read_bytes in [64, 1024, 16 * 1024] {
        for interpret in [false, true] {
            let best = (0..3)
                .map(|_| run(&stream, read_bytes, interpret))
                .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
                .expect("three runs");
            if interpret {
                assert_eq!(best.content, content_events as u64);
            }
            println!(
                "reads of {:>5} B, {:<16} {:>6.2} M events/s  {:>7.1} MB/s  {:.3} allocations/event",
                read_bytes,
                if interpret { "decode+parse:" } else { "decode only:" },
                best.events as f64 / best.seconds / 1e6,
                stream.len() as f64 / best.seconds / 1e6,
                best.allocations as f64 / best.events as f64,
            );
        }
    }
}
