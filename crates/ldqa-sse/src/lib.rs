//! Incremental Server-Sent Events decoder: bytes in, events out. No I/O, no async.
