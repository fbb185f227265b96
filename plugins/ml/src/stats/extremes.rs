//! The smallest and largest value of a numeric column (nulls and NaN ignored, as
//! scikit-learn's `nanmin`/`nanmax`), merged by taking the min of the mins and the max of
//! the maxes.

use mlpipe_plugin_api::Result;
use mlpipe_plugin_api::arrow::array::Array;

use crate::fitting::Stats;
use crate::numeric::{as_f64, min_max_valid};
use crate::wire::{Reader, Writer};

/// The range of the non-missing values of a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Extremes {
    pub min: f64,
    pub max: f64,
    /// Non-missing values.
    pub count: u64,
    /// Nulls and NaN.
    pub missing: u64,
}

impl Default for Extremes {
    fn default() -> Self {
        Extremes {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count: 0,
            missing: 0,
        }
    }
}

impl Stats for Extremes {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        let values = as_f64(array)?;
        let (min, max, count) = min_max_valid(values.values(), values.nulls());
        self.merge(Extremes {
            min,
            max,
            count,
            missing: values.len() as u64 - count,
        })
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.missing += other.missing;
        Ok(())
    }

    fn encode(&self, out: &mut Writer) {
        out.f64(self.min);
        out.f64(self.max);
        out.u64(self.count);
        out.u64(self.missing);
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        Ok(Extremes {
            min: input.f64()?,
            max: input.f64()?,
            count: input.u64()?,
            missing: input.u64()?,
        })
    }
}
