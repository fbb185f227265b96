//! Column selection in the `ml` transforms: the `columns` key every transform reads (see
//! `mlpipe_plugin_api::columns` for the rules), and values cached per input schema.

use std::sync::Arc;

pub(crate) use mlpipe_plugin_api::columns::{Accepts, Selection};
use mlpipe_plugin_api::{ConfigKey, ConfigType, Error, Result, SchemaRef};

/// The config key `columns`, with the transform-specific meaning in `doc`.
pub(crate) fn key(doc: &str) -> ConfigKey {
    ConfigKey::new("columns", ConfigType::StringList, doc).required()
}

/// A value derived from an input schema (resolved columns, an output schema), recomputed
/// only when a batch arrives with different fields.
#[derive(Debug)]
pub(crate) struct PerSchema<T> {
    cached: Option<(SchemaRef, T)>,
}

impl<T> Default for PerSchema<T> {
    fn default() -> Self {
        PerSchema { cached: None }
    }
}

impl<T> PerSchema<T> {
    /// The value for `schema`, computed with `make` when the schema changed.
    pub(crate) fn get(
        &mut self,
        schema: &SchemaRef,
        make: impl FnOnce(&SchemaRef) -> Result<T>,
    ) -> Result<&T> {
        let stale = match &self.cached {
            Some((seen, _)) => !(Arc::ptr_eq(seen, schema) || seen.fields() == schema.fields()),
            None => true,
        };
        if stale {
            self.cached = None;
            let value = make(schema)?;
            self.cached = Some((schema.clone(), value));
        }
        match &self.cached {
            Some((_, value)) => Ok(value),
            None => Err(Error::internal(
                "per-schema cache is empty after filling it",
            )),
        }
    }

    /// Forgets the cached value (after new parameters were loaded).
    pub(crate) fn clear(&mut self) {
        self.cached = None;
    }
}
