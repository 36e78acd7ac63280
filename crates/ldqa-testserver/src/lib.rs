//! Scripted OpenAI-compatible SSE server on loopback, for tests and benchmarks.
