//! Decoding: turning the fields of tokenized records into Arrow arrays, one batch at a time.
//!
//! Each column has a typed decoder that appends straight into the array's buffers (no
//! intermediate strings). Records are decoded in groups of `GROUP`, column by column, so
//! the bytes of a group stay in cache while its columns are read. Numbers are parsed with
//! `lexical-core`; dates, timestamps and decimals with arrow's own parsers. Text is checked
//! to be UTF-8 once per batch and column (arrow's check of the whole buffer, then of every
//! value boundary), not per value.
//!
//! A value that cannot be read (a bad number, a null where the column allows none, text
//! that is not UTF-8) ends decoding with an error that names the file, the line and the
//! column, or, when bad records are skipped, drops its record from the batch.

use std::ops::Range;
use std::sync::Arc;

use lexical_core::FromLexical;
use mlpipe_plugin_api::arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use mlpipe_plugin_api::arrow::array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, GenericStringArray, OffsetSizeTrait,
    PrimitiveArray, RecordBatch, RecordBatchOptions,
};
use mlpipe_plugin_api::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use mlpipe_plugin_api::arrow::compute::kernels::cast_utils::{
    Parser, parse_decimal, string_to_datetime,
};
use mlpipe_plugin_api::arrow::compute::{cast, filter_record_batch};
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use mlpipe_plugin_api::{Error, Result};

use crate::chunk::{Segment, locate};
use crate::dialect::{Dialect, NullMarkers};
use crate::tokenize::Tokens;
use crate::types::{time_zone, type_name};

/// Records decoded together, column by column (their bytes fit in a core's cache).
const GROUP: usize = 512;

/// A column of the output: its name and type, and whether the type was declared in the
/// config (rather than inferred).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub declared: bool,
}

/// Everything decoding needs besides the records.
#[derive(Debug)]
pub(crate) struct Decoding {
    pub columns: Vec<ColumnSpec>,
    pub schema: SchemaRef,
    pub dialect: Dialect,
    pub nulls: NullMarkers,
    /// Drop records with bad values instead of failing.
    pub skip_bad: bool,
    /// The size of the inference sample, for hints.
    pub infer_rows: usize,
}

/// A decoded batch and the number of records dropped from it.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub batch: RecordBatch,
    pub skipped: u64,
}

/// Why a value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    Unreadable,
    NullNotAllowed,
    NotUtf8,
}

/// A value that could not be read, by its row in the batch and its column.
#[derive(Debug, Clone, Copy)]
struct BadValue {
    row: usize,
    column: usize,
    flaw: Flaw,
}

/// Decodes the records of `plan` into one batch.
pub(crate) fn decode(plan: &[Segment], decoding: &Decoding) -> Result<Decoded> {
    let rows: usize = plan.iter().map(|s| s.records.len()).sum();
    let mut decoders: Vec<Box<dyn ColumnDecoder>> = decoding
        .columns
        .iter()
        .enumerate()
        .map(|(column, spec)| {
            new_decoder(spec, rows, || {
                raw_bytes(plan, column, decoding.columns.len())
            })
        })
        .collect::<Result<_>>()?;
    let mut bad = Vec::new();
    let mut first_row = 0;
    for segment in plan {
        let chunk = &segment.chunk;
        let mut start = segment.records.start;
        while start < segment.records.end {
            let group = start..(start + GROUP).min(segment.records.end);
            for (column, decoder) in decoders.iter_mut().enumerate() {
                let fields = Fields {
                    data: chunk.data(),
                    tokens: &chunk.tokens,
                    columns: decoding.columns.len(),
                    column,
                    records: group.clone(),
                    first_row: first_row + (group.start - segment.records.start),
                    dialect: &decoding.dialect,
                    nulls: &decoding.nulls,
                };
                decoder.append(&fields, &mut bad);
            }
            if !decoding.skip_bad && !bad.is_empty() {
                return Err(bad_value_error(plan, decoding, &bad));
            }
            start = group.end;
        }
        first_row += segment.records.len();
    }
    let mut arrays = Vec::with_capacity(decoders.len());
    for (column, decoder) in decoders.iter_mut().enumerate() {
        arrays.push(decoder.finish(column, &mut bad, &decoding.columns[column])?);
    }
    if !decoding.skip_bad && !bad.is_empty() {
        return Err(bad_value_error(plan, decoding, &bad));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    if bad.is_empty() {
        let batch = RecordBatch::try_new_with_options(decoding.schema.clone(), arrays, &options)?;
        return Ok(Decoded { batch, skipped: 0 });
    }
    // The arrays are valid (bad values were stored as nulls); the schema may forbid those
    // nulls, which the filter removes, so the batch is checked only after it.
    let mut keep = vec![true; rows];
    for value in &bad {
        keep[value.row] = false;
    }
    let skipped = keep.iter().filter(|k| !**k).count() as u64;
    let loose = Arc::new(nullable(&decoding.schema));
    let batch = RecordBatch::try_new_with_options(loose, arrays, &options)?;
    let kept = filter_record_batch(&batch, &BooleanArray::from(keep))?;
    let batch = RecordBatch::try_new_with_options(
        decoding.schema.clone(),
        kept.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(kept.num_rows())),
    )?;
    Ok(Decoded { batch, skipped })
}

/// The schema with every field nullable.
fn nullable(schema: &Schema) -> Schema {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The bytes of a column's fields in a plan (quotes included): room enough for its text.
fn raw_bytes(plan: &[Segment], column: usize, columns: usize) -> usize {
    plan.iter()
        .flat_map(|segment| {
            segment.records.clone().map(move |record| {
                let (start, end) = segment.chunk.tokens.field(record, column, columns);
                end - start
            })
        })
        .sum()
}

/// The error for the first bad value (the earliest row, then the leftmost column).
fn bad_value_error(plan: &[Segment], decoding: &Decoding, bad: &[BadValue]) -> Error {
    let Some(first) = bad.iter().min_by_key(|b| (b.row, b.column)) else {
        return Error::internal("a bad value was reported without its place");
    };
    let Some((chunk, record)) = locate(plan, first.row) else {
        return Error::internal(format!("bad value in row {} beyond the batch", first.row));
    };
    let spec = &decoding.columns[first.column];
    let place = chunk.place(chunk.tokens.starts[record] as usize);
    let (start, end) = chunk
        .tokens
        .field(record, first.column, decoding.columns.len());
    let mut scratch = Vec::new();
    let text = decoding
        .dialect
        .unquote(&chunk.data()[start..end], &mut scratch);
    let shown = shorten(&String::from_utf8_lossy(text));
    let skip = "or set `on_error = \"skip\"` to skip such records";
    let message = match first.flaw {
        Flaw::Unreadable if spec.declared => format!(
            "column `{}`: cannot read {shown:?} as {} (the type declared in `schema`); fix the value, {skip}",
            spec.name,
            type_name(&spec.data_type)
        ),
        Flaw::Unreadable => format!(
            "column `{}`: cannot read {shown:?} as {}, the type inferred from the first {} records; declare the column's type, e.g. `schema = {{ \"{}\" = \"utf8\" }}`, raise `infer_rows`, {skip}",
            spec.name,
            type_name(&spec.data_type),
            decoding.infer_rows,
            spec.name
        ),
        Flaw::NullNotAllowed => format!(
            "column `{}` is declared `not null` but the record has no value there ({shown:?} reads as null); fix the record, {skip}",
            spec.name
        ),
        Flaw::NotUtf8 => format!(
            "column `{}`: the value is not valid UTF-8 (the source reads UTF-8 text only; convert the file, e.g. with iconv), {skip}",
            spec.name
        ),
    };
    Error::bad_data(format!("{place}: {message}"))
}

/// At most 60 characters of a value, for messages.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// One column of a group of records.
struct Fields<'a> {
    data: &'a [u8],
    tokens: &'a Tokens,
    columns: usize,
    column: usize,
    records: Range<usize>,
    /// The batch row of the first record.
    first_row: usize,
    dialect: &'a Dialect,
    nulls: &'a NullMarkers,
}

/// A field's value: null, or its text without quotes.
enum Value<'a> {
    Null,
    Text(&'a [u8]),
}

impl Fields<'_> {
    /// Calls `f` with the batch row and the raw bytes of every field.
    #[inline(always)]
    fn for_each(&self, mut f: impl FnMut(usize, &[u8])) {
        for (i, record) in self.records.clone().enumerate() {
            let (start, end) = self.tokens.field(record, self.column, self.columns);
            f(self.first_row + i, &self.data[start..end]);
        }
    }

    /// The value of a raw field. A quoted field in a text column is never null, so that
    /// `""` stays an empty string; elsewhere null markers match the unquoted text.
    #[inline(always)]
    fn value<'s>(&self, raw: &'s [u8], scratch: &'s mut Vec<u8>, text: bool) -> Value<'s> {
        if self.dialect.is_quoted(raw) {
            let unquoted = self.dialect.unquote(raw, scratch);
            if !text && self.nulls.is_null(unquoted) {
                return Value::Null;
            }
            Value::Text(unquoted)
        } else if self.nulls.is_null(raw) {
            Value::Null
        } else {
            Value::Text(raw)
        }
    }
}

/// Builds one column of a batch.
trait ColumnDecoder: Send {
    /// Appends the column's fields of a group of records; records bad values in `bad`.
    fn append(&mut self, fields: &Fields<'_>, bad: &mut Vec<BadValue>);

    /// The finished array (the decoder is then empty).
    fn finish(
        &mut self,
        column: usize,
        bad: &mut Vec<BadValue>,
        spec: &ColumnSpec,
    ) -> Result<ArrayRef>;
}

/// The decoder for a column of type `spec.data_type`, for `rows` rows; `text_bytes` tells
/// a text column how much room its values need.
fn new_decoder(
    spec: &ColumnSpec,
    rows: usize,
    text_bytes: impl FnOnce() -> usize,
) -> Result<Box<dyn ColumnDecoder>> {
    let n = spec.nullable;
    Ok(match &spec.data_type {
        DataType::Boolean => Box::new(BoolDecoder {
            values: BooleanBufferBuilder::new(rows),
            nulls: NullBufferBuilder::new(rows),
            nullable: n,
            scratch: Vec::new(),
        }),
        DataType::Int8 => primitive::<Int8Type>(spec, rows, lexical),
        DataType::Int16 => primitive::<Int16Type>(spec, rows, lexical),
        DataType::Int32 => primitive::<Int32Type>(spec, rows, lexical),
        DataType::Int64 => primitive::<Int64Type>(spec, rows, lexical),
        DataType::UInt8 => primitive::<UInt8Type>(spec, rows, lexical),
        DataType::UInt16 => primitive::<UInt16Type>(spec, rows, lexical),
        DataType::UInt32 => primitive::<UInt32Type>(spec, rows, lexical),
        DataType::UInt64 => primitive::<UInt64Type>(spec, rows, lexical),
        DataType::Float32 => primitive::<Float32Type>(spec, rows, lexical),
        DataType::Float64 => primitive::<Float64Type>(spec, rows, lexical),
        DataType::Date32 => primitive::<Date32Type>(spec, rows, text_parser(Date32Type::parse)),
        DataType::Decimal128(precision, scale) => {
            let (precision, scale) = (*precision, *scale);
            primitive::<Decimal128Type>(
                spec,
                rows,
                text_parser(move |s| parse_decimal::<Decimal128Type>(s, precision, scale).ok()),
            )
        }
        DataType::Timestamp(unit, zone) => {
            let unit = *unit;
            let zone = time_zone(zone.as_deref().unwrap_or("UTC")).ok_or_else(|| {
                Error::config(format!("column `{}`: unknown time zone", spec.name))
            })?;
            let parse = move |s: &str| {
                let time = string_to_datetime(&zone, s).ok()?;
                match unit {
                    TimeUnit::Second => Some(time.timestamp()),
                    TimeUnit::Millisecond => Some(time.timestamp_millis()),
                    TimeUnit::Microsecond => Some(time.timestamp_micros()),
                    TimeUnit::Nanosecond => time.timestamp_nanos_opt(),
                }
            };
            match unit {
                TimeUnit::Second => {
                    primitive::<TimestampSecondType>(spec, rows, text_parser(parse))
                }
                TimeUnit::Millisecond => {
                    primitive::<TimestampMillisecondType>(spec, rows, text_parser(parse))
                }
                TimeUnit::Microsecond => {
                    primitive::<TimestampMicrosecondType>(spec, rows, text_parser(parse))
                }
                TimeUnit::Nanosecond => {
                    primitive::<TimestampNanosecondType>(spec, rows, text_parser(parse))
                }
            }
        }
        DataType::Utf8 => Box::new(StringDecoder::<i32>::new(rows, text_bytes(), n)),
        DataType::LargeUtf8 => Box::new(StringDecoder::<i64>::new(rows, text_bytes(), n)),
        DataType::Dictionary(key, text) if **key == DataType::Int32 => {
            let text_spec = ColumnSpec {
                data_type: text.as_ref().clone(),
                ..spec.clone()
            };
            Box::new(DictionaryDecoder {
                text: new_decoder(&text_spec, rows, text_bytes)?,
                data_type: spec.data_type.clone(),
            })
        }
        other => {
            return Err(Error::internal(format!(
                "column `{}`: no CSV decoder for {other}",
                spec.name
            )));
        }
    })
}

/// A number parsed by `lexical-core`.
#[inline(always)]
fn lexical<N: FromLexical>(text: &[u8]) -> Option<N> {
    lexical_core::parse(text).ok()
}

/// A parser of UTF-8 text as a parser of bytes.
fn text_parser<N>(parse: impl Fn(&str) -> Option<N>) -> impl Fn(&[u8]) -> Option<N> {
    move |bytes| std::str::from_utf8(bytes).ok().and_then(&parse)
}

fn primitive<T: ArrowPrimitiveType>(
    spec: &ColumnSpec,
    rows: usize,
    parse: impl Fn(&[u8]) -> Option<T::Native> + Send + 'static,
) -> Box<dyn ColumnDecoder> {
    Box::new(PrimitiveDecoder::<T, _> {
        values: Vec::with_capacity(rows),
        nulls: NullBufferBuilder::new(rows),
        nullable: spec.nullable,
        data_type: spec.data_type.clone(),
        parse,
        scratch: Vec::new(),
    })
}

/// Numbers, dates, timestamps, decimals: values parsed from text by `parse`.
struct PrimitiveDecoder<T: ArrowPrimitiveType, P> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    nullable: bool,
    data_type: DataType,
    parse: P,
    scratch: Vec<u8>,
}

impl<T, P> ColumnDecoder for PrimitiveDecoder<T, P>
where
    T: ArrowPrimitiveType,
    P: Fn(&[u8]) -> Option<T::Native> + Send,
{
    fn append(&mut self, fields: &Fields<'_>, bad: &mut Vec<BadValue>) {
        let Self {
            values,
            nulls,
            nullable,
            parse,
            scratch,
            ..
        } = self;
        fields.for_each(|row, raw| {
            let parsed = match fields.value(raw, scratch, false) {
                Value::Null => {
                    if !*nullable {
                        bad.push(BadValue {
                            row,
                            column: fields.column,
                            flaw: Flaw::NullNotAllowed,
                        });
                    }
                    None
                }
                Value::Text(text) => {
                    let parsed = parse(text).or_else(|| {
                        let trimmed = text.trim_ascii();
                        (trimmed.len() < text.len())
                            .then(|| parse(trimmed))
                            .flatten()
                    });
                    if parsed.is_none() {
                        bad.push(BadValue {
                            row,
                            column: fields.column,
                            flaw: Flaw::Unreadable,
                        });
                    }
                    parsed
                }
            };
            values.push(parsed.unwrap_or_default());
            nulls.append(parsed.is_some());
        });
    }

    fn finish(&mut self, _: usize, _: &mut Vec<BadValue>, _: &ColumnSpec) -> Result<ArrayRef> {
        let values = ScalarBuffer::from(std::mem::take(&mut self.values));
        let array = PrimitiveArray::<T>::try_new(values, self.nulls.finish())?
            .with_data_type(self.data_type.clone());
        Ok(Arc::new(array))
    }
}

/// `true` and `false`, in any case.
struct BoolDecoder {
    values: BooleanBufferBuilder,
    nulls: NullBufferBuilder,
    nullable: bool,
    scratch: Vec<u8>,
}

impl ColumnDecoder for BoolDecoder {
    fn append(&mut self, fields: &Fields<'_>, bad: &mut Vec<BadValue>) {
        let Self {
            values,
            nulls,
            nullable,
            scratch,
        } = self;
        fields.for_each(|row, raw| {
            let parsed = match fields.value(raw, scratch, false) {
                Value::Null => {
                    if !*nullable {
                        bad.push(BadValue {
                            row,
                            column: fields.column,
                            flaw: Flaw::NullNotAllowed,
                        });
                    }
                    None
                }
                Value::Text(text) => {
                    let text = text.trim_ascii();
                    let parsed = if text.eq_ignore_ascii_case(b"true") {
                        Some(true)
                    } else if text.eq_ignore_ascii_case(b"false") {
                        Some(false)
                    } else {
                        None
                    };
                    if parsed.is_none() {
                        bad.push(BadValue {
                            row,
                            column: fields.column,
                            flaw: Flaw::Unreadable,
                        });
                    }
                    parsed
                }
            };
            values.append(parsed.unwrap_or(false));
            nulls.append(parsed.is_some());
        });
    }

    fn finish(&mut self, _: usize, _: &mut Vec<BadValue>, _: &ColumnSpec) -> Result<ArrayRef> {
        Ok(Arc::new(BooleanArray::new(
            self.values.finish(),
            self.nulls.finish(),
        )))
    }
}

/// Text: the unquoted bytes, appended to one buffer; checked to be UTF-8 at the end.
struct StringDecoder<O: OffsetSizeTrait> {
    offsets: Vec<O>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
    nullable: bool,
    scratch: Vec<u8>,
    /// Set when the text outgrew the offset type.
    overflow: bool,
}

impl<O: OffsetSizeTrait> StringDecoder<O> {
    fn new(rows: usize, bytes: usize, nullable: bool) -> StringDecoder<O> {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(O::usize_as(0));
        StringDecoder {
            offsets,
            values: Vec::with_capacity(bytes),
            nulls: NullBufferBuilder::new(rows),
            nullable,
            scratch: Vec::new(),
            overflow: false,
        }
    }
}

impl<O: OffsetSizeTrait> ColumnDecoder for StringDecoder<O> {
    fn append(&mut self, fields: &Fields<'_>, bad: &mut Vec<BadValue>) {
        let Self {
            offsets,
            values,
            nulls,
            nullable,
            scratch,
            overflow,
        } = self;
        fields.for_each(|row, raw| {
            match fields.value(raw, scratch, true) {
                Value::Null => {
                    if !*nullable {
                        bad.push(BadValue {
                            row,
                            column: fields.column,
                            flaw: Flaw::NullNotAllowed,
                        });
                    }
                    nulls.append_null();
                }
                Value::Text(text) => {
                    values.extend_from_slice(text);
                    nulls.append_non_null();
                }
            }
            match O::from_usize(values.len()) {
                Some(offset) => offsets.push(offset),
                None => {
                    *overflow = true;
                    offsets.push(offsets[offsets.len() - 1]);
                }
            }
        });
    }

    fn finish(
        &mut self,
        column: usize,
        bad: &mut Vec<BadValue>,
        spec: &ColumnSpec,
    ) -> Result<ArrayRef> {
        if self.overflow {
            return Err(Error::bad_data(format!(
                "column `{}` holds more text than one batch can address ({} bytes); lower the pipeline's `batch_rows`{}",
                spec.name,
                self.values.len(),
                if O::IS_LARGE {
                    ""
                } else {
                    " or declare the column `large_utf8` in `schema`"
                }
            )));
        }
        let mut offsets = std::mem::take(&mut self.offsets);
        let mut values = std::mem::take(&mut self.values);
        let nulls = self.nulls.finish();
        if std::str::from_utf8(&values).is_err() || !boundaries_ok(&values, &offsets) {
            // Name every bad value (value `i` is row `i` of the batch), and blank it so
            // that the array is valid.
            let mut clean = Vec::with_capacity(values.len());
            let mut clean_offsets = Vec::with_capacity(offsets.len());
            clean_offsets.push(O::usize_as(0));
            for (i, pair) in offsets.windows(2).enumerate() {
                let value = &values[pair[0].as_usize()..pair[1].as_usize()];
                if std::str::from_utf8(value).is_ok() {
                    clean.extend_from_slice(value);
                } else {
                    bad.push(BadValue {
                        row: i,
                        column,
                        flaw: Flaw::NotUtf8,
                    });
                }
                clean_offsets.push(O::usize_as(clean.len()));
            }
            values = clean;
            offsets = clean_offsets;
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let array = GenericStringArray::<O>::try_new(offsets, Buffer::from_vec(values), nulls)?;
        Ok(Arc::new(array))
    }
}

/// Text read as a dictionary: decoded as text, then encoded with arrow's dictionary cast,
/// which stores each distinct value of the batch once.
struct DictionaryDecoder {
    text: Box<dyn ColumnDecoder>,
    data_type: DataType,
}

impl ColumnDecoder for DictionaryDecoder {
    fn append(&mut self, fields: &Fields<'_>, bad: &mut Vec<BadValue>) {
        self.text.append(fields, bad);
    }

    fn finish(
        &mut self,
        column: usize,
        bad: &mut Vec<BadValue>,
        spec: &ColumnSpec,
    ) -> Result<ArrayRef> {
        let text = self.text.finish(column, bad, spec)?;
        Ok(cast(&text, &self.data_type)?)
    }
}

/// Whether every offset falls on a character boundary of `values` (valid UTF-8).
fn boundaries_ok<O: OffsetSizeTrait>(values: &[u8], offsets: &[O]) -> bool {
    offsets.iter().all(|offset| {
        values
            .get(offset.as_usize())
            .is_none_or(|&byte| (byte as i8) >= -0x40)
    })
}
