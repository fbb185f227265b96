//! The general tokenizer: a state machine that implements every rule of `dialect`
//! (escapes and comments included), jumping between the bytes that matter with `memchr`.

use memchr::{memchr, memchr2};

use super::{Malformed, Problem, Shape, Tokens};
use crate::dialect::{CR, Dialect, LF};

/// See `tokenize::tokenize`; `shape` says how many fields a record must have.
pub(super) fn tokenize(data: &[u8], dialect: &Dialect, shape: Shape, at_eof: bool) -> Tokens {
    let mut tokens = Tokens::default();
    let len = data.len();
    let mut pos = 0;
    'records: while pos < len {
        let start = pos;
        if dialect.comment == Some(data[pos]) {
            match memchr(LF, &data[pos..]) {
                Some(i) => {
                    pos += i + 1;
                    tokens.consumed = pos;
                    continue;
                }
                None => {
                    if at_eof {
                        tokens.consumed = len;
                    }
                    break;
                }
            }
        }
        let first_field = tokens.ends.len();
        let mut field_start = pos;
        loop {
            let scan_from = if field_start < len && dialect.is_quoted(&data[field_start..]) {
                match closing_quote(data, field_start + 1, dialect, at_eof) {
                    Some(after) => after,
                    None => {
                        let open_field = tokens.ends.len() - first_field;
                        tokens.ends.truncate(first_field);
                        if at_eof {
                            tokens.malformed.push(Malformed {
                                offset: start,
                                problem: Problem::Unterminated { field: open_field },
                            });
                            tokens.consumed = len;
                        }
                        break 'records;
                    }
                }
            } else {
                field_start
            };
            let found = memchr2(dialect.delimiter, LF, &data[scan_from..]).map(|i| scan_from + i);
            let line_end = match found {
                Some(at) if data[at] == dialect.delimiter => {
                    tokens.ends.push(at as u32);
                    field_start = at + 1;
                    continue;
                }
                Some(at) => at,
                None if at_eof => len,
                None => {
                    tokens.ends.truncate(first_field);
                    break 'records;
                }
            };
            let mut end = line_end;
            if end > field_start && data[end - 1] == CR {
                end -= 1;
            }
            pos = (line_end + 1).min(len);
            tokens.consumed = pos;
            if tokens.ends.len() == first_field && end == start {
                continue 'records;
            }
            tokens.ends.push(end as u32);
            match shape {
                Shape::Columns(columns) => tokens.finish_record(start, first_field, columns),
                Shape::FirstRecord => {
                    tokens.starts.push(start as u32);
                    break 'records;
                }
            }
            continue 'records;
        }
    }
    tokens.line_feeds = count_line_feeds(&data[..tokens.consumed]);
    tokens
}

/// The position after the quote that closes a quoted field whose content starts at `from`,
/// or `None` when the data ends first (or ends with a quote that might be doubled by the
/// next, unseen byte).
fn closing_quote(data: &[u8], from: usize, dialect: &Dialect, at_eof: bool) -> Option<usize> {
    let quote = dialect.quote?;
    let mut pos = from;
    while pos < data.len() {
        let rest = &data[pos..];
        let at = pos
            + match dialect.escape {
                Some(escape) => memchr2(quote, escape, rest)?,
                None => memchr(quote, rest)?,
            };
        if data[at] != quote {
            pos = at + 2;
            continue;
        }
        match data.get(at + 1) {
            Some(&next) if next == quote => pos = at + 2,
            Some(_) => return Some(at + 1),
            None => return at_eof.then_some(at + 1),
        }
    }
    None
}

/// The number of line feeds in `data`.
pub(crate) fn count_line_feeds(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == LF).count() as u64
}
