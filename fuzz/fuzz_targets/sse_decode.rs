//! SSE decoder + OpenAI chunk interpretation.
//!
//! `fuzz_decode` decodes the input whole and in input-chosen chunks (asserting both give the
//! same transcript) and runs `parse_event` on every event; the raw input also goes straight
//! to the JSON layer (`parse_data`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let transcript = ldqa_sse::fuzz::fuzz_decode(data);
    // A dispatched event never exceeds the decoder's limit (1 MiB for the large-limit inputs).
    for event in transcript.events.iter().flatten() {
        assert!(event.as_event().data.len() <= 1 << 20);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ldqa_sse::parse_data(text);
    }
});
