//! "Did you mean" suggestions for misspelled names.

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance, compared case-insensitively.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.len() > 64 {
        return None;
    }
    // As BuildKit's suggest package: the closest candidate at an edit distance below 3.
    let w = word.to_lowercase();
    if candidates.iter().any(|c| c.to_lowercase() == w) {
        return None;
    }
    candidates
        .iter()
        .map(|c| (distance(&w, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d < 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean <prefix><suggestion>?)`, or nothing without a suggestion: the tail of
/// messages that name a misspelled word.
pub fn did_you_mean_suffix(suggestion: &Option<&str>, prefix: &str) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {prefix}{s}?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(did_you_mean("RUNN", &["RUN", "COPY"]), Some("RUN"));
        assert_eq!(did_you_mean("xyzzy", &["RUN", "COPY"]), None);
        assert_eq!(did_you_mean("run", &["RUN"]), None);
    }
}
