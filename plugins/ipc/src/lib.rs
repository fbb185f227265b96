//! # mlpipe-plugin-ipc
//!
//! The standard Arrow IPC plugin:
//!
//! - source `ipc` reads Arrow IPC files and streams: a file, a list, a glob or a directory, or
//!   standard input (`path = "-"`). The format is told by the first bytes (`ARROW1` starts a
//!   file). Files are memory-mapped and decoded without copying: the arrays of a batch point
//!   into the mapping. Every message is checked before arrow-rs decodes it (see [`message`]),
//!   so a malformed input is an error naming the file, never a panic.
//! - sink `ipc` writes the IPC file format (random access, `.arrow`), sink `ipc_stream` the
//!   stream format, to a file or to standard output (`path = "-"`, flushed after every
//!   batch, for a reader such as `pyarrow.ipc.open_stream(sys.stdin.buffer)`). Files are
//!   written atomically.

mod file_format;
mod input;
mod message;
mod pages;
mod sink;
mod source;
mod stream_format;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("ipc", env!("CARGO_PKG_VERSION"))
        .source(
            "ipc",
            "reads Arrow IPC files or streams (memory-mapped, zero copy), or a stream from standard input",
            source::keys(),
            source::IpcSource::from_config,
        )
        .sink(
            "ipc",
            "writes an Arrow IPC file atomically (temporary file, renamed on success)",
            sink::keys(sink::Format::File),
            |config| sink::IpcSink::from_config(config, sink::Format::File),
        )
        .sink(
            "ipc_stream",
            "writes an Arrow IPC stream to a file (atomically) or to standard output (`path = \"-\"`, flushed after every batch)",
            sink::keys(sink::Format::Stream),
            |config| sink::IpcSink::from_config(config, sink::Format::Stream),
        )
}

mlpipe_plugin_api::export_plugin!(plugin);

#[cfg(test)]
mod tests;
