//! OpenAI-compatible streaming client and the bounded-concurrency round runner.
