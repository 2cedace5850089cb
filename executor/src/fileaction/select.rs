//! Which paths a COPY source selects: one rule used both for the cache key (over the context's
//! checksummed entries, in the builder) and for the copy itself (over the directory), so the
//! two cannot select differently.
//!
//! A source is a path whose components may hold wildcards (matched one component at a time,
//! as Go's `filepath.Match`); it selects each matching path and everything below it, but for
//! what `--exclude` patterns match, relative to the matched path.

use strata_frontend::dockerignore::{IgnoreError, PatternMatcher, contains_wildcards, path_match};

/// A COPY source and its `--exclude` patterns.
#[derive(Debug)]
pub struct SourceSelection {
    components: Vec<String>,
    exclude: Option<PatternMatcher>,
}

impl SourceSelection {
    /// `src` as written in the file action; an invalid `--exclude` pattern is an error.
    pub fn new(src: &str, exclude: &[String]) -> Result<SourceSelection, IgnoreError> {
        Ok(SourceSelection {
            components: components(src),
            exclude: if exclude.is_empty() {
                None
            } else {
                Some(PatternMatcher::new(exclude)?)
            },
        })
    }

    /// The source's path components (no empty or `.` ones).
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether `path` (relative, `/`-separated) is selected: at or below a match, and not
    /// excluded.
    pub fn selects(&self, path: &str) -> Result<bool, IgnoreError> {
        let p: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let n = self.components.len();
        if p.len() < n {
            return Ok(false);
        }
        for (pat, name) in self.components.iter().zip(&p) {
            if !component_matches(pat, name)? {
                return Ok(false);
            }
        }
        Ok(p.len() == n || !self.excludes(&p[n..].join("/")))
    }

    /// Whether `below` (a path relative to a matched source path) is left out by `--exclude`.
    pub fn excludes(&self, below: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|ex| ex.matches(below).unwrap_or(false))
    }
}

/// One source component against one name: a wildcard pattern, or the same name.
pub fn component_matches(pattern: &str, name: &str) -> Result<bool, IgnoreError> {
    if contains_wildcards(pattern) {
        path_match(pattern, name)
    } else {
        Ok(pattern == name)
    }
}

fn components(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_selects_its_matches_and_what_is_below_them_but_the_excluded() {
        let s = SourceSelection::new("/src/*.d", &["*.tmp".into(), "gen/**".into()]).unwrap();
        assert!(s.selects("src/a.d").unwrap());
        assert!(s.selects("src/a.d/x.c").unwrap());
        assert!(!s.selects("src/a.d/x.tmp").unwrap());
        assert!(!s.selects("src/a.d/gen/y").unwrap());
        assert!(!s.selects("src").unwrap());
        assert!(!s.selects("other/a.d").unwrap());
        let all = SourceSelection::new(".", &[]).unwrap();
        assert!(all.selects("anything/at/all").unwrap());
    }

    #[test]
    fn bad_patterns_are_errors_not_silent_misses() {
        assert!(SourceSelection::new(".", &["[".into()]).is_err());
        let s = SourceSelection::new("[", &[]).unwrap();
        assert!(s.selects("x").is_err());
    }
}
