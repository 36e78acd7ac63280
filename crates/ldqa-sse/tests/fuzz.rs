//! Random input never panics the decoder or the OpenAI interpretation, and decoding never
//! depends on chunk boundaries ([`ldqa_sse::fuzz::fuzz_decode`] checks both).

use ldqa_sse::fuzz::fuzz_decode;
use ldqa_sse::parse_data;
use proptest::prelude::*;

/// Bytes that matter to the parsers, so random inputs often form lines, fields and JSON.
const ALPHABET: &[u8] = b"data: event:id:retry\r\n\r\n::{}[]\",0123456789 choices delta content [DONE] \xEF\xBB\xBF\xC3\xA9\xFF\x00";

fn structured_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), 0..400)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_decode(&input);
    }

    #[test]
    fn structured_bytes_never_panic(input in structured_bytes()) {
        fuzz_decode(&input);
    }

    #[test]
    fn arbitrary_data_never_panics_the_json_layer(data in ".{0,200}") {
        let _ = parse_data(&data);
    }

    #[test]
    fn chunk_like_json_never_panics(
        content in proptest::option::of(".{0,20}"),
        finish in proptest::option::of("[a-z_]{0,8}"),
        tools in 0usize..4,
        prompt in any::<u64>(),
    ) {
        let delta = serde_json::json!({
            "content": content,
            "tool_calls": (0..tools).map(|i| serde_json::json!({"index": i})).collect::<Vec<_>>(),
        });
        let data = serde_json::json!({
            "choices": [{"delta": delta, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt},
        })
        .to_string();
        let ldqa_sse::StreamData::Chunk(chunk) = parse_data(&data).unwrap() else {
            panic!("a chunk is a chunk");
        };
        prop_assert_eq!(chunk.tool_calls as usize, tools);
        prop_assert_eq!(chunk.usage.and_then(|u| u.prompt_tokens), Some(prompt));
        let has_text = content.as_deref().is_some_and(|c| !c.is_empty());
        prop_assert_eq!(chunk.has_content(), has_text || tools > 0);
    }
}
