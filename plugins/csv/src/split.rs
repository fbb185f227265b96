//! Cutting a window of CSV bytes into chunks that start at record boundaries, so that the
//! chunks can be tokenized in parallel. Quoted fields may hold line feeds, so a line feed
//! alone does not mark a boundary. The approach is to speculate, then verify:
//!
//! 1. While a window is read, the quotes in each stretch of it are counted
//!    (`count_quotes`; with an escape byte, quotes right after it are not counted).
//! 2. At a nominal cut, the parity of the quotes before it says whether the cut is inside
//!    quotes. From there, the first line feed outside quotes (by the same parity rule) ends
//!    the record in progress, and the chunk starts after it (`next_record_start`). This is
//!    exact for files whose quotes all open or close fields.
//! 3. Every chunk is tokenized on its own, the first from a true boundary. When a chunk
//!    that starts at a true boundary ends exactly at a record boundary (the tokenizer
//!    consumed all of it), the next chunk starts at a true boundary too. When it does not
//!    (the parity misread a quote that is data: a quote inside an unquoted field, in a
//!    comment, or after an escaped escape), the reader tokenizes the rest of the window
//!    again in one piece. So the records never depend on where the cuts fell; only the
//!    speed does.

use memchr::{memchr, memchr2};

use crate::bytes;
use crate::dialect::{Dialect, LF};

/// The quotes in `data` that toggle the quote state by the parity rule.
pub(crate) fn count_quotes(data: &[u8], dialect: &Dialect) -> u64 {
    let Some(quote) = dialect.quote else {
        return 0;
    };
    let (all, escaped) = bytes::count(data, quote, dialect.escape);
    all - escaped
}

/// Where the first record after `from` starts: after the first line feed outside quotes,
/// `inside` being the quote state at `from`. `data.len()` when there is none.
pub(crate) fn next_record_start(
    data: &[u8],
    from: usize,
    inside: bool,
    dialect: &Dialect,
) -> usize {
    let mut inside = inside && dialect.quote.is_some();
    let mut pos = from;
    while pos < data.len() {
        let rest = &data[pos..];
        let found = match (inside, dialect.quote) {
            (false, Some(quote)) => memchr2(quote, LF, rest),
            (false, None) => memchr(LF, rest),
            (true, Some(quote)) => match dialect.escape {
                Some(escape) => memchr2(quote, escape, rest),
                None => memchr(quote, rest),
            },
            (true, None) => None,
        };
        let Some(i) = found else {
            break;
        };
        let at = pos + i;
        if data[at] == LF && !inside {
            return at + 1;
        }
        if Some(data[at]) == dialect.quote {
            inside = !inside;
            pos = at + 1;
        } else {
            pos = at + 2;
        }
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_counted_without_escaped_ones() {
        assert_eq!(count_quotes(b"\"a\",\"b\"\"c\"", &Dialect::default()), 6);
        let escaped = Dialect {
            escape: Some(b'\\'),
            ..Dialect::default()
        };
        assert_eq!(count_quotes(b"\"a\\\"b\"", &escaped), 2);
        let unquoted = Dialect {
            quote: None,
            ..Dialect::default()
        };
        assert_eq!(count_quotes(b"\"\"", &unquoted), 0);
    }

    #[test]
    fn the_next_record_starts_after_a_line_feed_outside_quotes() {
        let data = b"a,\"x\ny\"\nb,c\n";
        let d = Dialect::default();
        // From inside the quoted field (parity says inside): the line feed in it is skipped.
        assert_eq!(next_record_start(data, 4, true, &d), 8);
        // From the start of the file.
        assert_eq!(next_record_start(data, 0, false, &d), 8);
        assert_eq!(next_record_start(data, 9, false, &d), data.len());
        assert_eq!(next_record_start(b"no line end", 0, false, &d), 11);
        let escaped = Dialect {
            escape: Some(b'\\'),
            ..Dialect::default()
        };
        assert_eq!(next_record_start(b"a\\\"\nb\"\nc\n", 0, true, &escaped), 7);
    }
}
