//! A prompt's token identity, as hash chains over blocks and chunks.
//!
//! The simulator never sees tokens. A prompt is identified by a [`PromptKey`]: its
//! first `shared_prefix_tokens` tokens are the same for every prompt (the chat
//! template's system header), the rest is determined by `content` (a hash of the
//! document id and the miss prefix). A 16-token block or a 256-token chunk that lies
//! wholly inside the shared prefix hashes the same for every prompt; any other block
//! hashes from `content` and its index. That is exactly what a hash chain gives when
//! the first differing token sits at `shared_prefix_tokens`.

use serde::{Deserialize, Serialize};

/// The identity of a prompt's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptKey {
    /// Hash of what makes this prompt differ from the others (document, miss prefix).
    pub content: u64,
    /// Leading tokens identical in every prompt (chat template header).
    pub shared_prefix_tokens: u32,
}

const SHARED_SEED: u64 = 0x5eed_c0de_0000_0001;
const BLOCK_DOMAIN: u64 = 0x0b10_c000_0000_0000;
const CHUNK_DOMAIN: u64 = 0xc4a4_c000_0000_0000;

impl PromptKey {
    /// A key from a document id and an optional miss prefix.
    pub fn for_document(document_id: u64, miss_prefix: Option<&str>, shared: u32) -> Self {
        let mut h = fnv1a(&document_id.to_le_bytes(), FNV_OFFSET);
        if let Some(p) = miss_prefix {
            h = fnv1a(&[1], h);
            h = fnv1a(p.as_bytes(), h);
        }
        PromptKey {
            content: mix(h),
            shared_prefix_tokens: shared,
        }
    }

    /// Hash of block `index` (blocks of `block_tokens`).
    pub fn block_hash(&self, index: u64, block_tokens: u32) -> u64 {
        self.unit_hash(index, block_tokens, BLOCK_DOMAIN)
    }

    /// Hash of chunk `index` (chunks of `chunk_tokens`).
    pub fn chunk_hash(&self, index: u64, chunk_tokens: u32) -> u64 {
        self.unit_hash(index, chunk_tokens, CHUNK_DOMAIN)
    }

    fn unit_hash(&self, index: u64, unit: u32, domain: u64) -> u64 {
        let end = (index + 1) * u64::from(unit);
        let base = if end <= u64::from(self.shared_prefix_tokens) {
            SHARED_SEED
        } else {
            self.content
        };
        mix(base ^ mix(index ^ domain ^ (u64::from(unit) << 40)))
    }
}

/// FNV-1a's 64-bit offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `h`.
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: a fast, well-mixed bijection on u64.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefix_blocks_match_and_others_differ() {
        let a = PromptKey::for_document(0, None, 40);
        let b = PromptKey::for_document(1, None, 40);
        assert_eq!(a.block_hash(0, 16), b.block_hash(0, 16));
        assert_eq!(a.block_hash(1, 16), b.block_hash(1, 16));
        assert_ne!(a.block_hash(2, 16), b.block_hash(2, 16));
        assert_ne!(a.chunk_hash(0, 256), b.chunk_hash(0, 256));
        assert_ne!(a.block_hash(0, 16), a.chunk_hash(0, 16));
    }

    #[test]
    fn miss_prefix_changes_the_key() {
        let a = PromptKey::for_document(3, None, 0);
        let b = PromptKey::for_document(3, Some("123 "), 0);
        let c = PromptKey::for_document(3, Some("124 "), 0);
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(b, PromptKey::for_document(3, Some("123 "), 0));
    }
}
