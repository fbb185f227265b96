//! # mlpipe-plugin-ml
//!
//! The standard plugin of transforms that prepare data for training, with scikit-learn's
//! semantics where scikit-learn has a twin. Fitted transforms (`standardize`, ...) learn
//! their parameters in a fit pass the host runs first: every instance accumulates
//! mergeable statistics over its share of the batches, the host merges them, and the
//! fitted parameters come back as versioned JSON (see `README.md` for every transform's
//! keys, semantics and parameter format).
//!
//! Layout: `columns` (selection by name and glob), `numeric` (numeric types and vectorised
//! maps), `wire` (fit partials), `fitting` (per-column statistics and the JSON form of
//! parameters), `columnwise` (the generic in-place column transform), `stats` (mergeable
//! statistics); then one module per transform. This file only assembles the plugin.

mod augment;
mod bucketize;
mod cast;
mod columns;
mod columnwise;
mod elementwise;
mod encoders;
mod fill_null;
mod filter;
mod fitting;
mod hash_bucket;
mod hashing;
mod kernels;
mod min_max;
mod normalize;
mod numeric;
mod one_hot;
mod ordinal;
mod random;
mod rename;
mod robust;
mod select;
mod shuffle;
mod split;
mod standardize;
mod stats;
mod synthetic;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod throughput;
mod to_tensor;
mod validate;
mod wire;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("ml", env!("CARGO_PKG_VERSION"))
        .source(
            "synthetic",
            "generates a seeded dataset from a schema (per-row reproducible values)",
            synthetic::keys(),
            synthetic::Synthetic::from_config,
        )
        .transform(
            "select",
            "keeps the columns matching a list of names or glob patterns (`*`, `?`), in list order",
            select::select_keys(),
            select::Projection::select,
        )
        .transform(
            "drop",
            "removes the columns matching a list of names or glob patterns",
            select::drop_keys(),
            select::Projection::drop,
        )
        .transform(
            "rename",
            "renames columns by a table old = \"new\"",
            rename::keys(),
            rename::Rename::from_config,
        )
        .transform(
            "cast",
            "converts columns to another type (arrow cast kernels); unconvertible values fail or become null",
            cast::keys(),
            cast::from_config,
        )
        .transform(
            "filter",
            "keeps the rows where a predicate is true (comparisons, and/or/not, is null, in [...])",
            filter::filter_keys(),
            filter::Filter::from_config,
        )
        .transform(
            "drop_nulls",
            "drops the rows with missing values in the selected columns",
            filter::drop_nulls_keys(),
            filter::DropNulls::from_config,
        )
        .transform(
            "validate",
            "checks rows against rules (ranges, allowed values, nulls, types, uniqueness, null rates); fails, drops or quarantines violations",
            validate::keys(),
            validate::Validate::from_config,
        )
        .transform(
            "fill_null",
            "fills missing values with the mean, the median, the most frequent value or a constant (scikit-learn SimpleImputer; fitted)",
            fill_null::keys(),
            fill_null::from_config,
        )
        .transform(
            "min_max",
            "scales numeric columns to a range (scikit-learn MinMaxScaler; fitted)",
            min_max::keys(),
            min_max::from_config,
        )
        .transform(
            "one_hot",
            "replaces categorical columns by 0/1 indicators (scikit-learn OneHotEncoder; fitted)",
            one_hot::keys(),
            one_hot::from_config,
        )
        .transform(
            "robust",
            "scales numeric columns by their median and interquartile range (scikit-learn RobustScaler; fitted)",
            robust::keys(),
            robust::from_config,
        )
        .transform(
            "bucketize",
            "discretizes numeric columns into bins: fixed boundaries, or fitted quantile / uniform bins (scikit-learn KBinsDiscretizer)",
            bucketize::keys(),
            bucketize::from_config,
        )
        .transform(
            "clip",
            "bounds numeric values to [min, max]",
            elementwise::clip_keys(),
            elementwise::clip,
        )
        .transform(
            "log1p",
            "maps numeric values to ln(1 + x)",
            elementwise::log1p_keys(),
            elementwise::log1p,
        )
        .transform(
            "normalize",
            "scales each row of list / fixed-size-list float columns to unit L2, L1 or max norm (scikit-learn Normalizer)",
            normalize::keys(),
            normalize::from_config,
        )
        .transform(
            "ordinal",
            "encodes categories as int32 positions in their sorted list (scikit-learn OrdinalEncoder; fitted)",
            ordinal::keys(),
            ordinal::from_config,
        )
        .transform(
            "hash_bucket",
            "maps string or integer values to N buckets by a pinned hash (MurmurHash3_x86_32)",
            hash_bucket::keys(),
            hash_bucket::from_config,
        )
        .transform(
            "gaussian_noise",
            "adds seeded Gaussian noise, reproducible per row (keyed by a row id column)",
            augment::noise_keys(),
            augment::Augment::noise,
        )
        .transform(
            "random_mask",
            "masks values (null or a number) at a rate, seeded and reproducible per row",
            augment::mask_keys(),
            augment::Augment::mask,
        )
        .transform(
            "split",
            "assigns rows to train/validation/test parts by a pinned hash of a key column",
            split::keys(),
            split::Split::from_config,
        )
        .transform(
            "to_tensor",
            "packs numeric and fixed-size-list columns into one FixedSizeList<float32> column tagged arrow.fixed_shape_tensor",
            to_tensor::keys(),
            to_tensor::ToTensor::from_config,
        )
        .transform(
            "shuffle",
            "shuffles rows through a seeded buffer of buffer_rows rows",
            shuffle::shuffle_keys(),
            shuffle::Shuffle::from_config,
        )
        .transform(
            "sample",
            "keeps a seeded fraction of the rows (per row by a key column, whatever the workers)",
            shuffle::sample_keys(),
            shuffle::Sample::from_config,
        )
        .transform(
            "standardize",
            "scales numeric columns to zero mean and unit variance (scikit-learn StandardScaler; fitted)",
            standardize::keys(),
            standardize::from_config,
        )
}

// Not in the unit tests: they link the simd plugin's library in process for its kernels, and
// two plugins' exports in one binary would be the same symbol.
#[cfg(not(test))]
mlpipe_plugin_api::export_plugin!(plugin);
