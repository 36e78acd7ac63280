//! Prompt token counts without a tokenizer: the one approximation the workload plans
//! with, `ldqa serve` counts with and `ldqa predict` therefore simulates.
//!
//! A run of letters with at most one leading space is one token (Llama-3's `" hi"` is
//! one token), a run of digits is one token per group of up to three (Llama-3 splits
//! numbers that way), any other run of symbols is one token, and whitespace that does
//! not lead a word is one token per run. So document `i`, `"{i} hi hi …"` with `n`
//! words, counts [`number_tokens`]`(i) + n`; upstream's pre-warmup prompt
//! `"{i}xxhi hi …"` (1,000 words) counts `number_tokens(i) + 1 + 999`; a miss prefix
//! `"-1234567 "` counts sign + digit groups + space. With a tokenizer the workload counts
//! exactly instead.

/// Counts tokens of `text` without a tokenizer (the rules are in the module docs).
pub fn approx_token_count(text: &str) -> u64 {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    fn class(c: char) -> Class {
        if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let is = |i: usize, c: Class| chars.get(i).is_some_and(|&ch| class(ch) == c);
    let run_end = |mut i: usize, c: Class| {
        while is(i, c) {
            i += 1;
        }
        i
    };
    let mut tokens = 0u64;
    let mut i = 0;
    while i < chars.len() {
        match class(chars[i]) {
            Class::Letter | Class::Other => {
                i = run_end(i, class(chars[i]));
                tokens += 1;
            }
            Class::Digit => {
                let end = run_end(i, Class::Digit);
                tokens += ((end - i) as u64).div_ceil(3);
                i = end;
            }
            Class::Space => {
                if chars[i] == ' ' && is(i + 1, Class::Letter) {
                    // " hi": the space belongs to the word.
                    i = run_end(i + 1, Class::Letter);
                } else {
                    // A whitespace run, leaving a space that leads a word to that word.
                    i += 1;
                    while is(i, Class::Space) && !(chars[i] == ' ' && is(i + 1, Class::Letter)) {
                        i += 1;
                    }
                }
                tokens += 1;
            }
        }
    }
    tokens
}

/// Tokens of a number written in decimal (Llama-3 splits digit runs into groups of ≤ 3).
pub fn number_tokens(n: usize) -> u64 {
    let digits = n.checked_ilog10().map_or(1, |d| d + 1);
    u64::from(digits.div_ceil(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_count_their_id_groups_and_words() {
        for (id, words) in [(0usize, 5usize), (7, 100), (1234, 3), (10_000_000, 1)] {
            let doc = format!("{id}{}", " hi".repeat(words));
            assert_eq!(
                approx_token_count(&doc),
                number_tokens(id) + words as u64,
                "{doc:.30}"
            );
        }
        assert_eq!(number_tokens(999), 1);
        assert_eq!(number_tokens(1000), 2);
    }

    #[test]
    fn a_miss_prefix_adds_its_own_count() {
        for p in ["-1234567 ", "42 ", "+9 ", "10000000 "] {
            let text = format!("{p}3 hi hi");
            assert_eq!(
                approx_token_count(&text),
                approx_token_count(p) + approx_token_count("3 hi hi"),
                "{text}"
            );
        }
        assert_eq!(approx_token_count("-1234567 "), 1 + 3 + 1);
    }

    #[test]
    fn other_text() {
        assert_eq!(approx_token_count(""), 0);
        assert_eq!(approx_token_count("Hello, world!"), 4);
        assert_eq!(approx_token_count("a  b"), 3);
        assert_eq!(approx_token_count("line\n\nnext"), 3);
        assert_eq!(approx_token_count("4xxhi hi hi"), 1 + 1 + 2);
    }
}
