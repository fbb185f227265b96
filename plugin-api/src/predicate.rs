//! Row filters: a small predicate language shared by sources, which push a filter down
//! (skipping row groups by their statistics before decoding them), and transforms, which
//! apply it to batches.
//!
//! ```
//! use mlpipe_plugin_api::predicate::Predicate;
//!
//! let filter = Predicate::parse("label = 1 and (score >= 0.5 or city in ['Oslo', 'Bergen'])")?;
//! assert_eq!(filter.columns(), ["label", "score", "city"]);
//! # Ok::<(), mlpipe_plugin_api::Error>(())
//! ```
//!
//! A [`Predicate`] is parsed once, checked against a schema with [`Predicate::check`],
//! evaluated on batches with [`Predicate::evaluate`] (a row is kept where the result is
//! true), and asked with [`Predicate::may_match`] which containers of rows — row groups,
//! pages, files — may hold a matching row, given their [`Statistics`].
//!
//! # Grammar
//!
//! ```text
//! predicate  := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | primary
//! primary    := "(" predicate ")"
//!             | "is_null" "(" column ")"
//!             | column comparison literal
//!             | column "is" ["not"] "null"
//!             | column ["not"] "in" "[" literal ("," literal)* [","] "]"
//! comparison := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! column     := name | `any text`        a backquote inside backquotes is written twice
//! name       := [A-Za-z_][A-Za-z0-9_]*   other than a keyword
//! literal    := number | string | "true" | "false"
//! number     := [+-] digits [. digits] [(e|E) [+-] digits]     (also .5, 5.)
//! string     := 'text' | "text"          the quote inside the string is written twice
//! ```
//!
//! The keywords `and`, `or`, `not`, `is`, `null`, `in`, `true` and `false` are
//! case-insensitive; a column with such a name is written in backquotes. `and` binds
//! tighter than `or`. Parentheses and `not` nest at most 64 deep.
//!
//! # Meaning
//!
//! - **Types.** A literal is converted to its column's type. Numbers compare with numeric
//!   columns (integers, floats, decimals); a number the column's type cannot hold exactly
//!   (`2.5` for an integer column, `300` for a `uint8` one) is compared in float64.
//!   Strings compare with string and binary columns, and with any other column a string
//!   can be cast to (`day >= '2024-01-31'` on a date column). Booleans compare with boolean
//!   columns. Dictionary-encoded columns compare by their values. Other combinations, and
//!   comparisons of nested columns (lists, structs), are errors of [`Predicate::check`].
//! - **Nulls** follow SQL: a comparison with a null value is unknown, `and`, `or` and `not`
//!   follow three-valued logic, and a row matches only where the predicate is true. So
//!   `x != 1`, `not (x = 1)` and `x not in [1]` all leave out the rows where `x` is null.
//! - **Floating-point** values compare as IEEE 754 numbers, as numpy and polars do:
//!   `-0.0 = 0.0`, and NaN is neither less than, equal to nor greater than any number, so
//!   it matches `x != 1` and `not (x < 1)` but not `x < 1`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Float64Array, Int64Array,
    PrimitiveArray, RecordBatch, Scalar, StringArray, UInt64Array,
};
use arrow::compute::kernels::cmp;
use arrow::compute::{
    CastOptions, and_kleene, cast, cast_with_options, is_null, not, nullif, or_kleene,
    prep_null_mask_filter,
};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type, Schema};

use crate::error::{Error, Result};

/// The deepest nesting of parentheses and `not` a filter may have.
const MAX_DEPTH: usize = 64;

/// A parsed row filter. See the [module documentation](self) for the language.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Compare {
        column: String,
        op: Comparison,
        value: Literal,
    },
    IsNull(String),
    In {
        column: String,
        values: Vec<Literal>,
    },
    Not(Box<Expr>),
    /// Two or more operands (so that long chains do not nest).
    And(Vec<Expr>),
    /// Two or more operands.
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Comparison {
    /// The comparison true exactly where this one is false (for non-null, non-NaN values).
    fn negated(self) -> Comparison {
        match self {
            Comparison::Eq => Comparison::NotEq,
            Comparison::NotEq => Comparison::Eq,
            Comparison::Lt => Comparison::GtEq,
            Comparison::LtEq => Comparison::Gt,
            Comparison::Gt => Comparison::LtEq,
            Comparison::GtEq => Comparison::Lt,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::NotEq => "!=",
            Comparison::Lt => "<",
            Comparison::LtEq => "<=",
            Comparison::Gt => ">",
            Comparison::GtEq => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Literal {
    /// The literal as a one-element array of its own type.
    fn to_array(&self) -> ArrayRef {
        match self {
            Literal::Int(v) => Arc::new(Int64Array::from(vec![*v])),
            Literal::Float(v) => Arc::new(Float64Array::from(vec![*v])),
            Literal::Str(v) => Arc::new(StringArray::from(vec![v.as_str()])),
            Literal::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
        }
    }
}

/// What a column is compared with, once the literal is converted for the column's type.
enum Operand {
    /// A one-element array of the column's (value) type.
    Value(ArrayRef),
    /// A number the column, cast to float64, is compared with.
    Float64(f64),
    /// The column is of the null type: every comparison is unknown.
    Unknown,
}

/// The type of a column's values (a dictionary's value type).
fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => values,
        other => other,
    }
}

fn is_float(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// Converts `literal` for comparison with a column of type `column_type`; the error says
/// why it cannot be.
fn operand(column_type: &DataType, literal: &Literal) -> Result<Operand, String> {
    let target = value_type(column_type);
    if target == &DataType::Null {
        return Ok(Operand::Unknown);
    }
    if target.is_nested() {
        return Err(format!(
            "it is of the nested type {target}; only columns of numbers, strings, binary, \
             booleans, dates and times can be compared"
        ));
    }
    match literal {
        Literal::Bool(_) if target == &DataType::Boolean => Ok(Operand::Value(literal.to_array())),
        Literal::Bool(_) => Err(format!(
            "it is of type {target}; compare it with {}, not a boolean",
            wanted(target)
        )),
        Literal::Int(v) if target.is_numeric() => Ok(number_operand(literal, target, *v as f64)),
        Literal::Float(v) if target.is_numeric() => Ok(number_operand(literal, target, *v)),
        Literal::Int(_) | Literal::Float(_) => Err(format!(
            "it is of type {target}; compare it with {}, not a number",
            wanted(target)
        )),
        Literal::Str(text) if target.is_numeric() || target == &DataType::Boolean => Err(format!(
            "it is of type {target}; compare it with {}, not the string {}",
            wanted(target),
            quote(text, '\'')
        )),
        Literal::Str(text) => cast_with_options(&literal.to_array(), target, &EXACT)
            .map(Operand::Value)
            .map_err(|e| {
                format!(
                    "it is of type {target}, and the string {} is not a value of that type ({e})",
                    quote(text, '\'')
                )
            }),
    }
}

/// Casts that fail rather than turn a value they cannot convert into null.
const EXACT: CastOptions = CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// A number converted to the numeric type `target` when that holds it exactly, else
/// `as_f64`, with which the column is compared in float64 (`2.5` and an integer column).
fn number_operand(literal: &Literal, target: &DataType, as_f64: f64) -> Operand {
    let natural = literal.to_array();
    let converted = cast_with_options(&natural, target, &EXACT).ok();
    let round_trip = converted
        .as_ref()
        .and_then(|c| cast_with_options(c, natural.data_type(), &EXACT).ok());
    match (converted, round_trip) {
        (Some(converted), Some(back)) if back.as_ref() == natural.as_ref() => {
            Operand::Value(converted)
        }
        _ => Operand::Float64(as_f64),
    }
}

/// What kind of literal a column of this type is compared with, for error messages.
fn wanted(data_type: &DataType) -> &'static str {
    if data_type.is_numeric() {
        "a number"
    } else if data_type == &DataType::Boolean {
        "true or false"
    } else {
        "a string"
    }
}

/// Compares every value of `column` with the operand; null where the value is null.
fn compare(column: &ArrayRef, op: Comparison, operand: &Operand) -> Result<BooleanArray> {
    let value = match operand {
        Operand::Unknown => return Ok(BooleanArray::new_null(column.len())),
        Operand::Float64(value) => {
            let column = cast(column, &DataType::Float64)?;
            return Ok(ieee(column.as_primitive::<Float64Type>(), op, *value));
        }
        Operand::Value(value) => value,
    };
    let data_type = value.data_type();
    if is_float(data_type) {
        let cast_column;
        let column = if column.data_type() == data_type {
            column
        } else {
            cast_column = cast(column, data_type)?;
            &cast_column
        };
        return Ok(match data_type {
            DataType::Float16 => ieee(
                column.as_primitive::<Float16Type>(),
                op,
                value.as_primitive::<Float16Type>().value(0),
            ),
            DataType::Float32 => ieee(
                column.as_primitive::<Float32Type>(),
                op,
                value.as_primitive::<Float32Type>().value(0),
            ),
            _ => ieee(
                column.as_primitive::<Float64Type>(),
                op,
                value.as_primitive::<Float64Type>().value(0),
            ),
        });
    }
    let value = Scalar::new(value.clone());
    let result = match op {
        Comparison::Eq => cmp::eq(column, &value),
        Comparison::NotEq => cmp::neq(column, &value),
        Comparison::Lt => cmp::lt(column, &value),
        Comparison::LtEq => cmp::lt_eq(column, &value),
        Comparison::Gt => cmp::gt(column, &value),
        Comparison::GtEq => cmp::gt_eq(column, &value),
    };
    Ok(result?)
}

/// IEEE 754 comparison of floats (arrow's kernels order floats totally, which puts NaN
/// above every number and -0.0 below 0.0).
fn ieee<T: ArrowPrimitiveType>(
    column: &PrimitiveArray<T>,
    op: Comparison,
    value: T::Native,
) -> BooleanArray
where
    T::Native: PartialOrd,
{
    match op {
        Comparison::Eq => BooleanArray::from_unary(column, |x| x == value),
        Comparison::NotEq => BooleanArray::from_unary(column, |x| x != value),
        Comparison::Lt => BooleanArray::from_unary(column, |x| x < value),
        Comparison::LtEq => BooleanArray::from_unary(column, |x| x <= value),
        Comparison::Gt => BooleanArray::from_unary(column, |x| x > value),
        Comparison::GtEq => BooleanArray::from_unary(column, |x| x >= value),
    }
}

/// A float bound with NaN entries made unknown (old writers stored NaN as a bound).
fn without_nan(bound: &ArrayRef) -> Result<ArrayRef> {
    let nan = match bound.data_type() {
        DataType::Float16 => {
            BooleanArray::from_unary(bound.as_primitive::<Float16Type>(), |x| x.is_nan())
        }
        DataType::Float32 => {
            BooleanArray::from_unary(bound.as_primitive::<Float32Type>(), |x| x.is_nan())
        }
        DataType::Float64 => {
            BooleanArray::from_unary(bound.as_primitive::<Float64Type>(), |x| x.is_nan())
        }
        _ => return Ok(bound.clone()),
    };
    Ok(nullif(bound, &nan)?)
}

/// What a reader knows about the containers of rows it may skip (row groups, pages,
/// files), for [`Predicate::may_match`]: each container's row count and, for some
/// columns, each container's smallest and largest value and number of nulls.
///
/// Entry `i` of every array describes container `i`; a null entry means unknown. The
/// bounds need only be bounds (a truncated string prefix is a fine minimum): every
/// non-null value of container `i` lies within `min[i]..=max[i]`, NaN aside — float
/// bounds ignore NaN, as the Parquet format specifies, and a NaN bound counts as unknown.
/// Bounds are arrays of the column's type, or of its dictionary's value type.
#[derive(Debug, Clone)]
pub struct Statistics {
    row_counts: UInt64Array,
    columns: HashMap<String, ColumnStatistics>,
}

#[derive(Debug, Clone)]
struct ColumnStatistics {
    min: ArrayRef,
    max: ArrayRef,
    null_counts: UInt64Array,
}

impl Statistics {
    /// Statistics of `row_counts.len()` containers, with no column known yet.
    pub fn new(row_counts: UInt64Array) -> Statistics {
        Statistics {
            row_counts,
            columns: HashMap::new(),
        }
    }

    /// Adds a column's bounds and null counts, one entry per container.
    pub fn with_column(
        mut self,
        name: impl Into<String>,
        min: ArrayRef,
        max: ArrayRef,
        null_counts: UInt64Array,
    ) -> Result<Statistics> {
        let name = name.into();
        let containers = self.row_counts.len();
        if min.len() != containers || max.len() != containers || null_counts.len() != containers {
            return Err(Error::internal(format!(
                "statistics of column `{name}`: {} minimums, {} maximums and {} null counts \
                 for {containers} containers",
                min.len(),
                max.len(),
                null_counts.len()
            )));
        }
        if min.data_type() != max.data_type() {
            return Err(Error::internal(format!(
                "statistics of column `{name}`: minimums of type {} but maximums of type {}",
                min.data_type(),
                max.data_type()
            )));
        }
        let column = ColumnStatistics {
            min: without_nan(&min)?,
            max: without_nan(&max)?,
            null_counts,
        };
        self.columns.insert(name, column);
        Ok(self)
    }

    /// The number of containers described.
    pub fn containers(&self) -> usize {
        self.row_counts.len()
    }
}

impl Predicate {
    /// Parses a filter. A syntax error names the character where it was found and what
    /// was expected there.
    pub fn parse(text: &str) -> Result<Predicate> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            text,
            tokens,
            next: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        match parser.peek() {
            Token::End => Ok(Predicate { expr }),
            _ => Err(parser.error("`and`, `or` or the end of the filter")),
        }
    }

    /// The columns the filter reads, each once, in order of first mention.
    pub fn columns(&self) -> Vec<&str> {
        let mut columns = Vec::new();
        self.expr.visit_columns(&mut |column| {
            if !columns.contains(&column) {
                columns.push(column);
            }
        });
        columns
    }

    /// Checks that every column the filter reads is in `schema` and can be compared with
    /// its literals. The error names the column and says what would work.
    pub fn check(&self, schema: &Schema) -> Result<()> {
        self.expr.check(schema)
    }

    /// Which rows of `batch` match: true where the filter is true, false where it is false
    /// or unknown (a comparison with null). The result has no nulls, so it can be given
    /// to arrow's `filter_record_batch` as it is.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let result = self.expr.evaluate(batch)?;
        Ok(if result.null_count() > 0 {
            prep_null_mask_filter(&result)
        } else {
            result
        })
    }

    /// For each container the statistics describe: false when no row of it can match, so
    /// that a reader may skip it; true when one may (or when too little is known).
    pub fn may_match(&self, statistics: &Statistics) -> Result<Vec<bool>> {
        let verdict = self.expr.may_match(false, statistics)?;
        Ok((0..statistics.containers())
            .map(|i| verdict.is_null(i) || verdict.value(i))
            .collect())
    }
}

impl fmt::Display for Predicate {
    /// The filter in the language it was parsed from; parsing the text gives it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl std::str::FromStr for Predicate {
    type Err = Error;

    fn from_str(text: &str) -> Result<Predicate> {
        Predicate::parse(text)
    }
}

fn all(
    values: Vec<BooleanArray>,
    combine: fn(&BooleanArray, &BooleanArray) -> Result<BooleanArray, arrow::error::ArrowError>,
) -> Result<BooleanArray> {
    let mut values = values.into_iter();
    let first = values
        .next()
        .ok_or_else(|| Error::internal("an `and`, `or` or `in` without operands"))?;
    values.try_fold(first, |acc, next| Ok(combine(&acc, &next)?))
}

impl Expr {
    fn visit_columns<'a>(&'a self, visit: &mut impl FnMut(&'a str)) {
        match self {
            Expr::Compare { column, .. } | Expr::IsNull(column) | Expr::In { column, .. } => {
                visit(column)
            }
            Expr::Not(inner) => inner.visit_columns(visit),
            Expr::And(operands) | Expr::Or(operands) => {
                operands.iter().for_each(|e| e.visit_columns(visit))
            }
        }
    }

    fn check(&self, schema: &Schema) -> Result<()> {
        let field =
            |column: &str| {
                schema.field_with_name(column).map_err(|_| {
                let names: Vec<String> =
                    schema.fields().iter().map(|f| display_column(f.name())).collect();
                Error::config(format!(
                    "the filter reads column {} but there is no such column; the columns are: {}",
                    display_column(column),
                    names.join(", ")
                ))
            })
            };
        let literal = |column: &str, value: &Literal| {
            operand(field(column)?.data_type(), value)
                .map(|_| ())
                .map_err(|why| {
                    Error::config(format!(
                        "the filter compares column {} with {value}, but {why}",
                        display_column(column)
                    ))
                })
        };
        match self {
            Expr::Compare { column, value, .. } => literal(column, value),
            Expr::IsNull(column) => field(column).map(|_| ()),
            Expr::In { column, values } => values.iter().try_for_each(|v| literal(column, v)),
            Expr::Not(inner) => inner.check(schema),
            Expr::And(operands) | Expr::Or(operands) => {
                operands.iter().try_for_each(|e| e.check(schema))
            }
        }
    }

    /// Three-valued: null where the result is unknown.
    fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                Error::config(format!(
                    "the filter reads column {} but the batch has no such column",
                    display_column(name)
                ))
            })
        };
        let compare_with = |name: &str, op: Comparison, value: &Literal| {
            let column = column(name)?;
            let operand = operand(column.data_type(), value).map_err(|why| {
                Error::config(format!(
                    "the filter compares column {} with {value}, but {why}",
                    display_column(name)
                ))
            })?;
            compare(column, op, &operand)
        };
        match self {
            Expr::Compare { column, op, value } => compare_with(column, *op, value),
            Expr::IsNull(name) => Ok(is_null(column(name)?)?),
            Expr::In { column, values } => all(
                values
                    .iter()
                    .map(|v| compare_with(column, Comparison::Eq, v))
                    .collect::<Result<_>>()?,
                or_kleene,
            ),
            Expr::Not(inner) => Ok(not(&inner.evaluate(batch)?)?),
            Expr::And(operands) => all(
                operands
                    .iter()
                    .map(|e| e.evaluate(batch))
                    .collect::<Result<_>>()?,
                and_kleene,
            ),
            Expr::Or(operands) => all(
                operands
                    .iter()
                    .map(|e| e.evaluate(batch))
                    .collect::<Result<_>>()?,
                or_kleene,
            ),
        }
    }

    /// Per container: false when no row can make this expression (negated when `negated`)
    /// true, null when unknown. Negation is pushed down to the leaves (De Morgan; `not`
    /// of a comparison is the opposite comparison), which three-valued logic allows for
    /// everything but NaN — and NaN is handled where floats are compared.
    fn may_match(&self, negated: bool, statistics: &Statistics) -> Result<BooleanArray> {
        let containers = statistics.containers();
        let unknown = || Ok(BooleanArray::new_null(containers));
        match self {
            Expr::Compare { column, op, value } => {
                compare_bounds(statistics, column, *op, negated, value)
            }
            Expr::IsNull(column) => {
                let Some(stats) = statistics.columns.get(column) else {
                    return unknown();
                };
                let zero = Scalar::new(UInt64Array::from(vec![0]));
                Ok(if negated {
                    cmp::lt(&stats.null_counts, &statistics.row_counts)?
                } else {
                    cmp::gt(&stats.null_counts, &zero)?
                })
            }
            Expr::In { column, values } => {
                let verdicts = values
                    .iter()
                    .map(|v| compare_bounds(statistics, column, Comparison::Eq, negated, v))
                    .collect::<Result<_>>()?;
                all(verdicts, if negated { and_kleene } else { or_kleene })
            }
            Expr::Not(inner) => inner.may_match(!negated, statistics),
            Expr::And(operands) | Expr::Or(operands) => {
                let verdicts = operands
                    .iter()
                    .map(|e| e.may_match(negated, statistics))
                    .collect::<Result<_>>()?;
                let conjunction = matches!(self, Expr::And(_)) != negated;
                all(verdicts, if conjunction { and_kleene } else { or_kleene })
            }
        }
    }
}

/// Per container: whether a row may satisfy `column op value` (or its negation).
fn compare_bounds(
    statistics: &Statistics,
    column: &str,
    op: Comparison,
    negated: bool,
    value: &Literal,
) -> Result<BooleanArray> {
    let unknown = Ok(BooleanArray::new_null(statistics.containers()));
    let Some(stats) = statistics.columns.get(column) else {
        return unknown;
    };
    // A NaN value, which the bounds do not cover, makes `!=` true and any other
    // comparison false — so true under `not`.
    let nan_matches = (op == Comparison::NotEq) != negated;
    if nan_matches && is_float(value_type(stats.min.data_type())) {
        return unknown;
    }
    let Ok(operand) = operand(stats.min.data_type(), value) else {
        return unknown;
    };
    let (min, max) = (&stats.min, &stats.max);
    let op = if negated { op.negated() } else { op };
    Ok(match op {
        Comparison::Eq => and_kleene(
            &compare(min, Comparison::LtEq, &operand)?,
            &compare(max, Comparison::GtEq, &operand)?,
        )?,
        // Only a container whose every value equals the literal has no match.
        Comparison::NotEq => or_kleene(
            &compare(min, Comparison::NotEq, &operand)?,
            &compare(max, Comparison::NotEq, &operand)?,
        )?,
        Comparison::Lt | Comparison::LtEq => compare(min, op, &operand)?,
        Comparison::Gt | Comparison::GtEq => compare(max, op, &operand)?,
    })
}

// ---- Text ----------------------------------------------------------------------------

const KEYWORDS: [&str; 8] = ["and", "or", "not", "is", "null", "in", "true", "false"];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_keyword(name)
}

/// A column as written in the language: bare when it can be, else in backquotes.
fn display_column(name: &str) -> String {
    if is_plain_name(name) {
        name.to_string()
    } else {
        quote(name, '`')
    }
}

fn quote(text: &str, mark: char) -> String {
    let doubled: String = [mark, mark].iter().collect();
    format!("{mark}{}{mark}", text.replace(mark, &doubled))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{v:?}"),
            Literal::Str(v) => f.write_str(&quote(v, '\'')),
            Literal::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, operands: &[Expr], word: &str| {
            f.write_str("(")?;
            for (i, operand) in operands.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                write!(f, "{operand}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::Compare { column, op, value } => {
                write!(f, "{} {} {value}", display_column(column), op.symbol())
            }
            Expr::IsNull(column) => write!(f, "{} is null", display_column(column)),
            Expr::In { column, values } => {
                let values: Vec<String> = values.iter().map(Literal::to_string).collect();
                write!(f, "{} in [{}]", display_column(column), values.join(", "))
            }
            Expr::Not(inner) => write!(f, "not {inner}"),
            Expr::And(operands) => join(f, operands, "and"),
            Expr::Or(operands) => join(f, operands, "or"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word: a column name or a keyword.
    Word(String),
    /// A column name in backquotes.
    Quoted(String),
    Str(String),
    Number(Literal),
    Compare(Comparison),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(word) => write!(f, "`{word}`"),
            Token::Quoted(name) => f.write_str(&quote(name, '`')),
            Token::Str(text) => write!(f, "the string {}", quote(text, '\'')),
            Token::Number(number) => write!(f, "the number {number}"),
            Token::Compare(op) => write!(f, "`{}`", op.symbol()),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::OpenList => f.write_str("`[`"),
            Token::CloseList => f.write_str("`]`"),
            Token::Comma => f.write_str("`,`"),
            Token::End => f.write_str("the end of the filter"),
        }
    }
}

/// A syntax error at character `at` (counted from 0) of `text`.
fn syntax_error(text: &str, at: usize, message: &str) -> Error {
    let caret = format!("{}^", " ".repeat(at));
    Error::config(format!(
        "filter, at character {}: {message}\n    {text}\n    {caret}",
        at + 1
    ))
}

/// Splits the text into tokens, each with the character position it starts at.
fn lex(text: &str) -> Result<Vec<(Token, usize)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let next = chars.get(i + 1).copied();
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::Open,
            ')' => Token::Close,
            '[' => Token::OpenList,
            ']' => Token::CloseList,
            ',' => Token::Comma,
            '=' => {
                if next == Some('=') {
                    i += 1;
                }
                Token::Compare(Comparison::Eq)
            }
            '!' if next == Some('=') => {
                i += 1;
                Token::Compare(Comparison::NotEq)
            }
            '<' if next == Some('>') => {
                i += 1;
                Token::Compare(Comparison::NotEq)
            }
            '<' | '>' => {
                let or_equal = next == Some('=');
                if or_equal {
                    i += 1;
                }
                Token::Compare(match (c, or_equal) {
                    ('<', false) => Comparison::Lt,
                    ('<', true) => Comparison::LtEq,
                    ('>', false) => Comparison::Gt,
                    _ => Comparison::GtEq,
                })
            }
            '\'' | '"' | '`' => {
                let (content, end) = quoted(&chars, i).ok_or_else(|| {
                    syntax_error(text, start, &format!("this {c} is never closed"))
                })?;
                i = end;
                if c == '`' {
                    Token::Quoted(content)
                } else {
                    Token::Str(content)
                }
            }
            c if c.is_ascii_digit() || c == '.' || c == '+' || c == '-' => {
                let (number, end) = number(&chars, i)
                    .ok_or_else(|| syntax_error(text, start, "this is not a number"))?;
                i = end;
                Token::Number(number)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = (i..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                let word: String = chars[i..end].iter().collect();
                i = end;
                Token::Word(word)
            }
            other => {
                return Err(syntax_error(
                    text,
                    start,
                    &format!(
                        "unexpected {other:?}; write a column with other characters in backquotes, e.g. `my col`"
                    ),
                ));
            }
        };
        if !matches!(
            token,
            Token::Word(_) | Token::Quoted(_) | Token::Str(_) | Token::Number(_)
        ) {
            i += 1;
        }
        tokens.push((token, start));
    }
    tokens.push((Token::End, chars.len()));
    Ok(tokens)
}

/// The content of the quoted text starting at `start` (the opening mark), and the position
/// after the closing mark; `None` when it is never closed.
fn quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mark = chars[start];
    let mut content = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return None,
            Some(&c) if c == mark => {
                if chars.get(i + 1) == Some(&mark) {
                    content.push(mark);
                    i += 2;
                } else {
                    return Some((content, i + 1));
                }
            }
            Some(&c) => {
                content.push(c);
                i += 1;
            }
        }
    }
}

/// The number starting at `start`, and the position after it; `None` when the text there
/// is not a (finite) number.
fn number(chars: &[char], start: usize) -> Option<(Literal, usize)> {
    let digits_from = |mut i: usize| {
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start;
    if matches!(chars.get(i), Some('+' | '-')) {
        i += 1;
    }
    let integer_end = digits_from(i);
    let mut end = integer_end;
    let mut has_digits = integer_end > i;
    let mut is_float = false;
    if chars.get(end) == Some(&'.') {
        let fraction_end = digits_from(end + 1);
        has_digits |= fraction_end > end + 1;
        is_float = true;
        end = fraction_end;
    }
    if !has_digits {
        return None;
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut exponent = end + 1;
        if matches!(chars.get(exponent), Some('+' | '-')) {
            exponent += 1;
        }
        let exponent_end = digits_from(exponent);
        if exponent_end == exponent {
            return None;
        }
        is_float = true;
        end = exponent_end;
    }
    // A number runs into a name (`5abc`): not a number.
    if chars
        .get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
    {
        return None;
    }
    let text: String = chars[start..end].iter().collect();
    if !is_float && let Ok(value) = text.parse::<i64>() {
        return Some((Literal::Int(value), end));
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some((Literal::Float(value), end))
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.next.min(self.tokens.len() - 1)].0
    }

    fn position(&self) -> usize {
        self.tokens[self.next.min(self.tokens.len() - 1)].1
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        token
    }

    fn error(&self, expected: &str) -> Error {
        syntax_error(
            self.text,
            self.position(),
            &format!("expected {expected}, found {}", self.peek()),
        )
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn expect_keyword(&mut self, keyword: &str, expected: &str) -> Result<()> {
        if self.at_keyword(keyword) {
            self.advance();
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn expect(&mut self, token: Token, expected: &str) -> Result<()> {
        if self.peek() == &token {
            self.advance();
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn nest(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax_error(
                self.text,
                self.position(),
                &format!("the filter nests parentheses and `not` more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr> {
        let mut operands = vec![self.and()?];
        while self.at_keyword("or") {
            self.advance();
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::Or(operands)
        })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut operands = vec![self.unary()?];
        while self.at_keyword("and") {
            self.advance();
            operands.push(self.unary()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::And(operands)
        })
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.at_keyword("not") {
            self.advance();
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        const START: &str = "a column name, `not`, `is_null(` or `(`";
        match self.peek().clone() {
            Token::Open => {
                let open = self.position();
                self.advance();
                self.nest()?;
                let inner = self.or()?;
                self.depth -= 1;
                let expected = format!("`)` to close the `(` at character {}", open + 1);
                self.expect(Token::Close, &expected)?;
                Ok(inner)
            }
            Token::Word(word)
                if word.eq_ignore_ascii_case("is_null")
                    && self.tokens.get(self.next + 1).map(|t| &t.0) == Some(&Token::Open) =>
            {
                self.advance();
                self.advance();
                let column = self.column()?;
                self.expect(Token::Close, "`)` after the column of `is_null(`")?;
                Ok(Expr::IsNull(column))
            }
            Token::Word(_) | Token::Quoted(_) => {
                let column = self.column()?;
                self.after_column(column)
            }
            _ => Err(self.error(START)),
        }
    }

    fn column(&mut self) -> Result<String> {
        match self.peek().clone() {
            Token::Word(word) if !is_keyword(&word) => {
                self.advance();
                Ok(word)
            }
            Token::Word(word) => Err(self.error(&format!(
                "a column name (a column named `{word}` is written in backquotes: `{word}`)"
            ))),
            Token::Quoted(name) => {
                self.advance();
                Ok(name)
            }
            _ => Err(self.error("a column name")),
        }
    }

    fn after_column(&mut self, column: String) -> Result<Expr> {
        if let Token::Compare(op) = self.peek().clone() {
            self.advance();
            let value = self.literal()?;
            return Ok(Expr::Compare { column, op, value });
        }
        if self.at_keyword("is") {
            self.advance();
            let negated = self.at_keyword("not");
            if negated {
                self.advance();
            }
            self.expect_keyword("null", "`null` after `is`")?;
            let test = Expr::IsNull(column);
            return Ok(if negated {
                Expr::Not(Box::new(test))
            } else {
                test
            });
        }
        let negated = self.at_keyword("not");
        if negated {
            self.advance();
            self.expect_keyword("in", "`in [` after `not`")?;
        } else if self.at_keyword("in") {
            self.advance();
        } else {
            return Err(self.error(&format!(
                "a comparison (=, !=, <, <=, >, >=), `is null`, `is not null`, `in [..]` or \
                 `not in [..]` after the column {}",
                display_column(&column)
            )));
        }
        self.expect(Token::OpenList, "`[` to start the list of values")?;
        let mut values = vec![self.literal()?];
        while self.peek() == &Token::Comma {
            self.advance();
            if self.peek() == &Token::CloseList {
                break;
            }
            values.push(self.literal()?);
        }
        self.expect(Token::CloseList, "`,` or `]` in the list of values")?;
        let test = Expr::In { column, values };
        Ok(if negated {
            Expr::Not(Box::new(test))
        } else {
            test
        })
    }

    fn literal(&mut self) -> Result<Literal> {
        let literal = match self.peek().clone() {
            Token::Number(number) => number,
            Token::Str(text) => Literal::Str(text),
            Token::Word(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Token::Word(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Token::Word(word) if word.eq_ignore_ascii_case("null") => {
                return Err(
                    self.error("a value (to test for nulls write `x is null` or `x is not null`)")
                );
            }
            _ => return Err(self.error("a value: a number, a 'string', true or false")),
        };
        self.advance();
        Ok(literal)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{DictionaryArray, Float32Array, Int32Array, UInt8Array};
    use arrow::datatypes::{Field, Int32Type};

    use super::*;

    fn parse(text: &str) -> Predicate {
        Predicate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_error(text: &str) -> String {
        Predicate::parse(text).unwrap_err().message().to_string()
    }

    #[test]
    fn parses_precedence_keywords_and_quoting() {
        let cases = [
            ("a = 1 or b = 2 and c = 3", "(a = 1 or (b = 2 and c = 3))"),
            ("(a = 1 or b = 2) and c = 3", "((a = 1 or b = 2) and c = 3)"),
            (
                "a == 1 AND b <> 'x' And c != -2.5e3",
                "(a = 1 and b != 'x' and c != -2500.0)",
            ),
            (
                "NOT a < .5 or not (b >= 5.)",
                "(not a < 0.5 or not b >= 5.0)",
            ),
            (
                "is_null(x) and y IS NOT NULL and z is null",
                "(x is null and not y is null and z is null)",
            ),
            (
                "k in [1, 'two', true,] and k not in [false]",
                "(k in [1, 'two', true] and not k in [false])",
            ),
            (
                "`odd name:` > 'it''s' and `a``b` = \"say \"\"hi\"\"\"",
                "(`odd name:` > 'it''s' and `a``b` = 'say \"hi\"')",
            ),
            ("`and` = 1", "`and` = 1"),
            ("is_null = 1", "is_null = 1"),
            (
                "big = 9223372036854775807 and bigger = 9223372036854775808",
                "(big = 9223372036854775807 and bigger = 9.223372036854776e18)",
            ),
        ];
        for (text, shown) in cases {
            let predicate = parse(text);
            assert_eq!(predicate.to_string(), shown, "{text}");
            assert_eq!(parse(shown), predicate, "{shown} parses back");
        }
        assert_eq!(
            parse("b = 1 and (a > 2 or b < 0) and `c d` is null").columns(),
            ["b", "a", "c d"]
        );
    }

    #[test]
    fn long_chains_do_not_nest_but_deep_nesting_is_refused() {
        let chain = vec!["x = 1"; 10_000].join(" and ");
        assert_eq!(parse(&chain).columns(), ["x"]);
        let deep = format!("{}x = 1{}", "(".repeat(65), ")".repeat(65));
        assert!(parse_error(&deep).contains("more than 64 deep"));
        let nots = format!("{}x = 1", "not ".repeat(100));
        assert!(parse_error(&nots).contains("more than 64 deep"));
        parse(&format!("{}x = 1{}", "(".repeat(64), ")".repeat(64)));
    }

    #[test]
    fn syntax_errors_point_at_the_character_and_say_what_was_expected() {
        let cases = [
            (
                "a >",
                4,
                "expected a value: a number, a 'string', true or false, found the end of the filter",
            ),
            (
                "a > 1 b",
                7,
                "expected `and`, `or` or the end of the filter, found `b`",
            ),
            (
                "a 1",
                3,
                "expected a comparison (=, !=, <, <=, >, >=), `is null`, `is not null`, `in [..]` or `not in [..]` after the column a, found the number 1",
            ),
            (
                "(a = 1",
                7,
                "expected `)` to close the `(` at character 1, found the end of the filter",
            ),
            ("a = 'open", 5, "this ' is never closed"),
            (
                "a in [1 2]",
                9,
                "expected `,` or `]` in the list of values, found the number 2",
            ),
            ("a in 1", 6, "expected `[` to start the list of values"),
            (
                "and = 1",
                1,
                "a column name (a column named `and` is written in backquotes: `and`)",
            ),
            ("a = null", 5, "to test for nulls write `x is null`"),
            ("a is 1", 6, "expected `null` after `is`"),
            ("a = 1e999", 5, "this is not a number"),
            ("a = 12abc", 5, "this is not a number"),
            ("a = 1 & b = 2", 7, "unexpected '&'"),
            (
                "",
                1,
                "expected a column name, `not`, `is_null(` or `(`, found the end of the filter",
            ),
            ("é = 1", 1, "unexpected 'é'"),
        ];
        for (text, at, expected) in cases {
            let message = parse_error(text);
            assert!(
                message.starts_with(&format!("filter, at character {at}: ")),
                "{text}: {message}"
            );
            assert!(message.contains(expected), "{text}: {message}");
            let caret = format!("\n    {}^", " ".repeat(at - 1));
            assert!(message.ends_with(&caret), "{text}: {message}");
        }
    }

    fn batch() -> RecordBatch {
        let dictionary: DictionaryArray<Int32Type> =
            vec![Some("red"), Some("blue"), None, Some("red"), Some("green")]
                .into_iter()
                .collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i",
                Arc::new(Int32Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(4),
                    Some(5),
                ])),
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    Some(f64::NAN),
                    Some(-0.0),
                    None,
                    Some(2.0),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("it's"),
                    Some("b"),
                ])),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(false),
                ])),
            ),
            ("d", Arc::new(dictionary)),
            ("u", Arc::new(UInt8Array::from(vec![0, 100, 200, 250, 255]))),
            (
                "day",
                cast(
                    &(Arc::new(StringArray::from(vec![
                        "2024-01-01",
                        "2024-02-01",
                        "2024-03-01",
                        "2024-04-01",
                        "2024-05-01",
                    ])) as ArrayRef),
                    &DataType::Date32,
                )
                .unwrap(),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn matches(text: &str) -> Vec<usize> {
        let batch = batch();
        let predicate = parse(text);
        predicate
            .check(&batch.schema())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let result = predicate
            .evaluate(&batch)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(result.null_count(), 0, "{text}");
        (0..result.len()).filter(|&i| result.value(i)).collect()
    }

    #[test]
    fn evaluates_comparisons_of_every_kind_of_column() {
        assert_eq!(matches("i > 2"), [3, 4]);
        assert_eq!(matches("i <= 2.5"), [0, 1], "compared in float64");
        assert_eq!(matches("i = 2.5"), Vec::<usize>::new());
        assert_eq!(matches("u > 240"), [3, 4]);
        assert_eq!(
            matches("u < 300 and u > -1"),
            [0, 1, 2, 3, 4],
            "beyond uint8: float64"
        );
        assert_eq!(matches("s >= 'b'"), [2, 3, 4]);
        assert_eq!(matches("s = 'it''s'"), [3]);
        assert_eq!(matches("b = true"), [0, 3]);
        assert_eq!(matches("d = 'red'"), [0, 3]);
        assert_eq!(matches("d in ['blue', 'green']"), [1, 4]);
        assert_eq!(matches("day >= '2024-03-01'"), [2, 3, 4]);
        assert_eq!(matches("i in [1, 5, 7]"), [0, 4]);
    }

    #[test]
    fn nulls_never_match_a_comparison_even_negated() {
        assert_eq!(matches("i != 1"), [1, 3, 4]);
        assert_eq!(matches("not i = 1"), [1, 3, 4]);
        assert_eq!(matches("i not in [1]"), [1, 3, 4]);
        // Row 1: false or unknown; row 2: unknown or false. Both unknown, and so is `not`.
        assert_eq!(matches("not (i = 1 or s = 'a')"), [3, 4]);
        assert_eq!(
            matches("not (i = 1 and s = 'a')"),
            [1, 2, 3, 4],
            "false and unknown"
        );
        assert_eq!(matches("i = 1 or i is null"), [0, 2]);
        assert_eq!(matches("is_null(s) or not b = true"), [1, 4]);
        assert_eq!(matches("d is not null"), [0, 1, 3, 4]);
    }

    #[test]
    fn floats_compare_as_ieee_numbers() {
        assert_eq!(matches("f = 0"), [2], "-0.0 = 0");
        assert_eq!(matches("f >= 0"), [0, 2, 4], "NaN is not greater");
        assert_eq!(matches("f < 100"), [0, 2, 4], "NaN is not smaller");
        assert_eq!(matches("f != 2"), [0, 1, 2], "NaN differs from everything");
        assert_eq!(matches("not f < 1"), [1, 4]);
        let halves = RecordBatch::try_from_iter([(
            "h",
            Arc::new(Float32Array::from(vec![0.25, 0.5, f32::NAN])) as ArrayRef,
        )])
        .unwrap();
        let result = parse("h > 0.3").evaluate(&halves).unwrap();
        assert_eq!(result, BooleanArray::from(vec![false, true, false]));
    }

    #[test]
    fn type_and_column_errors_say_what_would_work() {
        let schema = batch().schema();
        let error = |text: &str| {
            parse(text)
                .check(&schema)
                .unwrap_err()
                .message()
                .to_string()
        };
        let message = error("nope = 1");
        assert!(
            message.contains("no such column; the columns are: i, f, s, b, d, u, day"),
            "{message}"
        );
        assert!(
            error("i = 'x'")
                .contains("column i with 'x', but it is of type Int32; compare it with a number")
        );
        assert!(error("s > 3").contains("compare it with a string, not a number"));
        assert!(error("b = 1").contains("compare it with true or false, not a number"));
        assert!(error("day = 'soon'").contains("'soon' is not a value of that type"));
        let nested = Schema::new(vec![Field::new_list(
            "l",
            Field::new_list_field(DataType::Int32, true),
            true,
        )]);
        let message = parse("l = 1")
            .check(&nested)
            .unwrap_err()
            .message()
            .to_string();
        assert!(message.contains("nested type"), "{message}");
        let missing = parse("zz = 1").evaluate(&batch()).unwrap_err();
        assert!(missing.message().contains("column zz"), "{missing}");
    }

    /// Three containers: i in 1..=3 (no nulls), 4..=6 (1 null of 4 rows), unknown bounds.
    fn statistics() -> Statistics {
        Statistics::new(UInt64Array::from(vec![3, 4, 5]))
            .with_column(
                "i",
                Arc::new(Int32Array::from(vec![Some(1), Some(4), None])),
                Arc::new(Int32Array::from(vec![Some(3), Some(6), None])),
                UInt64Array::from(vec![Some(0), Some(1), None]),
            )
            .unwrap()
            .with_column(
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(0.0),
                    Some(f64::NAN),
                    Some(2.0),
                ])),
                Arc::new(Float64Array::from(vec![Some(1.0), Some(5.0), Some(2.0)])),
                UInt64Array::from(vec![Some(0), Some(0), Some(5)]),
            )
            .unwrap()
    }

    fn pruned(text: &str) -> Vec<bool> {
        parse(text).may_match(&statistics()).unwrap()
    }

    #[test]
    fn statistics_prune_containers_that_cannot_match() {
        assert_eq!(pruned("i > 3"), [false, true, true]);
        assert_eq!(pruned("i >= 3"), [true, true, true]);
        assert_eq!(pruned("i < 4"), [true, false, true]);
        assert_eq!(pruned("i = 5"), [false, true, true]);
        assert_eq!(pruned("i = 3.5"), [false, false, true]);
        assert_eq!(pruned("i in [0, 7]"), [false, false, true]);
        assert_eq!(pruned("i not in [0, 7]"), [true, true, true]);
        assert_eq!(pruned("not i <= 3"), [false, true, true]);
        assert_eq!(pruned("not (i > 3 or i < 1)"), [true, false, true]);
        assert_eq!(pruned("i > 3 and i < 4"), [false, false, true]);
        assert_eq!(pruned("i is null"), [false, true, true]);
        assert_eq!(pruned("i is not null"), [true, true, true]);
        assert_eq!(pruned("f is not null"), [true, true, false]);
        assert_eq!(pruned("unknown_column = 1"), [true, true, true]);
    }

    #[test]
    fn float_pruning_leaves_room_for_nan() {
        // Container 1's NaN minimum is unknown; container 2 holds only 2.0 (and NaN, maybe).
        assert_eq!(pruned("f > 1"), [false, true, true]);
        assert_eq!(pruned("f < 0.5"), [true, true, false]);
        assert_eq!(pruned("f = -0.0"), [true, true, false]);
        assert_eq!(pruned("f != 2"), [true, true, true], "NaN != 2");
        assert_eq!(pruned("not f > 1"), [true, true, true], "NaN is not > 1");
        assert_eq!(pruned("not f != 2"), [false, true, true]);
    }

    #[test]
    fn statistics_must_describe_every_container() {
        let error = Statistics::new(UInt64Array::from(vec![1, 2]))
            .with_column(
                "x",
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(Int32Array::from(vec![1])),
                UInt64Array::from(vec![0]),
            )
            .unwrap_err();
        assert!(error.message().contains("for 2 containers"), "{error}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn value() -> impl Strategy<Value = Option<f64>> {
            prop_oneof![
                3 => (-4i8..4).prop_map(|v| Some(f64::from(v) / 2.0)),
                1 => Just(None),
                1 => Just(Some(f64::NAN)),
                1 => Just(Some(-0.0)),
            ]
        }

        fn leaf() -> impl Strategy<Value = String> {
            let column = prop_oneof![Just("i"), Just("f")];
            let op = prop_oneof![
                Just("="),
                Just("!="),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">=")
            ];
            let literal = (-5i8..5).prop_map(|v| format!("{}", f64::from(v) / 2.0));
            prop_oneof![
                (column.clone(), op, literal.clone()).prop_map(|(c, o, l)| format!("{c} {o} {l}")),
                column.clone().prop_map(|c| format!("{c} is null")),
                (column, literal.clone(), literal)
                    .prop_map(|(c, a, b)| format!("{c} in [{a}, {b}]")),
            ]
        }

        fn predicate() -> impl Strategy<Value = String> {
            leaf().prop_recursive(3, 12, 3, |inner| {
                prop_oneof![
                    inner.clone().prop_map(|e| format!("not ({e})")),
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                    (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
                ]
            })
        }

        /// Bounds the way a Parquet writer computes them: NaN and nulls left out.
        fn bounds(values: &[Option<f64>]) -> (Option<f64>, Option<f64>) {
            let finite = values.iter().flatten().copied().filter(|v| !v.is_nan());
            let min = finite.clone().reduce(f64::min);
            (min, finite.reduce(f64::max))
        }

        proptest! {
            /// A container pruned by its statistics has no matching row.
            #[test]
            fn pruning_never_skips_a_match(
                ints in proptest::collection::vec(proptest::option::of(-4i32..4), 1..6),
                floats in proptest::collection::vec(value(), 6),
                text in predicate(),
            ) {
                let rows = ints.len();
                let floats = &floats[..rows];
                let batch = RecordBatch::try_from_iter([
                    ("i", Arc::new(Int32Array::from(ints.clone())) as ArrayRef),
                    ("f", Arc::new(Float64Array::from(floats.to_vec())) as ArrayRef),
                ]).unwrap();
                let int_bounds = (ints.iter().flatten().min().copied(), ints.iter().flatten().max().copied());
                let float_bounds = bounds(floats);
                let nulls = |n: usize| UInt64Array::from(vec![n as u64]);
                let statistics = Statistics::new(UInt64Array::from(vec![rows as u64]))
                    .with_column(
                        "i",
                        Arc::new(Int32Array::from(vec![int_bounds.0])),
                        Arc::new(Int32Array::from(vec![int_bounds.1])),
                        nulls(ints.iter().filter(|v| v.is_none()).count()),
                    ).unwrap()
                    .with_column(
                        "f",
                        Arc::new(Float64Array::from(vec![float_bounds.0])),
                        Arc::new(Float64Array::from(vec![float_bounds.1])),
                        nulls(floats.iter().filter(|v| v.is_none()).count()),
                    ).unwrap();
                let predicate = Predicate::parse(&text).unwrap();
                let matching = predicate.evaluate(&batch).unwrap().true_count();
                let may_match = predicate.may_match(&statistics).unwrap()[0];
                prop_assert!(may_match || matching == 0, "{text}: {matching} rows match a pruned container");
            }

            /// Whatever is typed, parsing returns (never panics), and what it prints parses back.
            #[test]
            fn parsing_never_panics_and_round_trips(text in "[ a-z0-9_.'`\"()\\[\\],=!<>+-]{0,40}") {
                if let Ok(predicate) = Predicate::parse(&text) {
                    prop_assert_eq!(Predicate::parse(&predicate.to_string()).unwrap(), predicate);
                }
            }
        }
    }
}
