//! Deployment recommender: TP, GPU KV cache sizing the way vLLM does it, LMCache CPU offload size, workload.
