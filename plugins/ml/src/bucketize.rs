//! `bucketize`: scikit-learn's `KBinsDiscretizer` (`encode="ordinal"`), or fixed
//! boundaries. Each value becomes the int32 index of its bin: the number of inner
//! boundaries at or below it (numpy's `searchsorted(inner, x, side="right")`), so a value
//! equal to a boundary goes to the upper bin.
//!
//! - `boundaries = [b1, b2, …]` (strictly increasing): fixed bins, no fit; `n + 1` bins.
//! - `n_bins = N` with `strategy = "quantile"` (default; quantile method
//!   `averaged_inverted_cdf`, scikit-learn 1.9's default, or `linear`) or `"uniform"`
//!   (equal widths between the fitted minimum and maximum): fitted edges, as scikit-learn
//!   computes them; quantile bins narrower than 1e-8 are removed, and a constant column has
//!   one bin. scikit-learn subsamples 200,000 rows by default; mlpipe uses all values
//!   (exactly while a column has at most `exact_limit` values, within `rank_error`
//!   beyond).
//! - Nulls and NaN become null. Output int32.
//! - Fitted parameters per column: `boundaries` (the inner edges), `min`, `max`, `count`,
//!   `exact`, `rank_error`.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, Int32Array};
use mlpipe_plugin_api::arrow::buffer::{BooleanBuffer, NullBuffer};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field};
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::fitting::{Stats, finite};
use crate::numeric::{NUMERIC, as_f64};
use crate::stats::extremes::Extremes;
use crate::stats::quantiles::{self, Bounds, Method, Quantiles};
use crate::wire::{Reader, Writer};

const NAME: &str = "bucketize";

/// The config keys of `bucketize`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let mut keys = vec![
        columns::key("numeric columns to discretize (names or glob patterns)"),
        ConfigKey::new(
            "boundaries",
            ConfigType::FloatList,
            "fixed inner boundaries, strictly increasing (no fit); or use `n_bins`",
        ),
        ConfigKey::new("n_bins", ConfigType::Integer, "the number of fitted bins"),
        ConfigKey::new(
            "strategy",
            ConfigType::String,
            "how `n_bins` bins are fitted: `quantile` or `uniform`",
        )
        .default("quantile"),
        ConfigKey::new(
            "quantile_method",
            ConfigType::String,
            "numpy's quantile method for strategy `quantile`: `averaged_inverted_cdf` or `linear`",
        )
        .default("averaged_inverted_cdf"),
    ];
    keys.extend(quantiles::keys());
    keys
}

/// Where the bins come from.
enum Bins {
    Fixed(Vec<f64>),
    Quantile(usize, Method),
    Uniform(usize),
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Bucketize>> {
    let boundaries: Option<Vec<f64>> = config.get("boundaries")?;
    let n_bins: Option<u64> = config.get("n_bins")?;
    let strategy: String = config.require("strategy")?;
    let method: String = config.require("quantile_method")?;
    let method = match method.as_str() {
        "averaged_inverted_cdf" => Method::AveragedInvertedCdf,
        "linear" => Method::Linear,
        other => {
            return Err(Error::config(format!(
                "key `quantile_method` of transform `{NAME}` must be `averaged_inverted_cdf` or `linear`, not `{other}`"
            )));
        }
    };
    let bins = match (boundaries, n_bins) {
        (Some(b), None) => {
            if b.iter().any(|v| !v.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::config(format!(
                    "key `boundaries` of transform `{NAME}` must be finite and strictly increasing, not {b:?}"
                )));
            }
            Bins::Fixed(b)
        }
        (None, Some(n)) if n >= 1 => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            match strategy.as_str() {
                "quantile" => Bins::Quantile(n, method),
                "uniform" => Bins::Uniform(n),
                other => {
                    return Err(Error::config(format!(
                        "key `strategy` of transform `{NAME}` must be `quantile` or `uniform`, not `{other}`"
                    )));
                }
            }
        }
        (None, Some(_)) => {
            return Err(Error::config(format!(
                "key `n_bins` of transform `{NAME}` must be at least 1"
            )));
        }
        _ => {
            return Err(Error::config(format!(
                "transform `{NAME}` needs either `boundaries` (fixed bins) or `n_bins` (fitted bins), not both"
            )));
        }
    };
    let op = Bucketize {
        bins,
        bounds: Bounds::from_config(config, NAME)?,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Bucketize {
    bins: Bins,
    bounds: Bounds,
}

/// What a fitted strategy accumulates.
pub(crate) enum BinStats {
    Range(Extremes),
    Quantiles(Quantiles),
}

impl Stats for BinStats {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        match self {
            BinStats::Range(e) => e.update(array),
            BinStats::Quantiles(q) => q.update(array),
        }
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        match (self, other) {
            (BinStats::Range(a), BinStats::Range(b)) => a.merge(b),
            (BinStats::Quantiles(a), BinStats::Quantiles(b)) => a.merge(b),
            _ => Err(Error::internal(
                "bucketize partials of different strategies",
            )),
        }
    }

    fn encode(&self, out: &mut Writer) {
        match self {
            BinStats::Range(e) => {
                out.u64(0);
                e.encode(out);
            }
            BinStats::Quantiles(q) => {
                out.u64(1);
                q.encode(out);
            }
        }
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        match input.u64()? {
            0 => Ok(BinStats::Range(Extremes::decode(input)?)),
            _ => Ok(BinStats::Quantiles(Quantiles::decode(input)?)),
        }
    }

    fn memory_usage(&self) -> usize {
        match self {
            BinStats::Range(_) => 0,
            BinStats::Quantiles(q) => q.memory_usage(),
        }
    }
}

/// One column's fitted parameters (scikit-learn's `bin_edges_` without the outer two).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Edges {
    boundaries: Vec<f64>,
    min: f64,
    max: f64,
    count: u64,
    exact: bool,
    rank_error: f64,
}

/// numpy's `linspace(start, stop, n + 1)`: `i·step + start`, the last one `stop`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / n as f64;
    let mut values: Vec<f64> = (0..=n).map(|i| i as f64 * step + start).collect();
    values[n] = stop;
    values
}

impl ColumnOp for Bucketize {
    const NAME: &'static str = NAME;
    type Stats = BinStats;
    type Params = Edges;
    /// The inner boundaries.
    type Prepared = Vec<f64>;

    fn accepts(&self) -> Accepts {
        NUMERIC
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input.clone().with_data_type(DataType::Int32))
    }

    fn needs_fit(&self) -> bool {
        !matches!(self.bins, Bins::Fixed(_))
    }

    fn new_stats(&self, _: &Field) -> Result<BinStats> {
        Ok(match self.bins {
            Bins::Uniform(_) => BinStats::Range(Extremes::default()),
            _ => BinStats::Quantiles(Quantiles::new(self.bounds)),
        })
    }

    fn finish(&self, column: &str, stats: BinStats) -> Result<Edges> {
        let empty = || {
            Error::bad_data(
                "the column has no values (only nulls or NaN) in the fitted data, so it has no bins; drop it or fill it first",
            )
        };
        let (edges, count, exact, rank_error) = match (&self.bins, stats) {
            (Bins::Uniform(n), BinStats::Range(e)) => {
                if e.count == 0 {
                    return Err(empty());
                }
                let (min, max) = (
                    finite(NAME, column, "minimum", e.min)?,
                    finite(NAME, column, "maximum", e.max)?,
                );
                let edges = if min == max {
                    vec![min, max]
                } else {
                    linspace(min, max, *n)
                };
                (edges, e.count, true, 0.0)
            }
            (Bins::Quantile(n, method), BinStats::Quantiles(q)) => {
                if q.count() == 0 {
                    return Err(empty());
                }
                // numpy: percentiles linspace(0, 100, n + 1), divided by 100.
                let levels: Vec<f64> = linspace(0.0, 100.0, *n).iter().map(|p| p / 100.0).collect();
                let mut edges = q.quantiles(&levels, *method);
                for edge in &edges {
                    finite(NAME, column, "bin edge", *edge)?;
                }
                if edges[0] == edges[*n] {
                    edges = vec![edges[0], edges[*n]];
                } else {
                    // Remove bins whose width is at most 1e-8 (scikit-learn).
                    let mut kept = vec![edges[0]];
                    for pair in edges.windows(2) {
                        if pair[1] - pair[0] > 1e-8 {
                            kept.push(pair[1]);
                        }
                    }
                    edges = kept;
                }
                (edges, q.count(), q.is_exact(), q.rank_error())
            }
            _ => return Err(Error::internal("bucketize statistics of another strategy")),
        };
        let last = edges.len() - 1;
        Ok(Edges {
            min: edges[0],
            max: edges[last],
            // A constant column has edges [min, max] and one bin.
            boundaries: if edges[0] == edges[last] {
                Vec::new()
            } else {
                edges[1..last].to_vec()
            },
            count,
            exact,
            rank_error,
        })
    }

    fn prepare(&self, params: Option<&Edges>, _: &Field) -> Result<Vec<f64>> {
        match (&self.bins, params) {
            (Bins::Fixed(boundaries), _) => Ok(boundaries.clone()),
            (_, Some(edges)) => Ok(edges.boundaries.clone()),
            (_, None) => Err(not_fitted(NAME)),
        }
    }

    fn apply(&self, boundaries: &Vec<f64>, array: &ArrayRef) -> Result<ArrayRef> {
        let values = as_f64(array.as_ref())?;
        let x = values.values();
        // The number of boundaries at or below each value: a branch-free count over a few
        // boundaries, a binary search over many (10 bins, 16 columns of 1M rows: 0.092 s
        // against 0.116 s for the binary search).
        let bins: Vec<i32> = if boundaries.len() <= 32 {
            x.iter()
                .map(|&v| boundaries.iter().map(|&b| i32::from(b <= v)).sum())
                .collect()
        } else {
            x.iter()
                .map(|&v| boundaries.partition_point(|&b| b <= v) as i32)
                .collect()
        };
        let numbers = NullBuffer::new(BooleanBuffer::collect_bool(x.len(), |i| !x[i].is_nan()));
        let nulls = NullBuffer::union(values.nulls(), Some(&numbers));
        Ok(Arc::new(Int32Array::new(bins.into(), nulls)))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Float64Array};
    use mlpipe_plugin_api::arrow::datatypes::Int32Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    fn bins(out: &mlpipe_plugin_api::RecordBatch) -> Vec<Option<i32>> {
        out.column(0).as_primitive::<Int32Type>().iter().collect()
    }

    #[test]
    fn fixed_boundaries_put_equal_values_in_the_upper_bin() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![
                Some(-1.0),
                Some(0.0),
                Some(0.5),
                Some(1.0),
                Some(9.0),
                None,
                Some(f64::NAN),
            ])) as ArrayRef,
        )]);
        let mut t = make(NAME, &json!({"columns": ["x"], "boundaries": [0, 1]}));
        assert!(!t.needs_fit());
        let out = transform(&mut *t, batch);
        assert_eq!(
            bins(&out),
            [Some(0), Some(1), Some(1), Some(2), Some(2), None, None]
        );
    }

    #[test]
    fn fitted_edges_follow_kbins_discretizer() {
        // KBinsDiscretizer(3, encode="ordinal", subsample=None) on 1..=10 (scikit-learn
        // 1.9.1): edges [1, 4, 7, 10] with both strategies, bins 0,0,0,1,1,1,2,2,2,2.
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let batch = batch_of(vec![("x", Arc::new(Float64Array::from(x)) as ArrayRef)]);
        let (params, mut t) =
            fit_in_parts(NAME, &json!({"columns": ["x"], "n_bins": 3}), &batch, 2);
        assert_eq!(params["columns"][0]["boundaries"], json!([4.0, 7.0]));
        let out = transform(&mut *t, batch.clone());
        assert_eq!(bins(&out), [0, 0, 0, 1, 1, 1, 2, 2, 2, 2].map(Some));
        let config = json!({"columns": ["x"], "n_bins": 3, "strategy": "uniform"});
        let (params, mut t) = fit_in_parts(NAME, &config, &batch, 2);
        assert_eq!(params["columns"][0]["boundaries"], json!([4.0, 7.0]));
        let out = transform(&mut *t, batch);
        assert_eq!(bins(&out), [0, 0, 0, 1, 1, 1, 2, 2, 2, 2].map(Some));
    }

    #[test]
    fn constant_columns_have_one_bin_and_duplicate_edges_collapse() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![2.0; 6])) as ArrayRef,
        )]);
        let (params, mut t) =
            fit_in_parts(NAME, &json!({"columns": ["x"], "n_bins": 4}), &batch, 1);
        assert_eq!(params["columns"][0]["boundaries"], json!([]));
        assert_eq!(bins(&transform(&mut *t, batch)), [Some(0); 6]);
        let skewed = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![
                0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0,
            ])) as ArrayRef,
        )]);
        // scikit-learn: edges [0, 0.5, 2] (the empty bins [0, 0] collapse).
        let (params, _) = fit_in_parts(NAME, &json!({"columns": ["x"], "n_bins": 4}), &skewed, 1);
        assert_eq!(params["columns"][0]["boundaries"], json!([0.5]));
    }

    #[test]
    fn bad_configs_are_rejected() {
        for config in [
            json!({"columns": ["x"]}),
            json!({"columns": ["x"], "n_bins": 3, "boundaries": [1]}),
            json!({"columns": ["x"], "boundaries": [1, 1]}),
            json!({"columns": ["x"], "n_bins": 0}),
            json!({"columns": ["x"], "n_bins": 3, "strategy": "kmeans"}),
        ] {
            assert!(crate::testing::try_make(NAME, &config).is_err(), "{config}");
        }
    }
}
