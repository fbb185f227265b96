//! Recognising a file encrypted with a *plaintext footer* (Parquet modular encryption),
//! which arrow-rs without its `encryption` feature reads as if it were not encrypted —
//! until its encrypted pages fail to decode as garbage. Such a footer has field 8
//! (`encryption_algorithm`) set in its `FileMetaData`, which this module finds by walking
//! the footer's top-level Thrift (compact protocol) fields.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Whether the Parquet file's footer names an encryption algorithm. Errors reading it
/// answer `false` (the reader reports them).
pub(crate) fn has_plaintext_footer_encryption(file: &mut File) -> bool {
    let mut tail = [0u8; 8];
    let footer = file
        .seek(SeekFrom::End(-8))
        .and_then(|_| file.read_exact(&mut tail))
        .ok()
        .filter(|()| &tail[4..] == b"PAR1")
        .and_then(|()| {
            let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            let mut footer = vec![0u8; usize::try_from(length).ok()?];
            file.seek(SeekFrom::End(-8 - i64::from(length))).ok()?;
            file.read_exact(&mut footer).ok()?;
            Some(footer)
        });
    footer.is_some_and(|footer| has_encryption_algorithm(&footer))
}

/// Whether `footer` (the Thrift-encoded `FileMetaData`, as stored before the 8-byte tail)
/// names an encryption algorithm. Malformed bytes answer `false`.
pub(crate) fn has_encryption_algorithm(footer: &[u8]) -> bool {
    let mut reader = Compact {
        bytes: footer,
        at: 0,
    };
    let mut field = 0i16;
    while let Some(header) = reader.byte() {
        if header == 0 {
            return false;
        }
        let kind = header & 0x0f;
        field = match header >> 4 {
            0 => match reader.varint() {
                Some(id) => zigzag(id) as i16,
                None => return false,
            },
            delta => field.wrapping_add(i16::from(delta)),
        };
        if field == 8 && kind == STRUCT {
            return true;
        }
        if reader.skip(kind, 0).is_none() {
            return false;
        }
    }
    false
}

const STRUCT: u8 = 12;

/// Nesting deeper than this is not a footer.
const MAX_DEPTH: usize = 64;

fn zigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn advance(&mut self, count: u64) -> Option<()> {
        let end = self.at.checked_add(usize::try_from(count).ok()?)?;
        (end <= self.bytes.len()).then(|| self.at = end)
    }

    /// Skips one value of compact type `kind`.
    fn skip(&mut self, kind: u8, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match kind {
            1 | 2 => Some(()),
            3 => self.advance(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.advance(8),
            8 => {
                let length = self.varint()?;
                self.advance(length)
            }
            9 | 10 => {
                let header = self.byte()?;
                let count = match header >> 4 {
                    15 => self.varint()?,
                    short => u64::from(short),
                };
                let element = header & 0x0f;
                // A boolean element is a whole byte inside a list.
                let element = if element == 1 || element == 2 {
                    3
                } else {
                    element
                };
                (0..count).try_for_each(|_| self.skip(element, depth + 1))
            }
            11 => {
                let count = self.varint()?;
                if count == 0 {
                    return Some(());
                }
                let kinds = self.byte()?;
                let fix = |k: u8| if k == 1 || k == 2 { 3 } else { k };
                (0..count).try_for_each(|_| {
                    self.skip(fix(kinds >> 4), depth + 1)?;
                    self.skip(fix(kinds & 0x0f), depth + 1)
                })
            }
            STRUCT => loop {
                let header = self.byte()?;
                if header == 0 {
                    return Some(());
                }
                if header >> 4 == 0 {
                    self.varint()?;
                }
                self.skip(header & 0x0f, depth + 1)?;
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has_encryption_algorithm;

    #[test]
    fn finds_field_8_after_skipping_the_others() {
        // version: i32 = 1 (field 1), num_rows: i64 = 3 (field 3, delta 2),
        // created_by: binary "ab" (field 6, delta 3), then field 8 (delta 2): a struct.
        let plain = [0x15, 0x02, 0x26, 0x06, 0x38, 0x02, b'a', b'b', 0x00];
        assert!(!has_encryption_algorithm(&plain));
        let encrypted = [
            0x15, 0x02, 0x26, 0x06, 0x38, 0x02, b'a', b'b', 0x2c, 0x00, 0x00,
        ];
        assert!(has_encryption_algorithm(&encrypted));
        // A list of 3 i32 (field 1), then field 8 in long form (id zigzag 16).
        let long_form = [0x19, 0x35, 0x02, 0x04, 0x06, 0x0c, 0x10, 0x00, 0x00];
        assert!(has_encryption_algorithm(&long_form));
        for truncated in 0..encrypted.len() - 2 {
            assert!(
                !has_encryption_algorithm(&encrypted[..truncated]),
                "{truncated}"
            );
        }
        assert!(!has_encryption_algorithm(&[0x1f, 0xff, 0xff]));
    }
}
