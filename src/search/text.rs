//! How text becomes search terms, and how a hit's excerpt is cut and marked. One tokenizer for
//! indexing, querying and highlighting on both stores, so the embedded and MongoDB indexes hold
//! the same terms and a highlighted word is exactly a word that matched (ADR 0024).

use std::ops::Range;
use ticketd_projections::transcript::escape_into;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest term kept, in characters: longer words are cut, on both sides of a search alike.
pub const TERM_MAX_CHARS: usize = 64;

/// Longest excerpt, in characters of the original text (before escaping).
pub const EXCERPT_CHARS: usize = 160;

/// Characters shown before the first matched word of an excerpt.
const EXCERPT_LEAD: usize = 40;

/// The normalised form of one word: lower case, decomposed, combining marks dropped, cut to
/// [`TERM_MAX_CHARS`]. "Café", "CAFE" and "cafe\u{301}" all become "cafe".
pub fn normalise(word: &str) -> String {
    // Most words are ASCII, where all of that is lower-casing (and far cheaper).
    if word.is_ascii() {
        return word
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .take(TERM_MAX_CHARS)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
    }
    word.chars()
        .flat_map(char::to_lowercase)
        .nfd()
        .filter(|c| !is_combining_mark(*c) && c.is_alphanumeric())
        .take(TERM_MAX_CHARS)
        .collect()
}

/// The words of `text` with where each stands: runs of letters, digits and combining marks
/// (so a decomposed accent stays inside its word), each with its normalised term; runs that
/// normalise to nothing are skipped.
pub fn words(text: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut start = None;
    let word_char = |c: char| {
        if c.is_ascii() {
            c.is_ascii_alphanumeric()
        } else {
            c.is_alphanumeric() || is_combining_mark(c)
        }
    };
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, word_char(c) && i < text.len()) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let term = normalise(&text[s..i]);
                if !term.is_empty() {
                    out.push((s..i, term));
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The distinct terms of `text`, in first-seen order: what the index keeps for one document.
pub fn terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    words(text)
        .into_iter()
        .map(|(_, term)| term)
        .filter(|term| seen.insert(term.clone()))
        .collect()
}

/// One word of a query: matched whole, or (the last word) also as the start of a longer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// The normalised word.
    pub term: String,
    /// Whether longer words starting with it match too.
    pub prefix: bool,
}

impl QueryTerm {
    /// Whether the normalised word `term` matches this one.
    pub fn matches(&self, term: &str) -> bool {
        if self.prefix {
            term.starts_with(&self.term)
        } else {
            term == self.term
        }
    }
}

/// The words of a query, distinct, the last one also by prefix (search as you type).
pub fn query_terms(q: &str) -> Vec<QueryTerm> {
    let all = terms(q);
    let last = all.last().cloned();
    all.into_iter()
        .map(|term| QueryTerm {
            prefix: Some(&term) == last.as_ref(),
            term,
        })
        .collect()
}

/// An excerpt of `text` around its first word matching any of `query`, HTML-escaped, matched
/// words inside `<mark>…</mark>`, with `…` where it was cut; `None` when no word matches.
pub fn excerpt(text: &str, query: &[QueryTerm]) -> Option<String> {
    let words = words(text);
    let matched: Vec<&Range<usize>> = words
        .iter()
        .filter(|(_, term)| query.iter().any(|q| q.matches(term)))
        .map(|(range, _)| range)
        .collect();
    let first = matched.first()?;
    // Start a few words before the first match, at a word's start, never inside a character.
    let lead_start = text[..first.start]
        .char_indices()
        .rev()
        .nth(EXCERPT_LEAD.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    let start = if lead_start == 0 {
        0
    } else {
        words
            .iter()
            .map(|(r, _)| r.start)
            .find(|&s| s >= lead_start)
            .unwrap_or(first.start)
            .min(first.start)
    };
    let end = text[start..]
        .char_indices()
        .nth(EXCERPT_CHARS)
        .map_or(text.len(), |(i, _)| start + i);
    // Never cut a matched word in half: end before it or after it.
    let end = matched
        .iter()
        .find(|r| r.start < end && r.end > end)
        .map_or(end, |r| {
            if r.start == first.start {
                r.end
            } else {
                r.start
            }
        });
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for range in matched.iter().filter(|r| r.start >= start && r.end <= end) {
        escape_into(&mut out, &text[at..range.start]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[range.start..range.end]);
        out.push_str("</mark>");
        at = range.end;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_accents() {
        assert_eq!(
            terms("Café CAFE cafe\u{301} naïve Straße"),
            ["cafe", "naive", "straße"]
        );
        assert_eq!(terms("İstanbul"), ["istanbul"]);
        assert_eq!(terms("e-mail: <b>x</b>"), ["e", "mail", "b", "x"]);
        assert!(terms("  ... !!! ").is_empty());
    }

    #[test]
    fn ascii_words_normalise_as_any_other() {
        let slow = |w: &str| -> String {
            w.chars()
                .flat_map(char::to_lowercase)
                .nfd()
                .filter(|c| !is_combining_mark(*c) && c.is_alphanumeric())
                .take(TERM_MAX_CHARS)
                .collect()
        };
        let long = "A1".repeat(40);
        for w in ["Printer", "HTTP2", "a-b_c", "x", "", long.as_str()] {
            assert_eq!(normalise(w), slow(w), "{w}");
        }
        assert_eq!(normalise(&long).len(), TERM_MAX_CHARS);
    }

    #[test]
    fn only_the_last_query_word_is_a_prefix() {
        let q = query_terms("Printer jam pap");
        assert_eq!(
            q.iter()
                .map(|t| (t.term.as_str(), t.prefix))
                .collect::<Vec<_>>(),
            [("printer", false), ("jam", false), ("pap", true)]
        );
        assert!(q[2].matches("paper") && !q[1].matches("jammed"));
    }

    #[test]
    fn excerpts_escape_text_and_mark_matches() {
        let q = query_terms("cafe scr");
        assert_eq!(
            excerpt("<script>alert('Café')</script> & more", &q).unwrap(),
            "&lt;<mark>script</mark>&gt;alert(&#39;<mark>Café</mark>&#39;)&lt;/\
             <mark>script</mark>&gt; &amp; more"
        );
        assert_eq!(excerpt("nothing here", &q), None);
    }

    #[test]
    fn long_texts_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
        let cut = excerpt(&text, &query_terms("needle")).unwrap();
        assert!(cut.starts_with('…') && cut.ends_with('…'), "{cut}");
        assert!(cut.contains("<mark>needle</mark>"));
        assert!(cut.chars().count() <= EXCERPT_CHARS + 2 + "<mark></mark>".len());
    }
}
