//! Long Doc QA workload: documents, repeat modes, hit/miss plans, seeded randomness.
