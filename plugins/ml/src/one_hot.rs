//! `one_hot`: scikit-learn's `OneHotEncoder` (dense output). Fits each column's sorted
//! categories and replaces the column by one 0/1 indicator per category, in place.
//!
//! - Missing values (nulls, NaN) form a category of their own, sorted last, as scikit-learn
//!   treats None and NaN; a missing value when none was fitted is unknown.
//! - `handle_unknown`: `error` (default) names the value; `ignore` gives all zeros;
//!   `infrequent_if_exist` gives the infrequent indicator (zeros when there is none).
//! - `min_frequency` / `max_categories` group infrequent categories into one indicator,
//!   placed last, exactly as scikit-learn does.
//! - `drop`: `first` drops the indicator of the first sorted category (or the infrequent
//!   indicator when that category is infrequent); `if_binary` does so only for columns
//!   with exactly two categories. A row of the dropped category is all zeros.
//! - `output = "columns"` (default): indicators `{column}_{category}` (`{column}_null`,
//!   `{column}_infrequent`); `output = "list"`: one fixed-size-list column named like the
//!   input. `dtype`: `float64` (default, as scikit-learn), `float32` or `uint8`.
//! - The output schema depends on the fitted categories: it is known once fitted.
//! - Fitted parameters per column: `categories` (frequent ones, in indicator order; `null`
//!   for missing values), `infrequent`, `missing` (missing values seen).

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, FixedSizeListArray, PrimitiveArray,
    RecordBatchOptions,
};
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, UInt8Type,
};
use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, ConfigType, Error, RecordBatch, Result,
    SchemaRef, Transform,
};

use crate::columns::{self, PerSchema, Selection};
use crate::columnwise::not_fitted;
use crate::encoders::{Categories, Frequency, frequency_keys};
use crate::fitting::{ColumnStats, Params};
use crate::stats::vocab::{CATEGORICAL, Category, Counts, Kind, Lookup, Position, unknown_error};

const NAME: &str = "one_hot";
const VERSION: u32 = 1;

/// The config keys of `one_hot`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let mut keys = vec![columns::key(
        "string, integer or float columns to encode (names or glob patterns)",
    )];
    keys.extend(frequency_keys());
    keys.extend([
        ConfigKey::new(
            "handle_unknown",
            ConfigType::String,
            "values not seen when fitting: `error`, `ignore` (all zeros) or `infrequent_if_exist`",
        )
        .default("error"),
        ConfigKey::new(
            "drop",
            ConfigType::String,
            "`first` or `if_binary`: drop the first category's indicator; none when absent",
        ),
        ConfigKey::new(
            "output",
            ConfigType::String,
            "`columns` (one column per indicator) or `list` (one fixed-size-list column)",
        )
        .default("columns"),
        ConfigKey::new(
            "dtype",
            ConfigType::String,
            "the indicators' type: `float64`, `float32` or `uint8`",
        )
        .default("float64"),
    ]);
    keys
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unknown {
    Error,
    Ignore,
    Infrequent,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Drop {
    None,
    First,
    IfBinary,
}

/// Picks one of `choices` for `key`, or says which are accepted.
fn choose<T: Clone>(config: &Config, key: &str, choices: &[(&str, T)]) -> Result<T> {
    let given: String = config.require(key)?;
    choices
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, value)| value.clone())
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
            Error::config(format!(
                "key `{key}` of transform `{NAME}` must be one of {}, not `{given}`",
                names.join(", ")
            ))
        })
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<OneHot> {
    let drop = match config.get::<String>("drop")? {
        None => Drop::None,
        Some(_) => choose(
            config,
            "drop",
            &[("first", Drop::First), ("if_binary", Drop::IfBinary)],
        )?,
    };
    Ok(OneHot {
        selection: Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
        frequency: Frequency::from_config(config, NAME)?,
        unknown: choose(
            config,
            "handle_unknown",
            &[
                ("error", Unknown::Error),
                ("ignore", Unknown::Ignore),
                ("infrequent_if_exist", Unknown::Infrequent),
            ],
        )?,
        drop,
        list: choose(config, "output", &[("columns", false), ("list", true)])?,
        dtype: choose(
            config,
            "dtype",
            &[
                ("float64", DataType::Float64),
                ("float32", DataType::Float32),
                ("uint8", DataType::UInt8),
            ],
        )?,
        stats: ColumnStats::new(NAME),
        params: None,
        plan: PerSchema::default(),
    })
}

/// Replaces categorical columns by indicators.
pub(crate) struct OneHot {
    selection: Selection,
    frequency: Frequency,
    unknown: Unknown,
    drop: Drop,
    list: bool,
    dtype: DataType,
    stats: ColumnStats<Counts>,
    params: Option<Params<Categories>>,
    plan: PerSchema<Plan>,
}

/// How one input column is encoded.
struct Encoding {
    lookup: Lookup,
    /// The indicator of each category position (frequent ones, then infrequent ones);
    /// `None` for a dropped one.
    slots: Vec<Option<u32>>,
    /// The indicator of unknown values, if they get one.
    unknown: Option<u32>,
    /// The number of indicators.
    width: usize,
}

enum Step {
    Pass(usize),
    Encode(usize, Encoding),
}

struct Plan {
    output: SchemaRef,
    steps: Vec<Step>,
}

impl OneHot {
    /// The indicator names and the encoding of one column.
    fn encoding(&self, field: &Field, params: &Categories) -> Result<(Vec<String>, Encoding)> {
        let frequent = params.categories.len();
        let all = frequent + params.infrequent.len();
        let has_infrequent = !params.infrequent.is_empty();
        // scikit-learn's categories_ is sorted (null last); the first one is dropped.
        let first = params
            .categories
            .iter()
            .chain(&params.infrequent)
            .enumerate()
            .min_by(|a, b| order(a.1, b.1))
            .map(|(i, _)| i);
        let dropped = match self.drop {
            Drop::None => None,
            Drop::First => first,
            Drop::IfBinary if all == 2 => first,
            Drop::IfBinary => None,
        };
        // The indicator each category position feeds, before dropping.
        let raw: Vec<u32> = (0..all).map(|i| i.min(frequent) as u32).collect();
        let dropped_indicator = dropped.map(|i| raw[i]);
        let mut names: Vec<String> = params
            .categories
            .iter()
            .map(|c| format!("{}_{c}", field.name()))
            .collect();
        if has_infrequent {
            names.push(format!("{}_infrequent", field.name()));
        }
        let renumber = |indicator: u32| match dropped_indicator {
            Some(d) if indicator == d => None,
            Some(d) if indicator > d => Some(indicator - 1),
            _ => Some(indicator),
        };
        if let Some(d) = dropped_indicator {
            names.remove(d as usize);
        }
        let unknown = match self.unknown {
            Unknown::Infrequent if has_infrequent => renumber(frequent as u32),
            _ => None,
        };
        Ok((
            names.clone(),
            Encoding {
                lookup: params.lookup(field.data_type())?,
                slots: raw.into_iter().map(renumber).collect(),
                unknown,
                width: names.len(),
            },
        ))
    }

    fn plan_for(&self, input: &SchemaRef) -> Result<Plan> {
        // The output columns depend on the fitted categories.
        let params = self.params.as_ref().ok_or_else(|| not_fitted(NAME))?;
        let selected = self.selection.resolve(input, CATEGORICAL)?;
        let mut fields = Vec::new();
        let mut steps = Vec::new();
        for (index, field) in input.fields().iter().enumerate() {
            if !selected.contains(&index) {
                fields.push(field.as_ref().clone());
                steps.push(Step::Pass(index));
                continue;
            }
            let fitted = params.get(field.name()).ok_or_else(|| {
                Error::config(format!(
                    "transform `{NAME}`: column `{}` was not among the fitted columns; fit the pipeline again on data with this column",
                    field.name()
                ))
            })?;
            let (names, encoding) = self
                .encoding(field, fitted)
                .map_err(|e| e.context(format!("transform `{NAME}`, column `{}`", field.name())))?;
            if self.list {
                let item = Arc::new(Field::new("item", self.dtype.clone(), false));
                let ty = DataType::FixedSizeList(item, names.len() as i32);
                fields.push(Field::new(field.name(), ty, false));
            } else {
                fields.extend(
                    names
                        .into_iter()
                        .map(|n| Field::new(n, self.dtype.clone(), false)),
                );
            }
            steps.push(Step::Encode(index, encoding));
        }
        let schema = Schema::new_with_metadata(fields, input.metadata().clone());
        if let Some(duplicate) = duplicate_name(&schema) {
            return Err(Error::config(format!(
                "transform `{NAME}`: the output would have two columns named `{duplicate}`; rename a column first"
            )));
        }
        Ok(Plan {
            output: Arc::new(schema),
            steps,
        })
    }

    /// The indicator of every row, `u32::MAX` for none.
    fn indicators(&self, encoding: &Encoding, array: &ArrayRef) -> Result<Vec<u32>> {
        let positions = encoding.lookup.positions(array.as_ref())?;
        let none = u32::MAX;
        let mut unknown = false;
        let rows = positions
            .iter()
            .map(|p| match p {
                Position::At(i) => encoding.slots[*i as usize].unwrap_or(none),
                Position::Unknown | Position::Missing => {
                    unknown = true;
                    encoding.unknown.unwrap_or(none)
                }
            })
            .collect();
        if unknown && self.unknown == Unknown::Error {
            let positions: Vec<Position> = positions
                .into_iter()
                .map(|p| match p {
                    Position::Missing => Position::Unknown,
                    other => other,
                })
                .collect();
            return Err(unknown_error(
                array.as_ref(),
                &positions,
                "set `handle_unknown = \"ignore\"` to encode such values as zeros",
            ));
        }
        Ok(rows)
    }

    fn encode(&self, encoding: &Encoding, array: &ArrayRef, out: &mut Vec<ArrayRef>) -> Result<()> {
        let rows = self.indicators(encoding, array)?;
        match self.dtype {
            DataType::Float32 => emit::<Float32Type>(&rows, encoding.width, self.list, out),
            DataType::UInt8 => emit::<UInt8Type>(&rows, encoding.width, self.list, out),
            _ => emit::<Float64Type>(&rows, encoding.width, self.list, out),
        }
        Ok(())
    }
}

/// scikit-learn's category order: values sorted, `null` last.
fn order(a: &Category, b: &Category) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Category::Null, Category::Null) => Ordering::Equal,
        (Category::Null, _) => Ordering::Greater,
        (_, Category::Null) => Ordering::Less,
        (Category::Text(a), Category::Text(b)) => a.cmp(b),
        (a, b) => number(a).total_cmp(&number(b)),
    }
}

fn number(category: &Category) -> f64 {
    match category {
        Category::Integer(v) => *v as f64,
        Category::Float(v) => *v,
        _ => f64::NAN,
    }
}

fn duplicate_name(schema: &Schema) -> Option<String> {
    let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    names.sort_unstable();
    names
        .windows(2)
        .find(|w| w[0] == w[1])
        .map(|w| w[0].clone())
}

/// Writes the indicators of `rows` (`u32::MAX`: none) as `width` columns, or one
/// fixed-size-list column.
fn emit<T: ArrowPrimitiveType>(rows: &[u32], width: usize, list: bool, out: &mut Vec<ArrayRef>) {
    if list {
        let mut values = vec![T::Native::ZERO; rows.len() * width];
        for (row, &slot) in rows.iter().enumerate() {
            if slot != u32::MAX {
                values[row * width + slot as usize] = T::Native::ONE;
            }
        }
        let item = Arc::new(Field::new("item", T::DATA_TYPE, false));
        let values = Arc::new(PrimitiveArray::<T>::new(values.into(), None));
        out.push(Arc::new(FixedSizeListArray::new(
            item,
            width as i32,
            values,
            None,
        )));
    } else {
        let mut columns = vec![vec![T::Native::ZERO; rows.len()]; width];
        for (row, &slot) in rows.iter().enumerate() {
            if slot != u32::MAX {
                columns[slot as usize][row] = T::Native::ONE;
            }
        }
        out.extend(
            columns
                .into_iter()
                .map(|c| Arc::new(PrimitiveArray::<T>::new(c.into(), None)) as ArrayRef),
        );
    }
}

impl Transform for OneHot {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan_for(input)?.output)
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut plan = std::mem::take(&mut self.plan);
        let result = (|| {
            let plan = plan.get(&schema, |input| self.plan_for(input))?;
            let mut columns = Vec::with_capacity(plan.output.fields().len());
            for step in &plan.steps {
                match step {
                    Step::Pass(index) => columns.push(batch.column(*index).clone()),
                    Step::Encode(index, encoding) => self
                        .encode(encoding, batch.column(*index), &mut columns)
                        .map_err(|e| {
                            e.context(format!(
                                "transform `{NAME}`, column `{}`",
                                schema.field(*index).name()
                            ))
                        })?,
                }
            }
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            Ok(RecordBatch::try_new_with_options(
                plan.output.clone(),
                columns,
                &options,
            )?)
        })();
        self.plan = plan;
        result
    }

    fn memory_usage(&self) -> usize {
        self.stats.memory_usage()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let names: Vec<String> = self
            .selection
            .resolve(input, CATEGORICAL)?
            .into_iter()
            .map(|i| input.field(i).name().clone())
            .collect();
        Ok(Some(ColumnUsage {
            reads: names.clone(),
            writes: names,
        }))
    }

    fn needs_fit(&self) -> bool {
        true
    }

    fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
        let indices = self.selection.resolve(&batch.schema(), CATEGORICAL)?;
        self.stats.update(batch, &indices, |field| {
            Kind::of(field.data_type())
                .map(Counts::new)
                .ok_or_else(|| Error::internal("one_hot fitted on a column it does not accept"))
        })
    }

    fn fit_partial(&mut self) -> Result<Vec<u8>> {
        Ok(self.stats.partial())
    }

    fn merge_fit(&mut self, partial: &[u8]) -> Result<()> {
        self.stats.merge(partial)
    }

    fn finish_fit(&mut self) -> Result<serde_json::Value> {
        let (rows, columns) = self.stats.take();
        if columns.is_empty() {
            return Err(Error::bad_data(format!(
                "transform `{NAME}` cannot be fitted: its input had no rows"
            )));
        }
        let columns = columns
            .into_iter()
            .map(|(name, counts)| {
                let (categories, infrequent, missing) = self.frequency.split(counts, true);
                let categories = Categories {
                    categories,
                    infrequent,
                    missing,
                };
                (name, categories)
            })
            .collect();
        let params = Params { rows, columns };
        let json = params.to_json(NAME, VERSION)?;
        self.params = Some(params);
        self.plan.clear();
        Ok(json)
    }

    fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
        self.params = Some(Params::from_json(NAME, VERSION, params)?);
        self.plan.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::{Float64Type, UInt8Type};
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    /// The fitting data of the scikit-learn checks: a×3, b, c×2, None×2.
    fn fitting() -> RecordBatch {
        let values = vec![
            Some("a"),
            Some("a"),
            Some("a"),
            Some("b"),
            Some("c"),
            Some("c"),
            None,
            None,
        ];
        batch_of(vec![
            (
                "id",
                Arc::new(Int64Array::from((0..8).collect::<Vec<i64>>())) as ArrayRef,
            ),
            ("x0", Arc::new(StringArray::from(values))),
        ])
    }

    /// The probe rows: a, b, c, None, zz.
    fn probe() -> RecordBatch {
        batch_of(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4])) as ArrayRef,
            ),
            (
                "x0",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    Some("c"),
                    None,
                    Some("zz"),
                ])),
            ),
        ])
    }

    /// The names of the output columns after `id`, and each probe row's indicators.
    fn encode(config: Value) -> (Vec<String>, Vec<Vec<f64>>) {
        let (_, mut t) = fit_in_parts(NAME, &config, &fitting(), 2);
        let out = transform(&mut *t, probe());
        let names = out
            .schema()
            .fields()
            .iter()
            .skip(1)
            .map(|f| f.name().clone())
            .collect();
        let rows = (0..out.num_rows())
            .map(|r| {
                (1..out.num_columns())
                    .map(|c| out.column(c).as_primitive::<Float64Type>().value(r))
                    .collect()
            })
            .collect();
        (names, rows)
    }

    // Every expectation below is scikit-learn 1.9.1's OneHotEncoder(sparse_output=False)
    // on the same data (get_feature_names_out, transform of the probe rows).

    #[test]
    fn missing_values_are_a_category_and_unknown_values_can_be_ignored() {
        let (names, rows) = encode(json!({"columns": ["x0"], "handle_unknown": "ignore"}));
        assert_eq!(names, ["x0_a", "x0_b", "x0_c", "x0_null"]);
        assert_eq!(
            rows,
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
                [0.0, 0.0, 0.0, 0.0]
            ]
        );
    }

    #[test]
    fn infrequent_categories_share_the_last_indicator() {
        let config =
            json!({"columns": ["x0"], "min_frequency": 2, "handle_unknown": "infrequent_if_exist"});
        let (names, rows) = encode(config);
        assert_eq!(names, ["x0_a", "x0_c", "x0_null", "x0_infrequent"]);
        assert_eq!(
            rows,
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0]
            ]
        );
        let config = json!({"columns": ["x0"], "max_categories": 2, "handle_unknown": "infrequent_if_exist"});
        let (names, rows) = encode(config);
        assert_eq!(names, ["x0_a", "x0_infrequent"]);
        assert_eq!(
            rows,
            [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
        );
    }

    #[test]
    fn drop_first_and_if_binary() {
        let (names, rows) =
            encode(json!({"columns": ["x0"], "drop": "first", "handle_unknown": "ignore"}));
        assert_eq!(names, ["x0_b", "x0_c", "x0_null"]);
        assert_eq!(rows[0], [0.0, 0.0, 0.0]);
        assert_eq!(rows[1], [1.0, 0.0, 0.0]);
        let config = json!({"columns": ["x0"], "drop": "first", "min_frequency": 3, "handle_unknown": "infrequent_if_exist"});
        let (names, rows) = encode(config);
        assert_eq!(names, ["x0_infrequent"]);
        assert_eq!(rows, [[0.0], [1.0], [1.0], [1.0], [1.0]]);
        // Four categories: if_binary drops nothing.
        let (names, _) =
            encode(json!({"columns": ["x0"], "drop": "if_binary", "handle_unknown": "ignore"}));
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn list_output_and_dtypes() {
        let config = json!({"columns": ["x0"], "output": "list", "dtype": "uint8", "handle_unknown": "ignore"});
        let (_, mut t) = fit_in_parts(NAME, &config, &fitting(), 1);
        let out = transform(&mut *t, probe());
        assert_eq!(out.schema().field(1).name(), "x0");
        let list = out.column(1).as_fixed_size_list();
        assert_eq!(list.value_length(), 4);
        let values = list.values().as_primitive::<UInt8Type>();
        assert_eq!(&values.values()[..8], &[1, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(&values.values()[16..], &[0, 0, 0, 0]);
    }

    #[test]
    fn unknown_values_are_an_error_by_default() {
        let (_, mut t) = fit_in_parts(NAME, &json!({"columns": ["x0"]}), &fitting(), 1);
        let err = t.transform(probe()).unwrap_err();
        assert!(err.message().contains("unknown category `zz`"), "{err}");
        // A missing value when none was fitted is unknown too.
        let no_nulls = fitting().slice(0, 6);
        let (_, mut t) = fit_in_parts(NAME, &json!({"columns": ["x0"]}), &no_nulls, 1);
        let err = t.transform(probe().slice(3, 1)).unwrap_err();
        assert!(err.message().contains("unknown category"), "{err}");
    }

    #[test]
    fn output_schema_needs_the_fit_and_names_must_not_collide() {
        let t = make(NAME, &json!({"columns": ["x0"]}));
        let err = t.output_schema(&fitting().schema()).unwrap_err();
        assert!(err.message().contains("must be fitted"), "{err}");
        let clash = batch_of(vec![
            ("x0", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("x0_a", Arc::new(StringArray::from(vec!["a"]))),
        ]);
        let (_, t) = fit_in_parts(NAME, &json!({"columns": ["x0"]}), &clash, 1);
        let err = t.output_schema(&clash.schema()).unwrap_err();
        assert!(err.message().contains("two columns named `x0_a`"), "{err}");
    }
}
