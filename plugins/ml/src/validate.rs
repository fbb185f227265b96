//! `validate`: checks rows against rules, counts each rule's violations, and fails, drops
//! the violating rows, or sets them aside for the pipeline's `[quarantine]` sink.
//!
//! ```toml
//! [[transform]]
//! type = "validate"
//! on_violation = "quarantine"          # or "fail" (default), "drop"
//! rules = [
//!   { column = "age", min = 0, max = 120 },
//!   { column = "label", allowed = [0, 1], not_null = true },
//!   { column = "f*", type = "float64" },
//!   { column = "id", unique = true },
//!   { column = "email", max_null_rate = 0.01, name = "email mostly present" },
//! ]
//! ```
//!
//! Each table names a `column` (a name or a glob pattern) and one or more checks; each
//! check of each matching column is a rule of its own, named after the check (e.g.
//! `age >= 0`) or by `name`:
//!
//! - **Row rules** — `not_null`; `min` / `max` (numeric columns; NaN is outside every
//!   range, a null is not checked); `allowed` (a list of strings or numbers; a null is not
//!   checked). A row violating any of them is handled by `on_violation`: `fail` stops the
//!   run with an error naming the rule, the column, the row and the value; `drop` removes
//!   it; `quarantine` removes it and hands it, with a column `rule` naming the first rule
//!   it broke, to the `[quarantine]` sink.
//! - **Schema rules** — `type` (a type name as for `cast`): checked when the pipeline
//!   starts, before any row is read; a mismatch is always an error.
//! - **Dataset rules** — `unique` (every non-null value of the column appears once) and
//!   `max_null_rate` (a fraction of the rows): they need the whole data, so `validate` is
//!   fitted when it has them: the fit pass counts nulls and collects the 64-bit hashes of the
//!   values (8 bytes per row), and a violation is an error of the fit, whatever
//!   `on_violation` says. With `run --stats` they are not checked again.
//!
//! The counters report the violations of each rule (`violations of <rule>`; a row can
//! break several) and the rows dropped or quarantined. Output columns and types are the
//! input's.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatchOptions, StringArray,
};
use mlpipe_plugin_api::arrow::buffer::BooleanBuffer;
use mlpipe_plugin_api::arrow::compute::{concat_batches, filter_record_batch, not};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::arrow::util::display::array_value_to_string;
use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch,
    Result, SchemaRef, Transform,
};
use serde::Deserialize;

use crate::cast::parse_type;
use crate::columns::{Accepts, PerSchema, Selection};
use crate::fitting::{ColumnStats, Stats};
use crate::hashing::{for_each_key_hash, murmur3_128};
use crate::numeric::{NUMERIC, as_f64};
use crate::stats::vocab::{CATEGORICAL, Category, Lookup, Position};
use crate::wire::{Reader, Writer};

const NAME: &str = "validate";
const VERSION: u32 = 1;

/// The config keys of `validate`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "rules",
            ConfigType::Any,
            "a list of tables: { column = \"x\", min, max, allowed, not_null, type, unique, max_null_rate, name }",
        )
        .required(),
        ConfigKey::new(
            "on_violation",
            ConfigType::String,
            "what happens to a row that breaks a row rule: `fail`, `drop` or `quarantine`",
        )
        .default("fail"),
    ]
}

/// One table of `rules`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    column: String,
    name: Option<String>,
    not_null: Option<bool>,
    min: Option<f64>,
    max: Option<f64>,
    allowed: Option<Vec<Category>>,
    #[serde(rename = "type")]
    ty: Option<String>,
    unique: Option<bool>,
    max_null_rate: Option<f64>,
}

/// What one rule checks.
#[derive(Debug, Clone)]
enum Check {
    NotNull,
    Min(f64),
    Max(f64),
    Allowed(Vec<Category>),
    Type(DataType),
    Unique,
    MaxNullRate(f64),
}

impl Check {
    fn describe(&self) -> String {
        match self {
            Check::NotNull => "not null".to_string(),
            Check::Min(v) => format!(">= {v}"),
            Check::Max(v) => format!("<= {v}"),
            Check::Allowed(values) => {
                let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
                format!("in [{}]", values.join(", "))
            }
            Check::Type(ty) => format!("has type {ty}"),
            Check::Unique => "unique".to_string(),
            Check::MaxNullRate(rate) => format!("null rate <= {rate}"),
        }
    }

    fn accepts(&self) -> Accepts {
        match self {
            Check::Min(_) | Check::Max(_) => NUMERIC,
            Check::Allowed(_) => CATEGORICAL,
            Check::Unique => crate::hashing::KEYS,
            _ => Accepts::ANY,
        }
    }

    fn is_dataset_rule(&self) -> bool {
        matches!(self, Check::Unique | Check::MaxNullRate(_))
    }
}

/// A check of the columns a selection matches.
#[derive(Debug, Clone)]
struct Rule {
    /// The name given, if any.
    name: Option<String>,
    selection: Selection,
    check: Check,
}

impl Rule {
    fn name_for(&self, column: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{column} {}", self.check.describe()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OnViolation {
    Fail,
    Drop,
    Quarantine,
}

/// A row rule bound to a column of the input schema.
struct Bound {
    index: usize,
    name: String,
    check: Check,
    /// For `allowed`: the lookup of the allowed values in the column's type.
    lookup: Option<Lookup>,
}

/// Validates rows.
pub(crate) struct Validate {
    rules: Vec<Rule>,
    on_violation: OnViolation,
    /// Per input schema: the row rules bound to columns.
    bound: PerSchema<Vec<Bound>>,
    /// Violations per rule name, in order of first appearance.
    violations: Vec<(String, u64)>,
    set_aside: u64,
    quarantined: Vec<RecordBatch>,
    stats: ColumnStats<DatasetStats>,
}

impl Validate {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Validate> {
        let tables: Vec<RuleTable> = config
            .get::<Vec<RuleTable>>("rules")
            .map_err(|e| {
                Error::config(format!(
                    "key `rules` of transform `{NAME}` must be a list of tables such as {{ column = \"age\", min = 0 }}: {}",
                    e.message()
                ))
            })?
            .unwrap_or_default();
        if tables.is_empty() {
            return Err(Error::config(format!(
                "key `rules` of transform `{NAME}` is empty; give at least one rule"
            )));
        }
        let mut rules = Vec::new();
        for table in tables {
            let mut checks = Vec::new();
            if table.not_null == Some(true) {
                checks.push(Check::NotNull);
            }
            checks.extend(table.min.map(Check::Min));
            checks.extend(table.max.map(Check::Max));
            checks.extend(table.allowed.map(Check::Allowed));
            if let Some(ty) = &table.ty {
                checks.push(Check::Type(parse_type(ty).map_err(|e| {
                    e.context(format!("rule for `{}` of transform `{NAME}`", table.column))
                })?));
            }
            if table.unique == Some(true) {
                checks.push(Check::Unique);
            }
            if let Some(rate) = table.max_null_rate {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(Error::config(format!(
                        "rule for `{}` of transform `{NAME}`: `max_null_rate` must be between 0 and 1, not {rate}",
                        table.column
                    )));
                }
                checks.push(Check::MaxNullRate(rate));
            }
            if checks.is_empty() {
                return Err(Error::config(format!(
                    "rule for `{}` of transform `{NAME}` checks nothing; give not_null, min, max, allowed, type, unique or max_null_rate",
                    table.column
                )));
            }
            let selection = Selection::new(
                ComponentKind::Transform,
                NAME,
                "rules",
                vec![table.column.clone()],
            )?;
            for check in checks {
                rules.push(Rule {
                    name: table.name.clone(),
                    selection: selection.clone(),
                    check,
                });
            }
        }
        let on_violation: String = config.require("on_violation")?;
        let on_violation = match on_violation.as_str() {
            "fail" => OnViolation::Fail,
            "drop" => OnViolation::Drop,
            "quarantine" => OnViolation::Quarantine,
            other => {
                return Err(Error::config(format!(
                    "key `on_violation` of transform `{NAME}` must be `fail`, `drop` or `quarantine`, not `{other}`"
                )));
            }
        };
        Ok(Validate {
            rules,
            on_violation,
            bound: PerSchema::default(),
            violations: Vec::new(),
            set_aside: 0,
            quarantined: Vec::new(),
            stats: ColumnStats::new(NAME),
        })
    }

    /// Checks the schema rules and binds the row rules to the columns of `input`.
    fn bind(&self, input: &SchemaRef) -> Result<Vec<Bound>> {
        let mut bound = Vec::new();
        for rule in &self.rules {
            for index in rule.selection.resolve(input, rule.check.accepts())? {
                let field = input.field(index);
                let name = rule.name_for(field.name());
                match &rule.check {
                    Check::Type(ty) if field.data_type() != ty => {
                        return Err(Error::config(format!(
                            "transform `{NAME}`: rule `{name}` fails: column `{}` has type {}",
                            field.name(),
                            field.data_type()
                        )));
                    }
                    check if check.is_dataset_rule() || matches!(check, Check::Type(_)) => {}
                    check => {
                        let lookup = match check {
                            Check::Allowed(values) => Some(Lookup::new(values, field.data_type())?),
                            _ => None,
                        };
                        bound.push(Bound {
                            index,
                            name,
                            check: check.clone(),
                            lookup,
                        });
                    }
                }
            }
        }
        Ok(bound)
    }

    fn count(&mut self, rule: &str, violations: u64) {
        match self.violations.iter_mut().find(|(name, _)| name == rule) {
            Some((_, total)) => *total += violations,
            None => self.violations.push((rule.to_string(), violations)),
        }
    }

    fn dataset_rules(&self) -> bool {
        self.rules.iter().any(|r| r.check.is_dataset_rule())
    }

    /// Applies the row rules `rules` (bound to `batch`'s schema) to `batch`.
    fn check(&mut self, batch: RecordBatch, rules: &[Bound]) -> Result<RecordBatch> {
        // The first rule each row broke (an index into `rules`), usize::MAX for none.
        let mut first = vec![usize::MAX; batch.num_rows()];
        for (r, rule) in rules.iter().enumerate() {
            let column = batch.column(rule.index);
            let broken = violations(&rule.check, rule.lookup.as_ref(), column.as_ref())?;
            let count = broken.count_set_bits();
            self.count(&rule.name, count as u64);
            if count == 0 {
                continue;
            }
            if self.on_violation == OnViolation::Fail {
                let row = broken.set_indices().next().unwrap_or_default();
                let value =
                    array_value_to_string(column.as_ref(), row).unwrap_or_else(|_| "?".to_string());
                return Err(Error::bad_data(format!(
                    "transform `{NAME}`: rule `{}` fails at row {row} (column `{}`, value `{value}`); {count} row(s) of this batch break it; set on_violation = \"drop\" or \"quarantine\" to set such rows aside",
                    rule.name,
                    batch.schema().field(rule.index).name()
                ))
                .with_rows(row as u64..row as u64 + 1));
            }
            for row in broken.set_indices() {
                if first[row] == usize::MAX {
                    first[row] = r;
                }
            }
        }
        let keep = BooleanArray::from(first.iter().map(|&r| r == usize::MAX).collect::<Vec<_>>());
        let kept = keep.true_count();
        if kept == batch.num_rows() {
            return Ok(batch);
        }
        self.set_aside += (batch.num_rows() - kept) as u64;
        if self.on_violation == OnViolation::Quarantine {
            let aside = filter_record_batch(&batch, &not(&keep)?)?;
            let names: StringArray = first
                .iter()
                .filter(|&&r| r != usize::MAX)
                .map(|&r| Some(rules[r].name.as_str()))
                .collect();
            let schema = self
                .quarantine_schema(&batch.schema())?
                .ok_or_else(|| Error::internal("validate quarantines without a schema"))?;
            let mut columns: Vec<ArrayRef> = aside.columns().to_vec();
            columns.push(Arc::new(names));
            let options = RecordBatchOptions::new().with_row_count(Some(aside.num_rows()));
            self.quarantined.push(RecordBatch::try_new_with_options(
                schema, columns, &options,
            )?);
        }
        Ok(filter_record_batch(&batch, &keep)?)
    }
}

/// Which rows of `array` break `check` (nulls only break `not_null`).
fn violations(check: &Check, lookup: Option<&Lookup>, array: &dyn Array) -> Result<BooleanBuffer> {
    let valid = |i: usize| array.is_valid(i);
    Ok(match check {
        Check::NotNull => match array.logical_nulls() {
            Some(nulls) => !nulls.inner(),
            None => BooleanBuffer::new_unset(array.len()),
        },
        // NaN is outside every range.
        Check::Min(min) => {
            let values = as_f64(array)?;
            let x = values.values();
            BooleanBuffer::collect_bool(x.len(), |i| valid(i) && (x[i].is_nan() || x[i] < *min))
        }
        Check::Max(max) => {
            let values = as_f64(array)?;
            let x = values.values();
            BooleanBuffer::collect_bool(x.len(), |i| valid(i) && (x[i].is_nan() || x[i] > *max))
        }
        Check::Allowed(_) => {
            let positions = match lookup {
                Some(lookup) => lookup.positions(array)?,
                None => return Err(Error::internal("an `allowed` rule without its lookup")),
            };
            BooleanBuffer::collect_bool(positions.len(), |i| positions[i] == Position::Unknown)
        }
        _ => BooleanBuffer::new_unset(array.len()),
    })
}

impl Transform for Validate {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.bind(input)?;
        Ok(input.clone())
    }

    fn quarantine_schema(&self, input: &SchemaRef) -> Result<Option<SchemaRef>> {
        if self.on_violation != OnViolation::Quarantine {
            return Ok(None);
        }
        if input.index_of("rule").is_ok() {
            return Err(Error::config(format!(
                "transform `{NAME}` quarantines rows with a column `rule` naming the rule they broke, and the input already has a column `rule`; rename it first"
            )));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("rule", DataType::Utf8, false));
        Ok(Some(Arc::new(Schema::new_with_metadata(
            fields,
            input.metadata().clone(),
        ))))
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut cache = std::mem::take(&mut self.bound);
        let result = match cache.get(&batch.schema(), |input| self.bind(input)) {
            Ok(rules) => self.check(batch, rules),
            Err(e) => Err(e),
        };
        self.bound = cache;
        result
    }

    fn take_quarantined(&mut self) -> Result<Option<RecordBatch>> {
        match self.quarantined.len() {
            0 => Ok(None),
            1 => Ok(self.quarantined.pop()),
            _ => {
                let schema = self.quarantined[0].schema();
                let batches = std::mem::take(&mut self.quarantined);
                Ok(Some(concat_batches(&schema, &batches)?))
            }
        }
    }

    fn counters(&self) -> Counters {
        let mut counters: Counters = self
            .violations
            .iter()
            .map(|(rule, n)| (format!("violations of {rule}"), *n))
            .collect();
        match self.on_violation {
            OnViolation::Drop => counters.push(("rows dropped".to_string(), self.set_aside)),
            OnViolation::Quarantine => {
                counters.push(("rows quarantined".to_string(), self.set_aside));
            }
            OnViolation::Fail => {}
        }
        counters
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        self.bind(input)?;
        let mut reads = Vec::new();
        for rule in &self.rules {
            for index in rule.selection.resolve(input, rule.check.accepts())? {
                let name = input.field(index).name().clone();
                if !reads.contains(&name) {
                    reads.push(name);
                }
            }
        }
        let writes = if self.on_violation == OnViolation::Fail {
            Vec::new()
        } else {
            // Dropping rows changes every column.
            input.fields().iter().map(|f| f.name().clone()).collect()
        };
        Ok(Some(ColumnUsage { reads, writes }))
    }

    fn needs_fit(&self) -> bool {
        self.dataset_rules()
    }

    fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let mut indices = Vec::new();
        for rule in self.rules.iter().filter(|r| r.check.is_dataset_rule()) {
            for index in rule.selection.resolve(&schema, rule.check.accepts())? {
                if !indices.contains(&index) {
                    indices.push(index);
                }
            }
        }
        let hashed: Vec<String> = self
            .rules
            .iter()
            .filter(|r| matches!(r.check, Check::Unique))
            .flat_map(|r| {
                r.selection
                    .resolve(&schema, r.check.accepts())
                    .unwrap_or_default()
            })
            .map(|i| schema.field(i).name().clone())
            .collect();
        self.stats.update(batch, &indices, |field| {
            Ok(DatasetStats::new(hashed.contains(field.name())))
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
        let mut verdicts = Vec::new();
        for rule in self.rules.iter().filter(|r| r.check.is_dataset_rule()) {
            for (column, stats) in &columns {
                if !rule.selection.matches(column) {
                    continue;
                }
                let name = rule.name_for(column);
                let (passed, detail) = match &rule.check {
                    Check::Unique => {
                        let duplicates = stats.duplicates();
                        (
                            duplicates == 0,
                            format!("{duplicates} value(s) appear more than once"),
                        )
                    }
                    Check::MaxNullRate(max) => {
                        let rate = if rows == 0 {
                            0.0
                        } else {
                            stats.nulls as f64 / rows as f64
                        };
                        (rate <= *max, format!("null rate {rate:.6}"))
                    }
                    _ => continue,
                };
                if !passed {
                    return Err(Error::bad_data(format!(
                        "transform `{NAME}`: rule `{name}` fails over the whole data: {detail}"
                    )));
                }
                verdicts
                    .push(serde_json::json!({ "rule": name, "passed": true, "detail": detail }));
            }
        }
        Ok(serde_json::json!({
            "transform": NAME,
            "version": VERSION,
            "plugin_version": env!("CARGO_PKG_VERSION"),
            "rows": rows,
            "rules": verdicts,
        }))
    }

    fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
        match (
            params.get("transform").and_then(|t| t.as_str()),
            params.get("version"),
        ) {
            (Some(NAME), Some(v)) if v.as_u64() == Some(u64::from(VERSION)) => Ok(()),
            _ => Err(Error::config(format!(
                "the fitted parameters given to transform `{NAME}` are not the ones it writes (version {VERSION}); fit the pipeline again"
            ))),
        }
    }
}

/// What the dataset rules need of a column: its nulls and, for `unique`, the 64-bit hashes
/// of its values.
pub(crate) struct DatasetStats {
    nulls: u64,
    hashes: Option<Vec<u64>>,
}

impl DatasetStats {
    fn new(hashed: bool) -> DatasetStats {
        DatasetStats {
            nulls: 0,
            hashes: hashed.then(Vec::new),
        }
    }

    /// How many values repeat an earlier one (two equal 64-bit hashes of different values
    /// are possible but have odds of about n²/2^65).
    fn duplicates(&self) -> u64 {
        let Some(hashes) = &self.hashes else { return 0 };
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.windows(2).filter(|w| w[0] == w[1]).count() as u64
    }
}

impl Stats for DatasetStats {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        self.nulls += array.logical_null_count() as u64;
        if let Some(hashes) = &mut self.hashes {
            for_each_key_hash(
                array,
                |bytes| murmur3_128(bytes, 0).0,
                |_, h| hashes.push(h),
            )?;
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        self.nulls += other.nulls;
        if let (Some(mine), Some(theirs)) = (&mut self.hashes, other.hashes) {
            mine.extend(theirs);
        }
        Ok(())
    }

    fn encode(&self, out: &mut Writer) {
        out.u64(self.nulls);
        match &self.hashes {
            None => out.u64(0),
            Some(hashes) => {
                out.u64(1);
                out.u64(hashes.len() as u64);
                for h in hashes {
                    out.u64(*h);
                }
            }
        }
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        let nulls = input.u64()?;
        let hashes = match input.u64()? {
            0 => None,
            _ => {
                let n = input.u64()?;
                let mut hashes = Vec::new();
                for _ in 0..n {
                    hashes.push(input.u64()?);
                }
                Some(hashes)
            }
        };
        Ok(DatasetStats { nulls, hashes })
    }

    fn memory_usage(&self) -> usize {
        self.hashes.as_ref().map_or(0, |h| h.capacity() * 8)
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Float64Array, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::Int64Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    fn batch() -> RecordBatch {
        batch_of(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
            ),
            (
                "age",
                Arc::new(Float64Array::from(vec![
                    Some(30.0),
                    Some(-1.0),
                    None,
                    Some(f64::NAN),
                    Some(200.0),
                ])),
            ),
            (
                "label",
                Arc::new(StringArray::from(vec![
                    Some("yes"),
                    Some("no"),
                    Some("maybe"),
                    None,
                    Some("no"),
                ])),
            ),
        ])
    }

    fn rules() -> serde_json::Value {
        json!([
            {"column": "age", "min": 0, "max": 120},
            {"column": "label", "allowed": ["yes", "no"], "name": "label known"},
        ])
    }

    fn ids(out: &RecordBatch) -> Vec<i64> {
        out.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn fail_names_rule_row_and_value() {
        let mut t = make(NAME, &json!({"rules": rules()}));
        let err = t.transform(batch()).unwrap_err();
        assert!(
            err.message().contains("rule `age >= 0` fails at row 1"),
            "{err}"
        );
        assert!(err.message().contains("value `-1.0`"), "{err}");
        assert_eq!(err.rows(), Some(1..2));
    }

    #[test]
    fn drop_counts_each_rule() {
        let mut t = make(NAME, &json!({"rules": rules(), "on_violation": "drop"}));
        let out = transform(&mut *t, batch());
        // Row 2 (null age) and row 4 (null label) pass: nulls are only checked by not_null.
        assert_eq!(ids(&out), [1]);
        let counters = t.counters();
        assert!(
            counters.contains(&("violations of age >= 0".to_string(), 2)),
            "{counters:?}"
        );
        assert!(
            counters.contains(&("violations of age <= 120".to_string(), 2)),
            "{counters:?}"
        );
        assert!(
            counters.contains(&("violations of label known".to_string(), 1)),
            "{counters:?}"
        );
        assert!(
            counters.contains(&("rows dropped".to_string(), 4)),
            "{counters:?}"
        );
    }

    #[test]
    fn quarantine_hands_over_rows_with_their_first_rule() {
        let config = json!({"rules": [{"column": "label", "not_null": true}, {"column": "age", "min": 0}], "on_violation": "quarantine"});
        let mut t = make(NAME, &config);
        let schema = t.quarantine_schema(&batch().schema()).unwrap().unwrap();
        assert_eq!(schema.field(3).name(), "rule");
        let out = transform(&mut *t, batch());
        assert_eq!(ids(&out), [1, 3, 5]);
        let aside = t.take_quarantined().unwrap().unwrap();
        assert_eq!(aside.schema(), schema);
        assert_eq!(ids(&aside), [2, 4]);
        let rule = aside.column(3).as_string::<i32>();
        assert_eq!(
            (rule.value(0), rule.value(1)),
            ("age >= 0", "label not null")
        );
        assert!(t.take_quarantined().unwrap().is_none());
    }

    #[test]
    fn schema_rules_fail_before_any_row() {
        let t = make(
            NAME,
            &json!({"rules": [{"column": "age", "type": "int64"}], "on_violation": "drop"}),
        );
        let err = t.output_schema(&batch().schema()).unwrap_err();
        assert!(err.message().contains("has type Float64"), "{err}");
        let t = make(
            NAME,
            &json!({"rules": [{"column": "a*", "type": "float64"}]}),
        );
        assert!(t.output_schema(&batch().schema()).is_ok());
        assert!(!t.needs_fit());
    }

    #[test]
    fn dataset_rules_are_checked_by_the_fit() {
        let config = json!({"rules": [{"column": "id", "unique": true}, {"column": "label", "max_null_rate": 0.25}]});
        let (params, _) = fit_in_parts(NAME, &config, &batch(), 2);
        assert_eq!(params["rules"].as_array().unwrap().len(), 2);
        let dup = batch_of(vec![(
            "id",
            Arc::new(Int64Array::from(vec![1, 2, 1, 3])) as ArrayRef,
        )]);
        let mut t = make(NAME, &json!({"rules": [{"column": "id", "unique": true}]}));
        t.fit(&dup).unwrap();
        let err = t.finish_fit().unwrap_err();
        assert!(
            err.message()
                .contains("rule `id unique` fails over the whole data: 1 value(s)"),
            "{err}"
        );
        let mut t = make(
            NAME,
            &json!({"rules": [{"column": "label", "max_null_rate": 0.1}]}),
        );
        t.fit(&batch()).unwrap();
        let err = t.finish_fit().unwrap_err();
        assert!(err.message().contains("null rate 0.200000"), "{err}");
    }

    #[test]
    fn bad_rules_are_rejected() {
        for rules in [
            json!([]),
            json!([{"column": "x"}]),
            json!([{"column": "x", "minimum": 1}]),
            json!([{"column": "x", "max_null_rate": 2}]),
            json!("x > 1"),
        ] {
            assert!(
                crate::testing::try_make(NAME, &json!({"rules": rules})).is_err(),
                "{rules}"
            );
        }
    }
}
