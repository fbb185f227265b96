//! Column types: the names a `schema` table gives them, and inference from a sample.
//!
//! Type names follow Arrow's (`int64`, `float64`, `utf8`, `timestamp[ms]`, ...), with the
//! suffix ` not null` for a column that may hold no null.
//!
//! Inference looks at every non-null value of a column in the sample and picks the
//! narrowest type that reads them all: `bool` (true/false, any case), `int64` (`uint64`
//! when a value exceeds int64 and none is negative), `float64` (numbers, `NaN`, `inf`),
//! `date32` (`YYYY-MM-DD`), `timestamp[s|ms|us|ns]` (`YYYY-MM-DD HH:MM[:SS[.fff]]`, with
//! `T` or a space, the unit from the longest fraction), else `utf8`. Quotes do not matter
//! (`"1.5"` is a number). A column with no value in the sample is `utf8`.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::timezone::Tz;
use mlpipe_plugin_api::arrow::compute::kernels::cast_utils::Parser;
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Date32Type, TimeUnit, TimestampNanosecondType,
};

/// The type names a `schema` table accepts, for error messages.
pub(crate) const TYPE_NAMES: &str = "bool, int8, int16, int32, int64, uint8, uint16, uint32, \
    uint64, float32, float64, utf8 (or string), large_utf8, date32 (or date), \
    timestamp[s|ms|us|ns] or timestamp[unit, UTC or +HH:MM], decimal128(PRECISION, SCALE); \
    add \" not null\" for a column without nulls";

/// Parses a type name such as `int64`, `timestamp[ms, UTC]` or `utf8 not null`; returns
/// the type and whether the column is nullable.
pub(crate) fn parse_type(text: &str) -> Option<(DataType, bool)> {
    let text = text.trim();
    let (name, nullable) = match text.strip_suffix("not null") {
        Some(rest) if rest.ends_with(char::is_whitespace) => (rest.trim_end(), false),
        _ => (text, true),
    };
    let data_type = match name.to_ascii_lowercase().as_str() {
        "bool" | "boolean" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "utf8" | "string" => DataType::Utf8,
        "large_utf8" | "large_string" => DataType::LargeUtf8,
        "date32" | "date" => DataType::Date32,
        other => return parametrized(other, name).map(|t| (t, nullable)),
    };
    Some((data_type, nullable))
}

/// The name `parse_type` reads as `data_type`.
pub(crate) fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "bool".to_string(),
        DataType::Date32 => "date32".to_string(),
        DataType::Utf8 => "utf8".to_string(),
        DataType::LargeUtf8 => "large_utf8".to_string(),
        DataType::Decimal128(precision, scale) => format!("decimal128({precision}, {scale})"),
        DataType::Timestamp(unit, zone) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match zone {
                Some(zone) => format!("timestamp[{unit}, {zone}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// `timestamp[unit]`, `timestamp[unit, tz]` and `decimal128(p, s)`; `original` keeps the
/// case of a time zone name.
fn parametrized(lower: &str, original: &str) -> Option<DataType> {
    if let Some(inner) = lower
        .strip_prefix("timestamp[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let (unit, zone) = match inner.split_once(',') {
            Some((unit, _)) => {
                let zone = original[original.find(',')? + 1..original.len() - 1].trim();
                (unit.trim(), Some(zone))
            }
            None => (inner.trim(), None),
        };
        let unit = match unit {
            "s" => TimeUnit::Second,
            "ms" => TimeUnit::Millisecond,
            "us" => TimeUnit::Microsecond,
            "ns" => TimeUnit::Nanosecond,
            _ => return None,
        };
        if zone.is_some_and(|z| time_zone(z).is_none()) {
            return None;
        }
        return Some(DataType::Timestamp(unit, zone.map(Arc::from)));
    }
    let inner = lower
        .strip_prefix("decimal128(")
        .and_then(|rest| rest.strip_suffix(')'))?;
    let (precision, scale) = inner.split_once(',')?;
    let precision: u8 = precision.trim().parse().ok()?;
    let scale: i8 = scale.trim().parse().ok()?;
    let valid = (1..=38).contains(&precision) && i16::from(scale) <= i16::from(precision);
    valid.then_some(DataType::Decimal128(precision, scale))
}

/// The time zone of a timestamp type: `UTC` or a fixed offset such as `+02:00` (arrow is
/// built without the time zone database).
pub(crate) fn time_zone(name: &str) -> Option<Tz> {
    let offset = match name {
        "UTC" | "utc" | "Z" => "+00:00",
        other => other,
    };
    offset.parse().ok()
}

/// What the values of one column in the sample looked like.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Evidence {
    values: bool,
    booleans: bool,
    integers: bool,
    /// Integers beyond int64 that fit uint64.
    big_integers: bool,
    negative: bool,
    floats: bool,
    dates: bool,
    /// Timestamps, by the longest fraction of a second seen (0 to 9 digits).
    timestamp_digits: Option<u8>,
    text: bool,
}

impl Evidence {
    /// Takes a non-null value (unquoted) into account.
    pub(crate) fn observe(&mut self, value: &[u8]) {
        self.values = true;
        if self.text {
            return;
        }
        if value.eq_ignore_ascii_case(b"true") || value.eq_ignore_ascii_case(b"false") {
            self.booleans = true;
        } else if lexical_core::parse::<i64>(value).is_ok() {
            self.integers = true;
            self.negative |= value.first() == Some(&b'-');
        } else if lexical_core::parse::<u64>(value).is_ok() {
            self.big_integers = true;
        } else if lexical_core::parse::<f64>(value).is_ok() {
            self.floats = true;
        } else if let Some(digits) = timestamp_shape(value) {
            match digits {
                None => self.dates = true,
                Some(d) => self.timestamp_digits = Some(d.max(self.timestamp_digits.unwrap_or(0))),
            }
        } else {
            self.text = true;
        }
    }

    /// The type that reads every value observed.
    pub(crate) fn data_type(&self) -> DataType {
        let numbers = self.integers || self.big_integers || self.floats;
        let temporal = self.dates || self.timestamp_digits.is_some();
        let kinds = usize::from(self.booleans) + usize::from(numbers) + usize::from(temporal);
        if self.text || !self.values || kinds > 1 {
            return DataType::Utf8;
        }
        if self.booleans {
            DataType::Boolean
        } else if self.floats || (self.big_integers && self.negative) {
            DataType::Float64
        } else if self.big_integers {
            DataType::UInt64
        } else if self.integers {
            DataType::Int64
        } else if let Some(digits) = self.timestamp_digits {
            let unit = match digits {
                0 => TimeUnit::Second,
                1..=3 => TimeUnit::Millisecond,
                4..=6 => TimeUnit::Microsecond,
                _ => TimeUnit::Nanosecond,
            };
            DataType::Timestamp(unit, None)
        } else {
            DataType::Date32
        }
    }
}

/// `Some(None)` for a date `YYYY-MM-DD`, `Some(Some(digits))` for a timestamp
/// `YYYY-MM-DD[T ]HH:MM[:SS[.f…]]` with that many fraction digits, `None` otherwise.
fn timestamp_shape(value: &[u8]) -> Option<Option<u8>> {
    let digits = |range: std::ops::Range<usize>| {
        value
            .get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, byte: u8| value.get(i) == Some(&byte);
    if !(digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10)) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    if value.len() == 10 {
        return Date32Type::parse(text).map(|_| None);
    }
    let time_ok =
        (at(10, b'T') || at(10, b' ')) && digits(11..13) && at(13, b':') && digits(14..16);
    let fraction = match value.len() {
        16 => Some(0),
        19 if at(16, b':') && digits(17..19) => Some(0),
        n if n > 20
            && n <= 29
            && at(16, b':')
            && digits(17..19)
            && at(19, b'.')
            && digits(20..n) =>
        {
            Some((n - 20) as u8)
        }
        _ => None,
    };
    match (time_ok, fraction) {
        (true, Some(digits)) => TimestampNanosecondType::parse(text).map(|_| Some(digits)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> DataType {
        let mut evidence = Evidence::default();
        for value in values {
            evidence.observe(value.as_bytes());
        }
        evidence.data_type()
    }

    #[test]
    fn type_names_parse() {
        assert_eq!(parse_type("int64"), Some((DataType::Int64, true)));
        assert_eq!(parse_type(" utf8 not null "), Some((DataType::Utf8, false)));
        assert_eq!(parse_type("string"), Some((DataType::Utf8, true)));
        assert_eq!(
            parse_type("timestamp[ms]"),
            Some((DataType::Timestamp(TimeUnit::Millisecond, None), true))
        );
        assert_eq!(
            parse_type("timestamp[us, +02:00]"),
            Some((
                DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into())),
                true
            ))
        );
        assert_eq!(
            parse_type("decimal128(10, 2)"),
            Some((DataType::Decimal128(10, 2), true))
        );
        for name in [
            "int8",
            "uint64",
            "float32",
            "utf8",
            "timestamp[ns, UTC]",
            "decimal128(5, 2)",
        ] {
            let (data_type, _) = parse_type(name).unwrap();
            assert_eq!(type_name(&data_type), name);
        }
        for bad in [
            "int",
            "timestamp[h]",
            "decimal128(50, 2)",
            "timestamp[s, Europe/Paris]",
            "utf8not null",
        ] {
            assert_eq!(parse_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn inference_picks_the_narrowest_type() {
        assert_eq!(infer(&["1", "-2", "30"]), DataType::Int64);
        assert_eq!(infer(&["1", "2.5"]), DataType::Float64);
        assert_eq!(
            infer(&["1e5", ".5", "123.", "NaN", "inf", "-inf"]),
            DataType::Float64
        );
        assert_eq!(infer(&["11720144131976083864", "1"]), DataType::UInt64);
        assert_eq!(infer(&["11720144131976083864", "-1"]), DataType::Float64);
        assert_eq!(infer(&["True", "false"]), DataType::Boolean);
        assert_eq!(infer(&["true", "1"]), DataType::Utf8);
        assert_eq!(infer(&["2020-01-01", "1969-12-31"]), DataType::Date32);
        assert_eq!(
            infer(&["2020-01-01", "2020-01-01T10:00:00"]),
            DataType::Timestamp(TimeUnit::Second, None)
        );
        assert_eq!(
            infer(&["2023-01-01 09:00:00.000", "2023-01-01 11:07:13.123456"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(infer(&["2020-13-45"]), DataType::Utf8);
        assert_eq!(infer(&["1", "x"]), DataType::Utf8);
        assert_eq!(infer(&[]), DataType::Utf8);
    }
}
