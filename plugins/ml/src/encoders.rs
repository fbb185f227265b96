//! What the encoders that fit categories (`ordinal`, `one_hot`) share: the frequency keys
//! (`min_frequency`, `max_categories`) and the fitted categories of a column.

use mlpipe_plugin_api::arrow::datatypes::DataType;
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::stats::vocab::{Category, Counts, Lookup, infrequent};

/// The config keys shared by the encoders that fit categories (`ordinal`, `one_hot`).
pub(crate) fn frequency_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "min_frequency",
            ConfigType::Float,
            "categories seen fewer times (a count, or a fraction of the rows when below 1) are grouped as infrequent",
        ),
        ConfigKey::new(
            "max_categories",
            ConfigType::Integer,
            "at most this many outputs per column, the infrequent group included",
        ),
    ]
}

/// How infrequent categories are found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frequency {
    min_frequency: Option<f64>,
    max_categories: Option<usize>,
}

impl Frequency {
    /// Reads and checks `min_frequency` and `max_categories` of `component`.
    pub(crate) fn from_config(config: &Config, component: &str) -> Result<Frequency> {
        let min_frequency: Option<f64> = config.get("min_frequency")?;
        if let Some(min) = min_frequency
            && !(min > 0.0 && (min < 1.0 || min.fract() == 0.0))
        {
            return Err(Error::config(format!(
                "key `min_frequency` of transform `{component}` must be a whole count of at least 1 or a fraction between 0 and 1, not {min}"
            )));
        }
        let max_categories: Option<usize> = config.get("max_categories")?;
        if max_categories == Some(0) {
            return Err(Error::config(format!(
                "key `max_categories` of transform `{component}` must be at least 1"
            )));
        }
        Ok(Frequency {
            min_frequency,
            max_categories,
        })
    }

    /// Splits the sorted categories of `counts` into frequent and infrequent ones; with
    /// `null_category`, missing values count as one more category, sorted last (as
    /// scikit-learn's `OneHotEncoder` treats None and NaN).
    pub(crate) fn split(
        &self,
        counts: Counts,
        null_category: bool,
    ) -> (Vec<Category>, Vec<Category>, u64) {
        let missing = counts.missing();
        let mut sorted = counts.into_sorted();
        if null_category && missing > 0 {
            sorted.push((Category::Null, missing));
        }
        let rows =
            sorted.iter().map(|(_, c)| c).sum::<u64>() + if null_category { 0 } else { missing };
        // A fraction is of all rows, missing ones included, as in scikit-learn.
        let min = self
            .min_frequency
            .map(|min| if min < 1.0 { min * rows as f64 } else { min });
        let counts: Vec<u64> = sorted.iter().map(|(_, c)| *c).collect();
        let mask = infrequent(&counts, min, self.max_categories);
        let (mut frequent, mut rare) = (Vec::new(), Vec::new());
        for ((category, _), is_rare) in sorted.into_iter().zip(mask) {
            if is_rare {
                rare.push(category);
            } else {
                frequent.push(category);
            }
        }
        (frequent, rare, missing)
    }
}

/// One column's fitted categories.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Categories {
    pub categories: Vec<Category>,
    #[serde(default)]
    pub infrequent: Vec<Category>,
    #[serde(default)]
    pub missing: u64,
}

impl Categories {
    /// Every category, frequent ones first, and the lookup over them for a column of type
    /// `ty`.
    pub(crate) fn lookup(&self, ty: &DataType) -> Result<Lookup> {
        let all: Vec<Category> = self
            .categories
            .iter()
            .chain(&self.infrequent)
            .cloned()
            .collect();
        Lookup::new(&all, ty)
    }
}
