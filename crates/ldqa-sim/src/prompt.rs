//! A prompt's token identity, as hash chains over blocks and chunks.
//!
//! The simulator never sees tokens. A prompt is identified by a [`PromptKey`], one of two
//! kinds that give the same answer to the only question the caches ask: "hash of block
//! `i` of `n` tokens", equal for two prompts exactly when their first `(i + 1) · n` tokens
//! are (up to 64-bit hash collisions).
//!
//! - [`PromptKey::Document`] (Long Doc QA, `ldqa predict`): the first
//!   `shared_prefix_tokens` tokens are the same for every prompt (the chat template's
//!   header), the rest is determined by `content` (a hash of the document id and the miss
//!   prefix). A block that lies wholly inside the shared prefix hashes the same for every
//!   prompt; any other block hashes from `content` and its index. That is what a hash
//!   chain gives when the first differing token sits at `shared_prefix_tokens`, without
//!   storing a hash per token (a million-request prediction stays small).
//! - [`PromptKey::Tokens`] (any prompt, `ldqa serve`): a [`TokenChain`], the chain hash
//!   after every token, so prompts that share any prefix (a system prompt, a
//!   conversation's earlier turns) share exactly its full blocks and chunks, as vLLM's
//!   block hashes and LMCache's chunk hashes do.

use std::sync::Arc;

/// The identity of a prompt's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PromptKey {
    /// A shared header, then tokens unique to one document.
    Document {
        /// Hash of what makes this prompt differ from the others (document, miss prefix).
        content: u64,
        /// Leading tokens identical in every prompt (chat template header).
        shared_prefix_tokens: u32,
    },
    /// The prompt's own tokens, chained.
    Tokens(TokenChain),
    /// A trace's prompt: blocks of a fixed size named by ids ([`BlockChain`]).
    Blocks(BlockChain),
}

/// A prompt known only as blocks of `block_tokens` named by ids, as a trace records it
/// (Mooncake's `hash_ids`): equal ids are equal blocks, and a prompt shares its first `m`
/// tokens with another exactly when the ids of the blocks covering them are equal. So a
/// unit (an engine block, an LMCache chunk) ending at token `e` is named by the chain of the
/// ids covering tokens `0..e` and its position; units need not align with the trace's
/// blocks. Eight bytes per trace block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockChain {
    chain: Arc<[u64]>,
    block_tokens: u32,
    tokens: u64,
}

impl BlockChain {
    /// A prompt of `tokens` tokens whose blocks of `block_tokens` are named `ids`.
    pub fn new(ids: &[u64], block_tokens: u32, tokens: u64) -> Self {
        let mut h = BLOCKS_SEED;
        let chain = ids
            .iter()
            .map(|&id| {
                h = link(h, id);
                h
            })
            .collect();
        BlockChain {
            chain,
            block_tokens: block_tokens.max(1),
            tokens,
        }
    }

    /// The chain after the ids covering the first `end` tokens; `None` past the prompt.
    fn covering(&self, end: u64) -> Option<u64> {
        if end == 0 || end > self.tokens {
            return None;
        }
        let blocks = end.div_ceil(u64::from(self.block_tokens));
        let i = usize::try_from(blocks - 1).ok()?;
        self.chain.get(i).copied()
    }
}

/// The chain hash after each token of a prompt: `chain[i]` names tokens `0..=i`; and,
/// when known, the token the model writes every time (`ldqa serve`'s simulated model), so
/// blocks filled by the output are named too, as vLLM names them (a conversation's next
/// turn, which repeats the answer, hits them).
///
/// Eight bytes per prompt token, held while the request is in the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenChain {
    chain: Arc<[u64]>,
    output: Option<u64>,
}

/// One link of the chain.
fn link(h: u64, token: u64) -> u64 {
    mix(h ^ mix(token ^ TOKEN_DOMAIN))
}

impl TokenChain {
    /// Chains `tokens` (token ids, or any 64-bit names for them).
    pub fn new(tokens: impl IntoIterator<Item = u64>) -> Self {
        let mut h = TOKEN_SEED;
        let chain = tokens
            .into_iter()
            .map(|t| {
                h = link(h, t);
                h
            })
            .collect();
        TokenChain {
            chain,
            output: None,
        }
    }

    /// The same prompt, followed by `token` for every output token.
    pub fn then_output(self, token: u64) -> Self {
        TokenChain {
            output: Some(token),
            ..self
        }
    }

    /// Prompt tokens chained.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether there are no prompt tokens.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// The chain hash after the first `n` tokens (`n` ≥ 1), the output's past the prompt;
    /// `None` past the prompt when the output is unknown.
    fn after(&self, n: u64) -> Option<u64> {
        let len = self.chain.len() as u64;
        if n == 0 {
            return None;
        }
        if n <= len {
            return usize::try_from(n - 1).ok().map(|i| self.chain[i]);
        }
        let out = self.output?;
        let start = self.chain.last().copied().unwrap_or(TOKEN_SEED);
        Some((len..n).fold(start, |h, _| link(h, out)))
    }
}

const SHARED_SEED: u64 = 0x5eed_c0de_0000_0001;
const TOKEN_SEED: u64 = 0x5eed_c0de_0000_0002;
const BLOCKS_SEED: u64 = 0x5eed_c0de_0000_0003;
const TOKEN_DOMAIN: u64 = 0x70ce_4000_0000_0000;
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
        PromptKey::Document {
            content: mix(h),
            shared_prefix_tokens: shared,
        }
    }

    /// A key from the prompt's tokens.
    pub fn for_tokens(tokens: impl IntoIterator<Item = u64>) -> Self {
        PromptKey::Tokens(TokenChain::new(tokens))
    }

    /// Hash of block `index` (blocks of `block_tokens`).
    pub fn block_hash(&self, index: u64, block_tokens: u32) -> u64 {
        self.unit_hash(index, block_tokens, BLOCK_DOMAIN)
    }

    /// Appends the hashes of blocks `0..count` (blocks of `block_tokens`) to `out`: the
    /// same as [`PromptKey::block_hash`] for each, without a division per block.
    pub fn block_hashes(&self, count: u64, block_tokens: u32, out: &mut Vec<u64>) {
        let PromptKey::Blocks(b) = self else {
            out.extend((0..count).map(|i| self.block_hash(i, block_tokens)));
            return;
        };
        let unit = u64::from(block_tokens);
        let unit_domain = mix(BLOCK_DOMAIN ^ (unit << 40));
        let trace_block = u64::from(b.block_tokens);
        // The trace block covering the unit's last token, advanced as the units are.
        let (mut covering, mut covering_end) = (0usize, trace_block);
        for index in 0..count {
            let end = (index + 1) * unit;
            if end > b.tokens {
                out.extend((index..count).map(|i| self.block_hash(i, block_tokens)));
                return;
            }
            while end > covering_end {
                covering += 1;
                covering_end += trace_block;
            }
            out.push(match b.chain.get(covering) {
                Some(&h) => mix(h ^ mix(end ^ unit_domain)),
                None => self.block_hash(index, block_tokens),
            });
        }
    }

    /// Hash of chunk `index` (chunks of `chunk_tokens`).
    pub fn chunk_hash(&self, index: u64, chunk_tokens: u32) -> u64 {
        self.unit_hash(index, chunk_tokens, CHUNK_DOMAIN)
    }

    fn unit_hash(&self, index: u64, unit: u32, domain: u64) -> u64 {
        let end = (index + 1) * u64::from(unit);
        let unit_domain = mix(domain ^ (u64::from(unit) << 40));
        match self {
            PromptKey::Document {
                content,
                shared_prefix_tokens,
            } => {
                let base = if end <= u64::from(*shared_prefix_tokens) {
                    SHARED_SEED
                } else {
                    *content
                };
                mix(base ^ mix(index ^ domain ^ (u64::from(unit) << 40)))
            }
            // Past the prompt without a known output, the last token's chain and the index
            // still name a unit no other prompt has.
            PromptKey::Tokens(t) => match t.after(end) {
                Some(h) => mix(h ^ unit_domain),
                None => {
                    mix(t.chain.last().copied().unwrap_or(TOKEN_SEED) ^ mix(index ^ !unit_domain))
                }
            },
            // The position too: several units end inside one trace block.
            PromptKey::Blocks(b) => match b.covering(end) {
                Some(h) => mix(h ^ mix(end ^ unit_domain)),
                None => {
                    mix(b.chain.last().copied().unwrap_or(BLOCKS_SEED) ^ mix(index ^ !unit_domain))
                }
            },
        }
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

    /// The batch form equals the per-block form, for every kind of key, block sizes that
    /// do and do not divide the trace's, and counts past the prompt.
    #[test]
    fn block_hashes_equal_block_hash_one_by_one() {
        let keys = [
            PromptKey::for_document(5, None, 40),
            PromptKey::for_tokens(0..300),
            PromptKey::Blocks(BlockChain::new(&[9, 8, 7, 6], 100, 350)),
            PromptKey::Blocks(BlockChain::new(&[1, 2, 3], 512, 1536)),
        ];
        for key in &keys {
            for unit in [16u32, 48, 100, 128] {
                let mut batch = Vec::new();
                key.block_hashes(40, unit, &mut batch);
                let one_by_one: Vec<u64> = (0..40).map(|i| key.block_hash(i, unit)).collect();
                assert_eq!(batch, one_by_one, "{key:?}, unit {unit}");
            }
        }
    }

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

    #[test]
    fn token_chains_share_exactly_the_blocks_of_their_common_prefix() {
        // 40 tokens in common, then different: blocks of 16 ending at or before 40 match.
        let common: Vec<u64> = (0..40).collect();
        let a = PromptKey::for_tokens(common.iter().copied().chain(100..200));
        let b = PromptKey::for_tokens(common.iter().copied().chain(300..400));
        assert_eq!(a.block_hash(0, 16), b.block_hash(0, 16));
        assert_eq!(a.block_hash(1, 16), b.block_hash(1, 16));
        assert_ne!(a.block_hash(2, 16), b.block_hash(2, 16));
        assert_eq!(a.chunk_hash(0, 32), b.chunk_hash(0, 32));
        assert_ne!(a.chunk_hash(1, 32), b.chunk_hash(1, 32));
        // A block and a chunk of the same size are different units.
        assert_ne!(a.block_hash(0, 16), a.chunk_hash(0, 16));
        // A prompt that is a prefix of another shares all its full blocks.
        let turn1 = PromptKey::for_tokens(0..50);
        let turn2 = PromptKey::for_tokens(0..500);
        for i in 0..3 {
            assert_eq!(turn1.block_hash(i, 16), turn2.block_hash(i, 16));
        }
        // Asking past the end is answered, and matches nothing real.
        assert_ne!(turn1.block_hash(3, 16), turn2.block_hash(3, 16));
    }

    #[test]
    fn a_known_output_continues_the_chain() {
        // A 20-token prompt answered with token 7 twelve times names the same 32 tokens as
        // a prompt of those 20 tokens and twelve 7s: the next turn hits the answer's block.
        let answered = PromptKey::Tokens(TokenChain::new(0..20).then_output(7));
        let next_turn = PromptKey::for_tokens((0..20).chain([7; 12]).chain([1, 2, 3]));
        assert_eq!(answered.block_hash(1, 16), next_turn.block_hash(1, 16));
        let other_answer = PromptKey::Tokens(TokenChain::new(0..20).then_output(8));
        assert_ne!(other_answer.block_hash(1, 16), next_turn.block_hash(1, 16));
    }

    #[test]
    fn trace_blocks_share_exactly_the_units_inside_their_common_ids() {
        // Trace blocks of 512: [1 2 3] and [1 2 4] share 1,024 tokens.
        let a = PromptKey::Blocks(BlockChain::new(&[1, 2, 3], 512, 1500));
        let b = PromptKey::Blocks(BlockChain::new(&[1, 2, 4], 512, 1400));
        // Engine blocks of 16: the first 64 (tokens 0..1024) match, the 65th does not.
        for i in 0..64 {
            assert_eq!(a.block_hash(i, 16), b.block_hash(i, 16), "block {i}");
        }
        assert_ne!(a.block_hash(64, 16), b.block_hash(64, 16));
        // Units across a trace block's edge: a chunk of 768 tokens ends inside block 2.
        assert_eq!(a.chunk_hash(0, 768), b.chunk_hash(0, 768));
        assert_ne!(a.chunk_hash(1, 768), b.chunk_hash(1, 768));
        // Several units inside one trace block are different units.
        assert_ne!(a.block_hash(0, 16), a.block_hash(1, 16));
        // Past the prompt: matches nothing.
        let short = PromptKey::Blocks(BlockChain::new(&[1, 2, 3], 512, 1100));
        assert_ne!(short.block_hash(69, 16), a.block_hash(69, 16));
    }

    #[test]
    fn the_same_token_at_another_position_hashes_differently() {
        let a = PromptKey::for_tokens([7, 7, 7, 7]);
        assert_ne!(a.block_hash(0, 1), a.block_hash(1, 1));
        assert_ne!(a.block_hash(0, 2), a.block_hash(1, 2));
    }
}
