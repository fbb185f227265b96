//! Mergeable statistics that fitted transforms accumulate per column.

pub(crate) mod extremes;
pub(crate) mod moments;
pub(crate) mod quantiles;
pub(crate) mod vocab;
