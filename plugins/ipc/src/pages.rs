//! Giving back the pages of a memory-mapped file that the pipeline has read.
//!
//! A record batch of an IPC file is decoded from a mapping of its block, and the batches
//! handed out are slices of it, so the pages a pipeline touches stay in the process (its
//! resident memory) for as long as any slice of the block lives — a block of a million
//! rows is hundreds of megabytes, whatever the pipeline's memory budget. So the source
//! gives back the pages of the rows it handed out a few batches ago: the bytes of those
//! rows in every fixed-width or string column. A slice still in flight loses nothing but
//! speed: reading a page that was given back maps it again from the page cache.

use std::collections::VecDeque;
use std::ops::Range;

use mlpipe_plugin_api::RecordBatch;
use mlpipe_plugin_api::arrow::array::ArrayData;
use mlpipe_plugin_api::arrow::datatypes::DataType;

use crate::input::MappedRange;

/// A block whose rows are being handed out.
struct Block {
    /// The whole decoded block (the source's projection of it).
    batch: RecordBatch,
    mapping: MappedRange,
    /// The source's row count when the block's first row was handed out.
    first_row: u64,
    /// Rows of the block whose pages have been given back.
    given_back: usize,
}

impl Block {
    /// Gives back the pages that hold these rows of every column.
    fn give_back(&self, rows: Range<usize>) {
        for column in self.batch.columns() {
            for range in byte_ranges(&column.to_data(), rows.clone()) {
                self.mapping.give_back(range);
            }
        }
    }
}

/// The mapped blocks whose pages have not all been given back, oldest first.
#[derive(Default)]
pub(crate) struct Pages {
    blocks: VecDeque<Block>,
}

impl Pages {
    /// Follows a block whose rows are handed out from the source's row `first_row` on.
    /// Decoding it read all its offsets and strings (to validate them), which brought
    /// their pages in: they are given back now, and read again with their rows.
    pub(crate) fn follow(&mut self, batch: RecordBatch, mapping: MappedRange, first_row: u64) {
        let block = Block {
            batch,
            mapping,
            first_row,
            given_back: 0,
        };
        block.give_back(0..block.batch.num_rows());
        self.blocks.push_back(block);
    }

    /// Gives back the pages of every row before the source's row `row`, and forgets the
    /// blocks that are done.
    pub(crate) fn give_back_before(&mut self, row: u64) {
        while let Some(block) = self.blocks.front_mut() {
            let rows = block.batch.num_rows();
            let upto = usize::try_from(row.saturating_sub(block.first_row))
                .unwrap_or(usize::MAX)
                .min(rows);
            if upto > block.given_back {
                block.give_back(block.given_back..upto);
                block.given_back = upto;
            }
            if block.given_back < rows {
                return;
            }
            self.blocks.pop_front();
        }
    }
}

/// The address ranges that hold `rows` of an array's values: its fixed-width values, or a
/// string or binary column's offsets and bytes. Validity bitmaps (an eighth of a byte a row),
/// booleans and nested types are left alone.
fn byte_ranges(data: &ArrayData, rows: Range<usize>) -> Vec<Range<usize>> {
    // Buffers are indexed from their start: the array's offset counts.
    let (start, end) = (data.offset() + rows.start, data.offset() + rows.end);
    if rows.end > data.len() {
        return Vec::new();
    }
    let span = |buffer: usize, width: usize, from: usize, to: usize| {
        let base = data.buffers()[buffer].as_ptr() as usize;
        base + from * width..base + to * width
    };
    let width = match data.data_type() {
        DataType::Dictionary(key, _) => key.primitive_width(),
        other => other.primitive_width(),
    };
    // The bytes of rows `start..end` of a string column with offsets of `width` bytes
    // (`None` from offsets the buffer does not hold: then nothing is given back).
    let strings = |width: usize, at: &dyn Fn(usize) -> Option<usize>| -> Vec<Range<usize>> {
        match (at(start), at(end)) {
            (Some(first), Some(last)) if first <= last => {
                vec![span(0, width, start, end + 1), span(1, 1, first, last)]
            }
            _ => Vec::new(),
        }
    };
    match (data.data_type(), width) {
        (DataType::Utf8 | DataType::Binary, _) => {
            let offsets = data.buffers()[0].typed_data::<i32>();
            strings(4, &|row| usize::try_from(*offsets.get(row)?).ok())
        }
        (DataType::LargeUtf8 | DataType::LargeBinary, _) => {
            let offsets = data.buffers()[0].typed_data::<i64>();
            strings(8, &|row| usize::try_from(*offsets.get(row)?).ok())
        }
        (_, Some(width)) if data.buffers().len() == 1 => vec![span(0, width, start, end)],
        _ => Vec::new(),
    }
}
