//! The byte format of fit partials: what one instance's `fit_partial` returns and another
//! instance of the same component reads in `merge_fit`. Partials never leave the run, so
//! the format only has to be unambiguous and fast (float vectors are copied as bytes):
//! a header naming the component and the format version, then fixed-width little-endian
//! integers and floats, and length-prefixed strings and vectors.

use mlpipe_plugin_api::{Error, Result};

/// The version of this byte format; a partial of another version is refused.
const FORMAT: u64 = 1;

/// Writes a partial.
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// A partial of `component`.
    pub(crate) fn new(component: &str) -> Writer {
        let mut writer = Writer { bytes: Vec::new() };
        writer.u64(FORMAT);
        writer.str(component);
        writer
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, value: f64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.bytes.extend_from_slice(value);
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub(crate) fn f64s(&mut self, values: &[f64]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 8);
        for value in values {
            self.bytes.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// The encoded partial.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads a partial; every read past the end or of a malformed value is an error.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    component: &'a str,
}

impl<'a> Reader<'a> {
    /// Opens a partial that must come from `component`.
    pub(crate) fn new(bytes: &'a [u8], component: &'a str) -> Result<Reader<'a>> {
        let mut reader = Reader {
            rest: bytes,
            component,
        };
        let format = reader.u64()?;
        if format != FORMAT {
            return Err(reader.corrupt(&format!("byte format {format}, expected {FORMAT}")));
        }
        let from = reader.str()?;
        if from != component {
            return Err(reader.corrupt(&format!("it comes from `{from}`")));
        }
        Ok(reader)
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::internal(format!(
            "transform `{}` cannot merge a fit partial: {what}",
            self.component
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.corrupt("it ends early"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn eight(&mut self) -> Result<[u8; 8]> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(word)
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.eight()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.eight()?))
    }

    /// A length, checked against the bytes left (`unit` bytes per element).
    fn len(&mut self, unit: usize) -> Result<usize> {
        let len = self.u64()?;
        match usize::try_from(len) {
            Ok(len) if len.saturating_mul(unit) <= self.rest.len() => Ok(len),
            _ => Err(self.corrupt("a length runs past its end")),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.len(1)?;
        self.take(len)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt("a name is not UTF-8"))
    }

    pub(crate) fn f64s(&mut self) -> Result<Vec<f64>> {
        let len = self.len(8)?;
        let bytes = self.take(len * 8)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                f64::from_le_bytes(word)
            })
            .collect())
    }

    /// Checks that nothing is left over.
    pub(crate) fn end(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("it has trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_components_and_truncation() {
        let mut w = Writer::new("standardize");
        w.u64(7);
        w.f64(-0.5);
        w.str("f0");
        w.f64s(&[1.0, f64::NAN, 3.0]);
        let bytes = w.finish();

        let mut r = Reader::new(&bytes, "standardize").unwrap();
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), -0.5);
        assert_eq!(r.str().unwrap(), "f0");
        let floats = r.f64s().unwrap();
        assert_eq!(floats.len(), 3);
        assert!(floats[1].is_nan());
        r.end().unwrap();

        let err = Reader::new(&bytes, "min_max").err().unwrap();
        assert!(err.message().contains("comes from `standardize`"), "{err}");
        let mut r = Reader::new(&bytes[..bytes.len() - 4], "standardize").unwrap();
        r.u64().unwrap();
        r.f64().unwrap();
        r.str().unwrap();
        assert!(r.f64s().is_err());
    }
}
