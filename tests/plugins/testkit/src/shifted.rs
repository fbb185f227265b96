//! Kernel `log1p`, a stand-in for the standard one with the same signature (`(x: T) -> T`,
//! nulls kept) but an unmistakable result: `x + shift`. A pipeline that picks it in
//! `[pipeline.kernels]` shows, through its output, which implementation ran.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{ArrayRef, AsArray};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Error, Kernel, Result};

/// The config keys of the kernel.
pub fn keys() -> Vec<ConfigKey> {
    vec![ConfigKey::new("shift", ConfigType::Float, "what is added to every value").default(1000.0)]
}

/// Adds `shift` to every value of a float32 or float64 column.
pub struct Shifted {
    shift: f64,
}

impl Shifted {
    pub fn from_config(config: &Config) -> Result<Shifted> {
        Ok(Shifted {
            shift: config.require("shift")?,
        })
    }
}

impl Kernel for Shifted {
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
        let shift = self.shift;
        match args {
            [x] => match x.data_type() {
                DataType::Float64 => Ok(Arc::new(
                    x.as_primitive::<Float64Type>()
                        .unary::<_, Float64Type>(|v| v + shift),
                )),
                DataType::Float32 => Ok(Arc::new(
                    x.as_primitive::<Float32Type>()
                        .unary::<_, Float32Type>(|v| v + shift as f32),
                )),
                other => Err(Error::bad_data(format!(
                    "kernel `testkit/log1p`: x is {other}, not float32 or float64"
                ))),
            },
            _ => Err(Error::bad_data(format!(
                "kernel `testkit/log1p` takes 1 argument, got {}",
                args.len()
            ))),
        }
    }
}
