//! Close-name suggestions (Levenshtein distance, case-insensitive).

/// Levenshtein distance between two strings, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `n` candidates closest to `query`, best first. Names are compared lower-cased, both
/// whole and without their `org/` prefix, and a candidate that contains the query counts as close.
pub fn closest<'a>(
    query: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<String> {
    let q = query.to_lowercase();
    let q_short = q.rsplit('/').next().unwrap_or(&q).to_string();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            let short = lc.rsplit('/').next().unwrap_or(&lc);
            let mut d = edit_distance(&q, &lc).min(edit_distance(&q_short, short));
            if !q_short.is_empty() && short.contains(&q_short) {
                d = d.min(short.len() - q_short.len()).min(3);
            }
            (d, c)
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let limit = (q_short.chars().count() / 2).max(3);
    let mut out: Vec<String> = Vec::new();
    for (d, c) in scored {
        if d > limit || out.len() >= n {
            break;
        }
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_near_names_only() {
        let c = ["h100-80gb", "h100-pcie", "h200", "a100-80gb", "l40s"];
        assert_eq!(closest("h100-80g", c, 3)[0], "h100-80gb");
        assert_eq!(closest("l40", c, 3)[0], "l40s");
        assert!(closest("completely-different-thing", c, 3).is_empty());
    }
}
