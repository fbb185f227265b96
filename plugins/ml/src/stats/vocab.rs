//! Categories of a column: counting them while fitting ([`Counts`], mergeable), ordering
//! them as scikit-learn does, grouping infrequent ones, and looking rows up in a fitted
//! list of categories ([`Lookup`]).
//!
//! A column holds strings (any string type, or a dictionary of strings), integers (any
//! integer type, or a dictionary of them; compared as int64) or floats (compared as
//! float64; `-0.0` is `0.0`). Nulls, and NaN, are missing values: never a category.
//!
//! Strings of a string array are counted in a map of the batch's own strings (borrowed, not
//! copied), then each distinct one once into the running counts, and looked up in the
//! fitted categories one row at a time; a dictionary's values are counted or looked up once
//! each, and other string types go through arrow's dictionary encoding first. Numbers go
//! through a map keyed by their bits. String maps hash with foldhash (seeded per map); a
//! string of at most 15 bytes is keyed by one 128-bit number ([`ShortText`]), compared
//! without `memcmp`.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use mlpipe_plugin_api::arrow::array::{
    Array, AsArray, DictionaryArray, GenericStringArray, OffsetSizeTrait,
};
use mlpipe_plugin_api::arrow::compute::{CastOptions, cast_with_options};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use mlpipe_plugin_api::arrow::util::display::array_value_to_string;
use mlpipe_plugin_api::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::Accepts;
use crate::fitting::Stats;
use crate::hashing::NumberMap;
use crate::wire::{Reader, Writer};

/// Columns whose values can be categories.
pub(crate) const CATEGORICAL: Accepts = Accepts {
    test: |ty| Kind::of(ty).is_some(),
    what: "string, integer or floating-point",
};

/// What a categorical column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Integer,
    Float,
}

impl Kind {
    /// The kind of a column of type `ty`, if it can be categorical.
    pub(crate) fn of(ty: &DataType) -> Option<Kind> {
        use DataType::*;
        match ty {
            Utf8 | LargeUtf8 | Utf8View => Some(Kind::Text),
            Float32 | Float64 => Some(Kind::Float),
            Dictionary(_, values) => Kind::of(values),
            other if other.is_integer() => Some(Kind::Integer),
            _ => None,
        }
    }

    fn code(self) -> u64 {
        match self {
            Kind::Text => 0,
            Kind::Integer => 1,
            Kind::Float => 2,
        }
    }

    fn from_code(code: u64) -> Option<Kind> {
        [Kind::Text, Kind::Integer, Kind::Float]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// A category as fitted parameters hold it: a JSON string, integer or float, or `null`
/// for the encoders that make missing values a category of their own (`one_hot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Category {
    Integer(i64),
    Float(f64),
    Text(String),
    Null,
}

impl std::fmt::Display for Category {
    /// How a category reads in a column name: the value, or `null`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Category::Integer(v) => write!(f, "{v}"),
            Category::Float(v) => write!(f, "{v:?}"),
            Category::Text(v) => f.write_str(v),
            Category::Null => f.write_str("null"),
        }
    }
}

impl Category {
    /// The map key of a number category of a column of kind `kind`.
    fn number_key(&self, kind: Kind) -> Option<u64> {
        match (self, kind) {
            (Category::Integer(v), Kind::Integer) => Some(*v as u64),
            (Category::Integer(v), Kind::Float) => Some(float_key(*v as f64)),
            (Category::Float(v), Kind::Float) => Some(float_key(*v)),
            _ => None,
        }
    }
}

/// The map key of a float: its bits, with `-0.0` as `0.0`.
fn float_key(value: f64) -> u64 {
    (value + 0.0).to_bits()
}

fn cast_options() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// Calls `visit(row, key)` for every non-missing value of a number column, `key` being
/// the value's map key.
fn for_each_number(array: &dyn Array, kind: Kind, mut visit: impl FnMut(usize, u64)) -> Result<()> {
    match kind {
        Kind::Integer => {
            let ints = cast_with_options(array, &DataType::Int64, &cast_options())?;
            let ints = ints.as_primitive::<Int64Type>();
            if ints.null_count() == 0 {
                ints.values()
                    .iter()
                    .enumerate()
                    .for_each(|(row, &v)| visit(row, v as u64));
            } else {
                ints.iter()
                    .enumerate()
                    .for_each(|(row, v)| v.into_iter().for_each(|v| visit(row, v as u64)));
            }
        }
        _ => {
            let floats = cast_with_options(array, &DataType::Float64, &cast_options())?;
            for (row, value) in floats.as_primitive::<Float64Type>().iter().enumerate() {
                if let Some(value) = value.filter(|v| !v.is_nan()) {
                    visit(row, float_key(value));
                }
            }
        }
    }
    Ok(())
}

/// A map keyed by strings.
type TextMap<K, V> = HashMap<K, V, RandomState>;

/// A string of at most [`ShortText::MAX`] bytes as one number: its bytes (little-endian)
/// and its length in the top byte. Categorical columns mostly hold short strings; keyed by
/// this, a map compares keys as numbers instead of calling `memcmp` for every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ShortText(u128);

impl ShortText {
    const MAX: usize = 15;

    /// The key of `bytes`, when they are short enough.
    fn new(bytes: &[u8]) -> Option<ShortText> {
        (bytes.len() <= Self::MAX).then(|| {
            let mut padded = [0u8; 16];
            padded[..bytes.len()].copy_from_slice(bytes);
            padded[15] = bytes.len() as u8;
            ShortText(u128::from_le_bytes(padded))
        })
    }

    /// The key of the `len` bytes at `start` of `data` when 16 bytes can be read from
    /// there: one unaligned load, masked (the hot path of [`for_each_text`]).
    fn at(data: &[u8], start: usize, len: usize) -> Option<ShortText> {
        let window: &[u8; 16] = data.get(start..start + 16)?.try_into().ok()?;
        (len <= Self::MAX).then(|| {
            let mask = (1u128 << (8 * len)) - 1;
            ShortText((u128::from_le_bytes(*window) & mask) | ((len as u128) << 120))
        })
    }
}

/// A row's string: as a [`ShortText`] key when it is short, else as text.
enum Text<'a> {
    Short(ShortText),
    Long(&'a str),
}

/// Calls `visit(row, text)` for every non-null row of a string array; returns the nulls.
fn for_each_text<'a, O: OffsetSizeTrait>(
    array: &'a GenericStringArray<O>,
    mut visit: impl FnMut(usize, Text<'a>),
) -> u64 {
    let (offsets, data) = (array.value_offsets(), array.value_data());
    let mut nulls = 0;
    for row in 0..array.len() {
        if array.is_null(row) {
            nulls += 1;
            continue;
        }
        let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        let short =
            ShortText::at(data, start, end - start).or_else(|| ShortText::new(&data[start..end]));
        visit(
            row,
            match short {
                Some(key) => Text::Short(key),
                None => Text::Long(array.value(row)),
            },
        );
    }
    nulls
}

/// A string column as a dictionary with int32 keys over Utf8 values (arrow's hashing).
fn string_dictionary(array: &dyn Array) -> Result<DictionaryArray<Int32Type>> {
    let target = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let encoded = cast_with_options(array, &target, &cast_options())?;
    Ok(encoded.as_dictionary::<Int32Type>().clone())
}

/// How many rows of each distinct value of a dictionary's values, and of missing values.
fn count_keys(dictionary: &DictionaryArray<Int32Type>) -> (Vec<u64>, u64) {
    let mut counts = vec![0u64; dictionary.values().len()];
    let keys = dictionary.keys();
    if keys.null_count() == 0 {
        for &key in keys.values() {
            counts[key as usize] += 1;
        }
    } else {
        for key in keys.iter().flatten() {
            counts[key as usize] += 1;
        }
    }
    (counts, keys.null_count() as u64)
}

/// How often each category occurs in a column, and how many values are missing.
pub(crate) struct Counts {
    kind: Kind,
    text: TextMap<Box<str>, u64>,
    numbers: NumberMap<u64>,
    missing: u64,
}

impl Counts {
    /// No counts yet, for a column of `kind`.
    pub(crate) fn new(kind: Kind) -> Counts {
        Counts {
            kind,
            text: TextMap::default(),
            numbers: NumberMap::default(),
            missing: 0,
        }
    }

    /// The number of missing values (nulls, NaN).
    pub(crate) fn missing(&self) -> u64 {
        self.missing
    }

    /// Every category with its count, in scikit-learn's order: strings by their UTF-8
    /// bytes, numbers by value.
    pub(crate) fn into_sorted(self) -> Vec<(Category, u64)> {
        match self.kind {
            Kind::Text => {
                let mut all: Vec<(Box<str>, u64)> = self.text.into_iter().collect();
                all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                all.into_iter()
                    .map(|(v, c)| (Category::Text(v.into()), c))
                    .collect()
            }
            Kind::Integer => {
                let mut all: Vec<(i64, u64)> = self
                    .numbers
                    .into_iter()
                    .map(|(k, c)| (k as i64, c))
                    .collect();
                all.sort_unstable();
                all.into_iter()
                    .map(|(v, c)| (Category::Integer(v), c))
                    .collect()
            }
            Kind::Float => {
                let mut all: Vec<(f64, u64)> = self
                    .numbers
                    .into_iter()
                    .map(|(k, c)| (f64::from_bits(k), c))
                    .collect();
                all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                all.into_iter()
                    .map(|(v, c)| (Category::Float(v), c))
                    .collect()
            }
        }
    }

    /// Counts the strings of a string array: each row into maps of the batch's strings
    /// (short ones by their [`ShortText`] key, with a row that holds them), then each
    /// distinct string once into the totals.
    fn count_strings<O: OffsetSizeTrait>(&mut self, array: &GenericStringArray<O>) {
        let mut short: TextMap<ShortText, (u64, usize)> = TextMap::default();
        let mut long: TextMap<&str, u64> = TextMap::default();
        self.missing += for_each_text(array, |row, text| match text {
            Text::Short(key) => short.entry(key).or_insert((0, row)).0 += 1,
            Text::Long(value) => *long.entry(value).or_insert(0) += 1,
        });
        for (count, row) in short.into_values() {
            self.add_text(array.value(row), count);
        }
        for (value, count) in long {
            self.add_text(value, count);
        }
    }

    fn add_text(&mut self, value: &str, count: u64) {
        match self.text.get_mut(value) {
            Some(total) => *total += count,
            None => {
                self.text.insert(value.into(), count);
            }
        }
    }
}

impl Stats for Counts {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        match self.kind {
            Kind::Text if array.data_type() == &DataType::Utf8 => {
                self.count_strings(array.as_string::<i32>());
            }
            Kind::Text if array.data_type() == &DataType::LargeUtf8 => {
                self.count_strings(array.as_string::<i64>());
            }
            Kind::Text => {
                let dictionary = string_dictionary(array)?;
                let (counts, missing) = count_keys(&dictionary);
                self.missing += missing;
                let values = dictionary.values().as_string::<i32>();
                for (value, count) in values.iter().zip(counts) {
                    match value {
                        _ if count == 0 => {}
                        Some(value) => self.add_text(value, count),
                        None => self.missing += count,
                    }
                }
            }
            kind => {
                let mut seen = 0u64;
                let numbers = &mut self.numbers;
                for_each_number(array, kind, |_, key| {
                    *numbers.entry(key).or_insert(0) += 1;
                    seen += 1;
                })?;
                self.missing += array.len() as u64 - seen;
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        if other.kind != self.kind {
            return Err(Error::bad_data(format!(
                "the column holds {:?} values in one part of the data and {:?} values in another",
                self.kind, other.kind
            )));
        }
        self.missing += other.missing;
        for (value, count) in other.text {
            self.add_text(&value, count);
        }
        for (key, count) in other.numbers {
            *self.numbers.entry(key).or_insert(0) += count;
        }
        Ok(())
    }

    fn encode(&self, out: &mut Writer) {
        out.u64(self.kind.code());
        out.u64(self.missing);
        out.u64(self.text.len() as u64);
        for (value, count) in &self.text {
            out.str(value);
            out.u64(*count);
        }
        out.u64(self.numbers.len() as u64);
        for (key, count) in &self.numbers {
            out.u64(*key);
            out.u64(*count);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        let code = input.u64()?;
        let kind = Kind::from_code(code)
            .ok_or_else(|| Error::internal(format!("unknown category kind {code} in a partial")))?;
        let mut counts = Counts::new(kind);
        counts.missing = input.u64()?;
        for _ in 0..input.u64()? {
            let value = input.str()?;
            let count = input.u64()?;
            counts.text.insert(value.into(), count);
        }
        for _ in 0..input.u64()? {
            let key = input.u64()?;
            let count = input.u64()?;
            counts.numbers.insert(key, count);
        }
        Ok(counts)
    }

    fn memory_usage(&self) -> usize {
        let text: usize = self.text.keys().map(|k| k.len() + 40).sum();
        text + self.numbers.len() * 24
    }
}

/// scikit-learn's grouping of infrequent categories (`_identify_infrequent`): given the
/// counts of the sorted categories, which are infrequent. A category is infrequent when
/// its count is below `min_frequency`; then, if more than `max_categories` outputs would
/// remain (the infrequent group counts as one, even while empty), only the
/// `max_categories - 1` most frequent stay (ties keep the later category, as scikit-learn's
/// stable sort does).
pub(crate) fn infrequent(
    counts: &[u64],
    min_frequency: Option<f64>,
    max_categories: Option<usize>,
) -> Vec<bool> {
    let mut mask: Vec<bool> = counts
        .iter()
        .map(|&c| min_frequency.is_some_and(|min| (c as f64) < min))
        .collect();
    let infrequent = mask.iter().filter(|&&m| m).count();
    if let Some(max) = max_categories
        && max < counts.len() - infrequent + 1
    {
        let keep = max.saturating_sub(1);
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&i| counts[i]);
        for &i in &order[..counts.len().saturating_sub(keep)] {
            mask[i] = true;
        }
    }
    mask
}

/// Where a row's value is in a fitted list of categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The index of the category.
    At(u32),
    /// A value that is not in the list.
    Unknown,
    /// A null or NaN.
    Missing,
}

/// A fitted list of categories, for looking rows up.
pub(crate) struct Lookup {
    kind: Kind,
    /// Strings of at most [`ShortText::MAX`] bytes, and the others.
    short: TextMap<ShortText, u32>,
    text: TextMap<Box<str>, u32>,
    numbers: NumberMap<u32>,
    /// The position of the `null` category, when there is one.
    null: Option<u32>,
}

impl Lookup {
    /// The lookup of `categories` for a column of type `ty`.
    pub(crate) fn new(categories: &[Category], ty: &DataType) -> Result<Lookup> {
        let kind = Kind::of(ty)
            .ok_or_else(|| Error::config(format!("a {ty} column cannot hold categories")))?;
        let mut lookup = Lookup {
            kind,
            short: TextMap::default(),
            text: TextMap::default(),
            numbers: NumberMap::default(),
            null: None,
        };
        for (index, category) in categories.iter().enumerate() {
            let index = index as u32;
            match (category, kind) {
                (Category::Null, _) => lookup.null = Some(index),
                (Category::Text(value), Kind::Text) => match ShortText::new(value.as_bytes()) {
                    Some(key) => {
                        lookup.short.insert(key, index);
                    }
                    None => {
                        lookup.text.insert(value.as_str().into(), index);
                    }
                },
                (category, kind) => {
                    let key = category.number_key(kind).ok_or_else(|| {
                        Error::config(format!(
                            "the fitted category {category:?} does not fit a {ty} column; fit the pipeline again on this data"
                        ))
                    })?;
                    lookup.numbers.insert(key, index);
                }
            }
        }
        Ok(lookup)
    }

    /// The position of every row of `array` (missing rows are at the `null` category when
    /// there is one).
    pub(crate) fn positions(&self, array: &dyn Array) -> Result<Vec<Position>> {
        let missing = self.null.map_or(Position::Missing, Position::At);
        match (self.kind, array.data_type()) {
            (Kind::Text, DataType::Utf8) => {
                return Ok(self.string_positions(array.as_string::<i32>(), missing));
            }
            (Kind::Text, DataType::LargeUtf8) => {
                return Ok(self.string_positions(array.as_string::<i64>(), missing));
            }
            _ => {}
        }
        let mut positions = vec![missing; array.len()];
        match self.kind {
            Kind::Text => {
                let dictionary = string_dictionary(array)?;
                let values = dictionary.values().as_string::<i32>();
                let table: Vec<Position> = values
                    .iter()
                    .map(|value| self.text_position(value, missing))
                    .collect();
                let keys = dictionary.keys();
                for (row, key) in keys.values().iter().enumerate() {
                    if keys.is_valid(row) {
                        positions[row] = table[*key as usize];
                    }
                }
            }
            kind => for_each_number(array, kind, |row, key| {
                positions[row] = self
                    .numbers
                    .get(&key)
                    .map_or(Position::Unknown, |&i| Position::At(i));
            })?,
        }
        Ok(positions)
    }

    /// The position of a string (`missing` for a null).
    fn text_position(&self, value: Option<&str>, missing: Position) -> Position {
        match value {
            None => missing,
            Some(value) => match ShortText::new(value.as_bytes()) {
                Some(key) => self.position_of(Text::Short(key)),
                None => self.position_of(Text::Long(value)),
            },
        }
    }

    /// The position of a non-null string.
    fn position_of(&self, text: Text<'_>) -> Position {
        let found = match text {
            Text::Short(key) => self.short.get(&key),
            Text::Long(value) => self.text.get(value),
        };
        found.map_or(Position::Unknown, |&i| Position::At(i))
    }

    /// The position of every row of a string array, each looked up in the categories.
    fn string_positions<O: OffsetSizeTrait>(
        &self,
        array: &GenericStringArray<O>,
        missing: Position,
    ) -> Vec<Position> {
        let mut positions = vec![missing; array.len()];
        for_each_text(array, |row, text| positions[row] = self.position_of(text));
        positions
    }
}

/// The error for a value that was not seen when fitting, naming it.
pub(crate) fn unknown_error(array: &dyn Array, positions: &[Position], remedy: &str) -> Error {
    let row = positions
        .iter()
        .position(|p| *p == Position::Unknown)
        .unwrap_or_default();
    let value = array_value_to_string(array, row).unwrap_or_else(|_| "?".to_string());
    Error::bad_data(format!(
        "unknown category `{value}` (not seen when fitting); {remedy}"
    ))
    .with_rows(row as u64..row as u64 + 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{
        ArrayRef, Float32Array, Int8Array, LargeStringArray, StringArray, StringViewArray,
    };

    use super::*;

    fn counted(arrays: &[ArrayRef]) -> Counts {
        let kind = Kind::of(arrays[0].data_type()).unwrap();
        let mut halves = (Counts::new(kind), Counts::new(kind));
        for (i, array) in arrays.iter().enumerate() {
            let target = if i % 2 == 0 {
                &mut halves.0
            } else {
                &mut halves.1
            };
            target.update(array.as_ref()).unwrap();
        }
        let mut out = Writer::new("t");
        halves.1.encode(&mut out);
        let bytes = out.finish();
        let decoded = Counts::decode(&mut Reader::new(&bytes, "t").unwrap()).unwrap();
        halves.0.merge(decoded).unwrap();
        halves.0
    }

    #[test]
    fn strings_of_every_type_count_and_sort_by_bytes() {
        let counts = counted(&[
            Arc::new(StringArray::from(vec![
                Some("b"),
                None,
                Some("a"),
                Some("b"),
            ])),
            Arc::new(StringArray::from(vec![Some("Z"), Some("é"), Some("b")])),
            Arc::new(StringArray::from(vec![Some("a")])),
        ]);
        assert_eq!(counts.missing(), 1);
        let sorted = counts.into_sorted();
        let expected = [("Z", 1), ("a", 2), ("b", 3), ("é", 1)];
        assert_eq!(sorted.len(), expected.len());
        for ((category, count), (value, n)) in sorted.iter().zip(expected) {
            assert_eq!(category, &Category::Text(value.to_string()));
            assert_eq!(*count, n);
        }
        for array in [
            Arc::new(LargeStringArray::from(vec!["x", "y"])) as ArrayRef,
            Arc::new(StringViewArray::from(vec!["x", "y"])),
        ] {
            let mut c = Counts::new(Kind::Text);
            c.update(array.as_ref()).unwrap();
            assert_eq!(c.into_sorted().len(), 2);
        }
    }

    #[test]
    fn numbers_sort_by_value_and_nan_is_missing() {
        let ints = counted(&[Arc::new(Int8Array::from(vec![
            Some(3),
            Some(-1),
            None,
            Some(3),
        ]))]);
        let sorted: Vec<(Category, u64)> = ints.into_sorted();
        assert_eq!(
            sorted,
            [(Category::Integer(-1), 1), (Category::Integer(3), 2)]
        );
        let floats = counted(&[Arc::new(Float32Array::from(vec![
            Some(0.5),
            Some(f32::NAN),
            Some(-0.0),
            Some(0.0),
            None,
        ]))]);
        assert_eq!(floats.missing(), 2);
        assert_eq!(
            floats.into_sorted(),
            [(Category::Float(0.0), 2), (Category::Float(0.5), 1)]
        );
    }

    #[test]
    fn infrequent_grouping_follows_scikit_learn() {
        // Values checked with scikit-learn 1.9.1's OrdinalEncoder.infrequent_categories_.
        assert_eq!(
            infrequent(&[5, 1, 3], Some(2.0), None),
            [false, true, false]
        );
        // max_categories = 3 over 3 frequent categories: the group counts as one output.
        assert_eq!(infrequent(&[5, 1, 3], None, Some(3)), [false, true, false]);
        // Ties: the later category stays.
        assert_eq!(infrequent(&[2, 2, 2], None, Some(2)), [true, true, false]);
        assert_eq!(infrequent(&[2, 2], None, Some(1)), [true, true]);
        assert_eq!(infrequent(&[2, 2], None, Some(5)), [false, false]);
    }

    #[test]
    fn short_string_keys_are_the_same_loaded_or_copied() {
        let data: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        for start in 0..data.len() {
            for len in 0..=(data.len() - start).min(ShortText::MAX) {
                let copied = ShortText::new(&data[start..start + len]).unwrap();
                if let Some(loaded) = ShortText::at(&data, start, len) {
                    assert_eq!(loaded, copied, "{start} {len}");
                }
            }
        }
        assert_ne!(ShortText::new(b"a"), ShortText::new(b"a\0"));
        assert_eq!(ShortText::new(&data[..16]), None);
    }

    #[test]
    fn short_and_long_strings_count_and_look_up_alike() {
        let values = vec![
            Some(""),
            Some("a"),
            Some("fifteen_bytes__"),
            None,
            Some("sixteen_bytes___"),
            Some("a much longer category name"),
            Some("a"),
        ];
        let expected = [
            Position::At(0),
            Position::At(1),
            Position::At(3),
            Position::Missing,
            Position::At(4),
            Position::At(2),
            Position::At(1),
        ];
        for array in [
            Arc::new(StringArray::from(values.clone())) as ArrayRef,
            Arc::new(LargeStringArray::from(values.clone())),
        ] {
            let mut counts = Counts::new(Kind::Text);
            counts.update(array.as_ref()).unwrap();
            assert_eq!(counts.missing(), 1);
            let sorted = counts.into_sorted();
            let texts: Vec<(Category, u64)> = [
                ("", 1),
                ("a", 2),
                ("a much longer category name", 1),
                ("fifteen_bytes__", 1),
                ("sixteen_bytes___", 1),
            ]
            .into_iter()
            .map(|(v, c)| (Category::Text(v.into()), c))
            .collect();
            assert_eq!(sorted, texts);
            let categories: Vec<Category> = sorted.into_iter().map(|(c, _)| c).collect();
            let lookup = Lookup::new(&categories, &DataType::Utf8).unwrap();
            assert_eq!(lookup.positions(array.as_ref()).unwrap(), expected);
        }
    }

    #[test]
    fn lookups_find_known_unknown_and_missing_rows() {
        let categories = vec![Category::Text("a".into()), Category::Text("b".into())];
        let lookup = Lookup::new(&categories, &DataType::Utf8).unwrap();
        let array = StringArray::from(vec![Some("b"), None, Some("c"), Some("a")]);
        let positions = lookup.positions(&array).unwrap();
        assert_eq!(
            positions,
            [
                Position::At(1),
                Position::Missing,
                Position::Unknown,
                Position::At(0)
            ]
        );
        let err = unknown_error(&array, &positions, "set `unknown_code`");
        assert!(err.message().contains("unknown category `c`"), "{err}");
        assert_eq!(err.rows(), Some(2..3));
        // Other string types take arrow's dictionary encoding first: the same positions.
        let values = vec![Some("b"), None, Some("c"), Some("a")];
        let dictionary: DictionaryArray<Int32Type> = values.iter().copied().collect();
        for other in [
            Arc::new(LargeStringArray::from(values.clone())) as ArrayRef,
            Arc::new(StringViewArray::from(values.clone())),
            Arc::new(dictionary),
        ] {
            assert_eq!(lookup.positions(&other).unwrap(), positions, "{other:?}");
        }

        let numbers = vec![Category::Integer(1), Category::Float(2.5)];
        let lookup = Lookup::new(&numbers, &DataType::Float64).unwrap();
        let array = mlpipe_plugin_api::arrow::array::Float64Array::from(vec![2.5, 1.0, 7.0]);
        assert_eq!(
            lookup.positions(&array).unwrap(),
            [Position::At(1), Position::At(0), Position::Unknown]
        );
        assert!(Lookup::new(&categories, &DataType::Int64).is_err());
    }
}
