//! Discrete-event simulated engine: vLLM and vLLM+LMCache in virtual time.
