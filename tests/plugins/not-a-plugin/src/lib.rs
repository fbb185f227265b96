//! A shared library that loads fine but exports no mlpipe root module, like `libz.so`
//! would: the host must say it is not a plugin, not crash.

/// A C function, so that the library exports something.
#[unsafe(no_mangle)]
pub extern "C" fn mlpipe_test_answer() -> u32 {
    42
}
