//! Request bodies of the simulated server (`ldqa serve`): the pure parser behind
//! `/v1/chat/completions` and `/v1/completions`, then the prompt counting and keying the
//! route does next. The first byte picks the endpoint; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ldqa_serve::openai::parse;
use ldqa_serve::TokenCounter;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let chat = selector & 1 == 1;
    if let Ok(req) = parse(body, chat) {
        assert!(req.max_tokens >= 1, "a validated request writes at least one token");
        assert_eq!(req.prompt.chat, chat);
        if chat {
            assert!(!req.prompt.parts.is_empty());
            assert_eq!(req.prompt.parts.len(), req.prompt.roles.len());
        } else {
            assert_eq!(req.prompt.parts.len(), 1);
        }
        let _ = req.prompt.count(&TokenCounter::Approx);
        let _ = req.prompt.key();
    }
});
