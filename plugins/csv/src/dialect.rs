//! The CSV dialect: the bytes that separate fields, quote them, escape inside quotes and
//! start comment lines; the texts that mark a null; and how a quoted field's value is read.
//!
//! The rules, shared by both tokenizers (`tokenize`), the unquoting below and the sink:
//!
//! - A record ends at a line feed outside quotes; a carriage return just before it belongs
//!   to the line end (CRLF). A lone carriage return is data.
//! - A field that starts with the quote byte is quoted: it runs to the matching closing
//!   quote, across delimiters and line ends. Inside, a doubled quote stands for one quote
//!   and, when `escape` is set, the escape byte makes the next byte literal. Bytes between
//!   the closing quote and the next delimiter are kept as they are (lenient, like Python's
//!   `csv` module). A quote inside an unquoted field is an ordinary byte.
//! - Empty lines are skipped, and so are lines that start with the `comment` byte (when
//!   set) where a record could start.

use mlpipe_plugin_api::{Error, Result};

/// The line feed, which ends records.
pub(crate) const LF: u8 = b'\n';
/// The carriage return of a CRLF line end.
pub(crate) const CR: u8 = b'\r';
/// The UTF-8 byte order mark, skipped at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The structural bytes of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
}

impl Default for Dialect {
    fn default() -> Dialect {
        Dialect {
            delimiter: b',',
            quote: Some(b'"'),
            escape: None,
            comment: None,
        }
    }
}

impl Dialect {
    /// Checks that the bytes can be told apart. An escape byte equal to the quote is the
    /// usual doubled-quote rule and is dropped. `component` names the source or sink in
    /// errors.
    pub(crate) fn validated(mut self, component: &str) -> Result<Dialect> {
        if self.escape.is_some() && self.escape == self.quote {
            self.escape = None;
        }
        let roles = [
            ("delimiter", Some(self.delimiter)),
            ("quote", self.quote),
            ("escape", self.escape),
            ("comment", self.comment),
        ];
        for (i, (key, byte)) in roles.iter().enumerate() {
            let Some(byte) = *byte else { continue };
            if byte == LF || byte == CR {
                return Err(Error::config(format!(
                    "key `{key}` of {component} cannot be a line break"
                )));
            }
            if let Some((other, _)) = roles[..i].iter().find(|(_, b)| *b == Some(byte)) {
                return Err(Error::config(format!(
                    "keys `{other}` and `{key}` of {component} are both {:?}; they must differ",
                    char::from(byte)
                )));
            }
        }
        Ok(self)
    }

    /// Whether the fast tokenizer applies (it knows neither escapes nor comments).
    pub(crate) fn is_plain(&self) -> bool {
        self.escape.is_none() && self.comment.is_none()
    }

    /// Whether a raw field is quoted.
    pub(crate) fn is_quoted(&self, raw: &[u8]) -> bool {
        self.quote.is_some() && raw.first().copied() == self.quote
    }

    /// The value of a field as it stands in the file: unquoted fields are returned as they
    /// are, quoted ones without their quotes and escapes (borrowed when nothing needs
    /// removing inside, else written into `scratch`).
    pub(crate) fn unquote<'a>(&self, raw: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let Some(quote) = self.quote else {
            return raw;
        };
        if raw.first() != Some(&quote) {
            return raw;
        }
        if raw.len() >= 2 && raw[raw.len() - 1] == quote {
            let inner = &raw[1..raw.len() - 1];
            let special = match self.escape {
                Some(escape) => memchr::memchr2(quote, escape, inner),
                None => memchr::memchr(quote, inner),
            };
            if special.is_none() {
                return inner;
            }
        }
        scratch.clear();
        let mut state = Quoted::Inside;
        let mut bytes = raw[1..].iter();
        while let Some(&byte) = bytes.next() {
            state = match state {
                Quoted::Inside if Some(byte) == self.escape => {
                    scratch.extend(bytes.next());
                    Quoted::Inside
                }
                Quoted::Inside if byte == quote => Quoted::Closed,
                Quoted::Closed if byte == quote => {
                    scratch.push(quote);
                    Quoted::Inside
                }
                Quoted::Inside => {
                    scratch.push(byte);
                    Quoted::Inside
                }
                Quoted::Closed | Quoted::After => {
                    scratch.push(byte);
                    Quoted::After
                }
            };
        }
        scratch
    }
}

/// Where `Dialect::unquote` is within a quoted field.
#[derive(Clone, Copy)]
enum Quoted {
    /// Between the quotes.
    Inside,
    /// Just after a quote that may close the field or start a doubled quote.
    Closed,
    /// After the closing quote: the rest is literal.
    After,
}

/// The field texts that read as null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NullMarkers {
    empty: bool,
    others: Vec<Vec<u8>>,
}

impl NullMarkers {
    pub(crate) fn new(markers: &[String]) -> NullMarkers {
        NullMarkers {
            empty: markers.iter().any(String::is_empty),
            others: markers
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| m.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Whether a field's text marks a null.
    #[inline]
    pub(crate) fn is_null(&self, text: &[u8]) -> bool {
        if text.is_empty() {
            self.empty
        } else {
            !self.others.is_empty() && self.others.iter().any(|m| m == text)
        }
    }
}

/// A one-byte config value (`delimiter`, `quote`, ...). `optional` allows the empty string,
/// meaning "none".
pub(crate) fn single_byte(
    value: &str,
    key: &str,
    component: &str,
    optional: bool,
) -> Result<Option<u8>> {
    match value.as_bytes() {
        [byte] if byte.is_ascii() => Ok(Some(*byte)),
        [] if optional => Ok(None),
        _ => Err(Error::config(format!(
            "key `{key}` of {component} must be one ASCII character (e.g. \",\", \";\" or \"\\t\"){}, not {value:?}",
            if optional { " or \"\" for none" } else { "" }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unquote(raw: &str, dialect: &Dialect) -> String {
        let mut scratch = Vec::new();
        String::from_utf8(dialect.unquote(raw.as_bytes(), &mut scratch).to_vec()).unwrap()
    }

    #[test]
    fn quoted_fields_lose_their_quotes_and_doubled_quotes() {
        let d = Dialect::default();
        assert_eq!(unquote("plain", &d), "plain");
        assert_eq!(unquote("\"a,b\"", &d), "a,b");
        assert_eq!(unquote("\"\"", &d), "");
        assert_eq!(unquote("\"ha \"\"ha\"\" ha\"", &d), "ha \"ha\" ha");
        assert_eq!(unquote("\"ab\"c", &d), "abc");
        assert_eq!(unquote("\"a\"\"\"", &d), "a\"");
        assert_eq!(unquote("no\"quote", &d), "no\"quote");
        assert_eq!(unquote("\"open", &d), "open");
    }

    #[test]
    fn the_escape_byte_makes_the_next_byte_literal() {
        let d = Dialect {
            escape: Some(b'\\'),
            ..Dialect::default()
        };
        assert_eq!(unquote(r#""a\"b""#, &d), "a\"b");
        assert_eq!(unquote(r#""a\\b""#, &d), "a\\b");
        assert_eq!(unquote(r"a\b", &d), "a\\b");
    }

    #[test]
    fn a_dialect_needs_distinct_bytes() {
        let same = Dialect {
            delimiter: b'"',
            ..Dialect::default()
        };
        let error = same.validated("source `csv`").unwrap_err();
        assert!(
            error.message().contains("`delimiter` and `quote`"),
            "{error}"
        );
        let newline = Dialect {
            comment: Some(b'\n'),
            ..Dialect::default()
        };
        assert!(newline.validated("source `csv`").is_err());
        let doubled = Dialect {
            escape: Some(b'"'),
            ..Dialect::default()
        };
        assert_eq!(doubled.validated("x").unwrap().escape, None);
    }

    #[test]
    fn null_markers_match_whole_texts() {
        let nulls = NullMarkers::new(&["".into(), "NA".into()]);
        assert!(nulls.is_null(b""));
        assert!(nulls.is_null(b"NA"));
        assert!(!nulls.is_null(b"NAN"));
        let none = NullMarkers::new(&[]);
        assert!(!none.is_null(b""));
    }

    #[test]
    fn single_bytes_are_checked() {
        assert_eq!(
            single_byte("\t", "delimiter", "x", false).unwrap(),
            Some(b'\t')
        );
        assert_eq!(single_byte("", "escape", "x", true).unwrap(), None);
        assert!(single_byte("", "delimiter", "x", false).is_err());
        assert!(single_byte(";;", "delimiter", "x", false).is_err());
        assert!(single_byte("«", "quote", "x", false).is_err());
    }
}
