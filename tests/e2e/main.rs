//! End-to-end tests: the real `mlpipe-host` binary with real plugin libraries. One test
//! binary, one module per theme.

mod cli;
mod config_errors;
mod csv;
mod failures;
mod ipc;
mod json;
mod kernels;
mod loading;
mod metrics;
mod ml;
mod panics;
mod parquet;
mod quickstart;
mod signals;
mod tensor;
mod zero_copy;
