//! NumPy `.npy` files (format version 1.0): the magic string, a Python-literal header
//! padded so the data starts at a multiple of 64 bytes, then the raw little-endian data in
//! C order. See `numpy.lib.format`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use mlpipe_plugin_api::{Error, Result};

/// The header of an array of dtype `descr` (e.g. `<f4`) and this shape.
pub(crate) fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + dict + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let length = u16::try_from(dict.len()).expect("an npy header of a 2-D shape is short");
    bytes.extend(length.to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes
}

/// Writes `data` (already in the dtype's little-endian layout) as an `.npy` file, synced.
pub(crate) fn write(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let failed = |e: std::io::Error| Error::io(format!("{}: cannot write: {e}", path.display()));
    let file = File::create(path).map_err(failed)?;
    let mut out = BufWriter::new(file);
    out.write_all(&header(descr, shape)).map_err(failed)?;
    out.write_all(data).map_err(failed)?;
    let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_padded_to_64_bytes_and_name_the_shape() {
        for shape in [&[3, 4][..], &[7], &[0, 16], &[1_000_000, 1234]] {
            let header = header("<f4", shape);
            assert_eq!(header.len() % 64, 0);
            assert_eq!(&header[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(*header.last().unwrap(), b'\n');
            let text = String::from_utf8(header[10..].to_vec()).unwrap();
            assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': ("));
        }
        let text = String::from_utf8(header("|b1", &[5])[10..].to_vec()).unwrap();
        assert!(text.contains("'shape': (5,)"), "{text}");
    }
}
