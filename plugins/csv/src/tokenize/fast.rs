//! The fast tokenizer, for dialects without escapes and comments.
//!
//! Each 64-byte block becomes three bit masks (delimiters, line feeds, quotes; see
//! `bytes`). The quoted regions are the prefix XOR
//! of the quote mask (simdjson's technique): a bit is set where an odd number of quotes
//! precedes, so the separators outside quotes are `(delimiters | line feeds) & !quoted`, and
//! the loop visits only those, one `trailing_zeros` each. Doubled quotes toggle twice and
//! need no special case.
//!
//! The prefix XOR counts every quote, whereas the rules read a quote that does not open a
//! field as an ordinary byte. So the tokenizer checks that every quote that opens a quoted
//! region follows a separator, the start, or a closing quote (a doubled quote), and returns
//! `None` when one does not; the caller then uses the general tokenizer.

use super::general::count_line_feeds;
use super::{Malformed, Problem, Tokens};
use crate::bytes::{BLOCK, masks};
use crate::dialect::{CR, Dialect, LF};

/// See `tokenize::tokenize`; `None` when the data holds a quote that does not open a field.
pub(super) fn tokenize(
    data: &[u8],
    dialect: &Dialect,
    columns: usize,
    at_eof: bool,
) -> Option<Tokens> {
    let len = data.len();
    let mut tokens = Tokens::default();
    // All ones when the previous block ended inside quotes.
    let mut inside = 0u64;
    // 1 when a quote at the start of the next block may open a field.
    let mut may_open = 1u64;
    // The current record's start, and the index of its first field in `tokens.ends`.
    let mut start = 0usize;
    let mut first_field = 0usize;
    let mut line_feeds = 0u64;
    let mut last = [0u8; BLOCK];
    let mut base = 0;
    while base < len {
        let whole: Option<&[u8; BLOCK]> = data
            .get(base..base + BLOCK)
            .and_then(|block| block.try_into().ok());
        let (block, valid) = match whole {
            Some(block) => (block, !0u64),
            None => {
                let rest = &data[base..];
                last[..rest.len()].copy_from_slice(rest);
                (&last, (1u64 << rest.len()) - 1)
            }
        };
        let [delimiters, line_ends, quotes] =
            masks(block, [Some(dialect.delimiter), Some(LF), dialect.quote]).map(|m| m & valid);

        let quoted = prefix_xor(quotes) ^ inside;
        inside = ((quoted as i64) >> 63) as u64;
        let separators = (delimiters | line_ends) & !quoted;
        let closing = quotes & !quoted;
        let opening = quotes & quoted;
        let may_open_here = ((separators | closing) << 1) | may_open;
        if opening & !may_open_here != 0 {
            return None;
        }
        may_open = (separators | closing) >> 63;
        line_feeds += u64::from(line_ends.count_ones());

        let mut rest = separators;
        while rest != 0 {
            let bit = rest.trailing_zeros();
            let at = base + bit as usize;
            if line_ends >> bit & 1 == 0 {
                tokens.ends.push(at as u32);
            } else {
                end_record(&mut tokens, data, start, first_field, at, columns);
                start = at + 1;
                first_field = tokens.ends.len();
            }
            rest &= rest - 1;
        }
        base += BLOCK;
    }

    if start == len || !at_eof {
        tokens.ends.truncate(first_field);
        tokens.consumed = start;
        tokens.line_feeds = line_feeds - count_line_feeds(&data[start..]);
    } else {
        if inside == 0 {
            end_record(&mut tokens, data, start, first_field, len, columns);
        } else {
            tokens.malformed.push(Malformed {
                offset: start,
                problem: Problem::Unterminated {
                    field: tokens.ends.len() - first_field,
                },
            });
            tokens.ends.truncate(first_field);
        }
        tokens.consumed = len;
        tokens.line_feeds = line_feeds;
    }
    Some(tokens)
}

/// Ends the record that starts at `start` at the line end at `line_end` (or the end of the
/// data): drops the carriage return of a CRLF, skips an empty line.
#[inline]
fn end_record(
    tokens: &mut Tokens,
    data: &[u8],
    start: usize,
    first_field: usize,
    line_end: usize,
    columns: usize,
) {
    let field_start = match tokens.ends.len() == first_field {
        true => start,
        false => tokens.ends[tokens.ends.len() - 1] as usize + 1,
    };
    let mut end = line_end;
    if end > field_start && data[end - 1] == CR {
        end -= 1;
    }
    if tokens.ends.len() == first_field && end == start {
        return;
    }
    tokens.ends.push(end as u32);
    tokens.finish_record(start, first_field, columns);
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_xor_marks_the_quoted_regions() {
        assert_eq!(prefix_xor(0b1001), 0b0111);
        assert_eq!(prefix_xor(1 << 63), 1 << 63);
    }

    #[test]
    fn a_quote_that_opens_no_field_hands_over() {
        assert!(tokenize(b"ab\"c,d\n", &Dialect::default(), 2, true).is_none());
        assert!(tokenize(b"\"ab\"c\"d\",e\n", &Dialect::default(), 2, true).is_none());
        assert!(tokenize(b"\"a\"\"b\",\"\"\n", &Dialect::default(), 2, true).is_some());
    }
}
