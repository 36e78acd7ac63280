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
    approx_tokens(text).count() as u64
}

/// The pieces of `text` the approximation counts as tokens, in order: what `ldqa serve`
/// hashes as a prompt's tokens when it has no tokenizer.
pub fn approx_tokens(text: &str) -> ApproxTokens<'_> {
    ApproxTokens { text, at: 0 }
}

/// Iterator over [`approx_tokens`].
#[derive(Debug, Clone)]
pub struct ApproxTokens<'a> {
    text: &'a str,
    at: usize,
}

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

impl<'a> ApproxTokens<'a> {
    /// The class of the character at byte `i`, if any.
    fn class_at(&self, i: usize) -> Option<(char, Class)> {
        self.text[i..].chars().next().map(|c| (c, class(c)))
    }

    /// End of the run of `c` starting at byte `i`, at most `limit` characters long.
    fn run_end(&self, mut i: usize, c: Class, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            match self.class_at(i) {
                Some((ch, k)) if k == c => i += ch.len_utf8(),
                _ => break,
            }
            n += 1;
        }
        i
    }

    /// Whether a space at byte `i` leads a word (`" hi"`).
    fn leads_word(&self, i: usize) -> bool {
        self.text[i..].starts_with(' ')
            && self
                .class_at(i + 1)
                .is_some_and(|(_, k)| k == Class::Letter)
    }
}

impl<'a> Iterator for ApproxTokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.at;
        let (ch, c) = self.class_at(start)?;
        let end = match c {
            Class::Letter | Class::Other => self.run_end(start, c, usize::MAX),
            // Llama-3 splits digit runs into groups of up to three.
            Class::Digit => self.run_end(start, Class::Digit, 3),
            // " hi": the space belongs to the word.
            Class::Space if self.leads_word(start) => {
                self.run_end(start + 1, Class::Letter, usize::MAX)
            }
            // A whitespace run, leaving a space that leads a word to that word.
            Class::Space => {
                let mut i = start + ch.len_utf8();
                while let Some((ch, Class::Space)) = self.class_at(i) {
                    if self.leads_word(i) {
                        break;
                    }
                    i += ch.len_utf8();
                }
                i
            }
        };
        self.at = end;
        Some(&self.text[start..end])
    }
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

    #[test]
    fn pieces_cover_the_text_in_order() {
        let pieces: Vec<_> = approx_tokens("Héllo,  wörld 1234567\n\n hi").collect();
        assert_eq!(
            pieces,
            ["Héllo", ",", " ", " wörld", " ", "123", "456", "7", "\n\n", " hi"]
        );
        for text in ["", "a  b", "-1234567 3 hi hi", " \t x", "日本語 テキスト"] {
            assert_eq!(approx_tokens(text).collect::<String>(), text);
        }
    }
}
