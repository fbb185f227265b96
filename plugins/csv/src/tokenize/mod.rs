//! Tokenizing: finding where each record and field of a run of CSV bytes starts and ends,
//! without copying or interpreting anything (`decode` reads the fields later).
//!
//! Two tokenizers give identical results (a property test checks it):
//!
//! - `fast` handles dialects without `escape` and `comment` (nearly every file): it
//!   classifies 64 bytes at a time into bit masks and finds the quoted regions with a
//!   prefix XOR, so its cost hardly depends on the number of fields. It gives up on a quote
//!   that does not open a field (an "irregular" quote, which the rules in `dialect` read as
//!   an ordinary byte), and the bytes are then tokenized again by
//! - `general`, a byte-level state machine that skips between structural bytes with
//!   `memchr` and implements every rule.

mod fast;
mod general;

pub(crate) use general::count_line_feeds;

use crate::dialect::Dialect;

/// What is wrong with a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The record has another number of fields than the file's columns.
    FieldCount { found: usize },
    /// A quoted field (the `field`-th, from 0) is still open at the end of the file.
    Unterminated { field: usize },
}

/// A record that cannot be read, by the offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub offset: usize,
    pub problem: Problem,
}

/// The records found in a run of bytes. Offsets are relative to the start of the run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tokens {
    /// Where each complete, well-formed record starts.
    pub starts: Vec<u32>,
    /// Where each field ends (exclusive, without the CR of a CRLF), `columns` per record.
    /// A field starts one byte after the previous field's end; a record's first field at
    /// the record's start.
    pub ends: Vec<u32>,
    /// Bytes consumed: through the line end of the last complete record (or skipped line),
    /// or everything when the run ends the file.
    pub consumed: usize,
    /// Line feeds within the consumed bytes.
    pub line_feeds: u64,
    /// Malformed records, in order; they are not in `starts`.
    pub malformed: Vec<Malformed>,
}

impl Tokens {
    /// The number of well-formed records.
    pub(crate) fn records(&self) -> usize {
        self.starts.len()
    }

    /// The byte range of field `column` of record `record`.
    #[inline]
    pub(crate) fn field(&self, record: usize, column: usize, columns: usize) -> (usize, usize) {
        let first = record * columns;
        let start = if column == 0 {
            self.starts[record]
        } else {
            self.ends[first + column - 1] + 1
        };
        (start as usize, self.ends[first + column] as usize)
    }

    /// Ends the record that starts at `start` and whose fields were pushed from
    /// `first_field` on: keeps it when it has `columns` fields, else records it as malformed.
    #[inline]
    fn finish_record(&mut self, start: usize, first_field: usize, columns: usize) {
        let found = self.ends.len() - first_field;
        if found == columns {
            self.starts.push(start as u32);
        } else {
            self.ends.truncate(first_field);
            self.malformed.push(Malformed {
                offset: start,
                problem: Problem::FieldCount { found },
            });
        }
    }
}

/// How many fields records must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Exactly this many; other records are malformed.
    Columns(usize),
    /// Any number: tokenize the first record only (a header, or the first row of a file
    /// without one).
    FirstRecord,
}

/// Tokenizes `data` (at most 4 GiB), which starts where a record may start. `at_eof` says
/// the data ends the file: a last record without a line end is then complete.
pub(crate) fn tokenize(data: &[u8], dialect: &Dialect, columns: usize, at_eof: bool) -> Tokens {
    debug_assert!(u32::try_from(data.len()).is_ok());
    if dialect.is_plain()
        && let Some(tokens) = fast::tokenize(data, dialect, columns, at_eof)
    {
        return tokens;
    }
    general::tokenize(data, dialect, Shape::Columns(columns), at_eof)
}

/// The first record of `data` (after any skipped lines) as field ranges, and where the
/// bytes after it start; `None` when the data holds no complete record (and `at_eof` is
/// false), or no record at all.
pub(crate) fn first_record(
    data: &[u8],
    dialect: &Dialect,
    at_eof: bool,
) -> Option<(Vec<(usize, usize)>, usize)> {
    let tokens = general::tokenize(data, dialect, Shape::FirstRecord, at_eof);
    if tokens.records() == 0 {
        return None;
    }
    let columns = tokens.ends.len();
    let fields = (0..columns)
        .map(|column| tokens.field(0, column, columns))
        .collect();
    Some((fields, tokens.consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields of every record, as strings (raw, quotes kept).
    fn records(tokens: &Tokens, data: &[u8], columns: usize) -> Vec<Vec<String>> {
        (0..tokens.records())
            .map(|r| {
                (0..columns)
                    .map(|c| {
                        let (s, e) = tokens.field(r, c, columns);
                        String::from_utf8_lossy(&data[s..e]).into_owned()
                    })
                    .collect()
            })
            .collect()
    }

    fn both(text: &str, dialect: &Dialect, columns: usize, at_eof: bool) -> Tokens {
        let data = text.as_bytes();
        let general = general::tokenize(data, dialect, Shape::Columns(columns), at_eof);
        if dialect.is_plain()
            && let Some(fast) = fast::tokenize(data, dialect, columns, at_eof)
        {
            assert_eq!(fast, general, "fast and general differ on {text:?}");
        }
        general
    }

    fn fields(text: &str, columns: usize) -> Vec<Vec<String>> {
        let tokens = both(text, &Dialect::default(), columns, true);
        records(&tokens, text.as_bytes(), columns)
    }

    #[test]
    fn plain_records_and_crlf() {
        assert_eq!(fields("a,b\n1,2\n", 2), [["a", "b"], ["1", "2"]]);
        assert_eq!(fields("a,b\r\n1,2\r\n", 2), [["a", "b"], ["1", "2"]]);
        assert_eq!(fields("a,b\r\n1,2", 2), [["a", "b"], ["1", "2"]]);
        assert_eq!(fields("a,\n,\n", 2), [["a", ""], ["", ""]]);
        // A lone CR is data.
        assert_eq!(fields("a\rb,c\n", 2), [["a\rb", "c"]]);
    }

    #[test]
    fn quoted_fields_hold_delimiters_line_ends_and_quotes() {
        let text = "\"a,b\",\"line\nbreak\"\n\"x\"\"y\",\"\"\n";
        assert_eq!(
            fields(text, 2),
            [["\"a,b\"", "\"line\nbreak\""], ["\"x\"\"y\"", "\"\""]]
        );
        let crlf = "\"a\r\nb\",c\r\n";
        assert_eq!(fields(crlf, 2), [["\"a\r\nb\"", "c"]]);
        // Bytes after the closing quote belong to the field.
        assert_eq!(fields("\"ab\"c,d\n", 2), [["\"ab\"c", "d"]]);
        // A quote inside an unquoted field is data (the fast tokenizer hands over).
        assert_eq!(fields("5'11\",x\ny,z\n", 2), [["5'11\"", "x"], ["y", "z"]]);
    }

    #[test]
    fn blank_lines_are_skipped_and_line_feeds_counted() {
        let text = "a,b\n\n\r\n1,2\n";
        let tokens = both(text, &Dialect::default(), 2, true);
        assert_eq!(tokens.records(), 2);
        assert_eq!(tokens.line_feeds, 4);
        assert_eq!(tokens.consumed, text.len());
    }

    #[test]
    fn ragged_records_are_malformed() {
        let text = "a,b\n1\n1,2,3\n4,5\n";
        let tokens = both(text, &Dialect::default(), 2, true);
        assert_eq!(
            records(&tokens, text.as_bytes(), 2),
            [["a", "b"], ["4", "5"]]
        );
        assert_eq!(
            tokens.malformed,
            [
                Malformed {
                    offset: 4,
                    problem: Problem::FieldCount { found: 1 }
                },
                Malformed {
                    offset: 6,
                    problem: Problem::FieldCount { found: 3 }
                }
            ]
        );
    }

    #[test]
    fn the_end_of_a_run_is_partial_unless_it_ends_the_file() {
        let text = "a,b\n1,2";
        let partial = both(text, &Dialect::default(), 2, false);
        assert_eq!(partial.records(), 1);
        assert_eq!(partial.consumed, 4);
        assert_eq!(partial.line_feeds, 1);
        let open_quote = "a,b\n\"1\n,2\n";
        let partial = both(open_quote, &Dialect::default(), 2, false);
        assert_eq!(partial.consumed, 4);
        let at_eof = both(open_quote, &Dialect::default(), 2, true);
        assert_eq!(at_eof.records(), 1);
        assert_eq!(
            at_eof.malformed,
            [Malformed {
                offset: 4,
                problem: Problem::Unterminated { field: 0 }
            }]
        );
        assert_eq!(at_eof.consumed, open_quote.len());
    }

    #[test]
    fn long_inputs_cross_many_blocks() {
        let row = "12345,\"quoted, with comma\",x\r\n";
        let text = row.repeat(100);
        let tokens = both(&text, &Dialect::default(), 3, true);
        assert_eq!(tokens.records(), 100);
        let last = records(&tokens, text.as_bytes(), 3).pop().unwrap();
        assert_eq!(last, ["12345", "\"quoted, with comma\"", "x"]);
    }

    #[test]
    fn escapes_and_comments_use_the_general_tokenizer() {
        let dialect = Dialect {
            escape: Some(b'\\'),
            comment: Some(b'#'),
            ..Dialect::default()
        };
        let text = "# a comment, with \"quote\n\"a\\\"b\",c\n#another\nd,e\n";
        let tokens = tokenize(text.as_bytes(), &dialect, 2, true);
        assert_eq!(
            records(&tokens, text.as_bytes(), 2),
            [["\"a\\\"b\"", "c"], ["d", "e"]]
        );
        assert_eq!(tokens.line_feeds, 4);
    }

    #[test]
    fn without_quoting_quotes_are_data() {
        let dialect = Dialect {
            quote: None,
            ..Dialect::default()
        };
        let tokens = both("\"a,b\"\n", &dialect, 2, true);
        assert_eq!(records(&tokens, b"\"a,b\"\n", 2), [["\"a", "b\""]]);
    }

    #[test]
    fn the_first_record_may_have_any_width() {
        let (fields, end) =
            first_record(b"\n\"x,y\",b,c\n1,2,3\n", &Dialect::default(), false).unwrap();
        assert_eq!(fields, [(1, 6), (7, 8), (9, 10)]);
        assert_eq!(end, 11);
        assert!(first_record(b"a,b", &Dialect::default(), false).is_none());
        assert!(first_record(b"a,b", &Dialect::default(), true).is_some());
        assert!(first_record(b"\n\n", &Dialect::default(), true).is_none());
    }
}
