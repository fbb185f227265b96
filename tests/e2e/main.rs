//! End-to-end tests: the real `mlpipe-host` binary with real plugin libraries. One test
//! binary, one module per theme.

mod ml;
mod quickstart;
