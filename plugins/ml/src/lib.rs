//! # mlpipe-plugin-ml
//!
//! The standard plugin of transforms that prepare data for training. For now it holds
//! one transform:
//!
//! - `select` keeps the columns named by a list of names and glob patterns, in the order
//!   of the list (zero copy).
//!
//! Each transform lives in its own module with its unit tests; this file only assembles
//! the plugin and exports it.

mod select;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("ml", env!("CARGO_PKG_VERSION")).transform(
        "select",
        "keeps the columns matching a list of names or glob patterns (`*`, `?`), in list order",
        select::keys(),
        select::Select::from_config,
    )
}

mlpipe_plugin_api::export_plugin!(plugin);
