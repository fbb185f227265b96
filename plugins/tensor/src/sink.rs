//! The `tensor` sink: buffers rows into a shard (features row-major float32, labels raw),
//! writes each full shard as `.npy` files and/or a `.safetensors` file into a temporary
//! directory, and on `flush` writes `index.json` and renames the directory into place.

use std::collections::HashMap;
use std::path::PathBuf;

use mlpipe_plugin_api::arrow::datatypes::ToByteSlice;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Sink,
};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;
use serde_json::json;

use crate::layout::Layout;
use crate::npy;
use crate::output_dir::{INDEX_FILE, PendingDir};

/// The config keys of the sink.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the output directory").required(),
        ConfigKey::new(
            "features",
            ConfigType::StringList,
            "feature columns, in order: numeric columns (cast to float32) and fixed-size lists of numbers",
        )
        .required(),
        ConfigKey::new("label", ConfigType::String, "the label column (boolean, integer or float)"),
        ConfigKey::new("batch_size", ConfigType::Integer, "rows per training batch").default(256),
        ConfigKey::new(
            "drop_last",
            ConfigType::Boolean,
            "drop the last batch when it has fewer than batch_size rows",
        )
        .default(false),
        ConfigKey::new(
            "rows_per_shard",
            ConfigType::Integer,
            "rows per shard, rounded down to whole batches (at least one)",
        )
        .default(262_144),
        ConfigKey::new(
            "formats",
            ConfigType::StringList,
            "shard formats: \"npy\" (features.npy + labels.npy) and/or \"safetensors\"",
        )
        .default(json!(["npy"])),
        ConfigKey::new(
            "fill",
            ConfigType::Float,
            "the value of null features (without it a null feature is an error)",
        ),
        ConfigKey::new("overwrite", ConfigType::Boolean, "replace an existing output directory (an empty one, or a tensor sink's output)")
            .default(false),
    ]
}

/// The version of the index file's layout.
const INDEX_VERSION: u32 = 1;

/// One written shard, as the index lists it.
#[derive(Debug, Serialize)]
struct Shard {
    rows: usize,
    batches: usize,
    /// File names per tensor (`features`, `labels`) for `.npy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    npy: Option<HashMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safetensors: Option<String>,
    /// Shapes per tensor.
    shapes: HashMap<&'static str, Vec<usize>>,
}

/// The sink. See the crate docs for the output layout.
#[derive(Debug)]
pub(crate) struct TensorSink {
    path: PathBuf,
    feature_columns: Vec<String>,
    label_column: Option<String>,
    batch_size: usize,
    drop_last: bool,
    rows_per_shard: usize,
    npy: bool,
    safetensors: bool,
    fill: Option<f32>,
    overwrite: bool,
    /// Set by `begin`.
    layout: Option<Layout>,
    output: Option<PendingDir>,
    /// The shard being filled.
    features: Vec<f32>,
    labels: Vec<u8>,
    shard_rows: usize,
    /// Rows consumed so far (written or buffered).
    rows_seen: u64,
    shards: Vec<Shard>,
}

impl TensorSink {
    pub(crate) fn from_config(config: &Config) -> Result<TensorSink> {
        let positive = |key: &str| -> Result<usize> {
            let value: i64 = config.require(key)?;
            usize::try_from(value)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    Error::config(format!("key `{key}` must be at least 1, not {value}"))
                })
        };
        let batch_size = positive("batch_size")?;
        let rows_per_shard = (positive("rows_per_shard")? / batch_size).max(1) * batch_size;
        let formats: Vec<String> = config.require("formats")?;
        if formats.is_empty() {
            return Err(Error::config(
                "key `formats` is empty; use [\"npy\"], [\"safetensors\"] or both",
            ));
        }
        if let Some(unknown) = formats.iter().find(|f| *f != "npy" && *f != "safetensors") {
            return Err(Error::config(format!(
                "key `formats`: unknown format `{unknown}`; use \"npy\" and/or \"safetensors\""
            )));
        }
        let features: Vec<String> = config.require("features")?;
        if features.is_empty() {
            return Err(Error::config(
                "key `features` is empty; name at least one column",
            ));
        }
        Ok(TensorSink {
            path: config.require("path")?,
            feature_columns: features,
            label_column: config.get("label")?,
            batch_size,
            drop_last: config.require("drop_last")?,
            rows_per_shard,
            npy: formats.iter().any(|f| f == "npy"),
            safetensors: formats.iter().any(|f| f == "safetensors"),
            fill: config.get::<f64>("fill")?.map(|f| f as f32),
            overwrite: config.require("overwrite")?,
            layout: None,
            output: None,
            features: Vec::new(),
            labels: Vec::new(),
            shard_rows: 0,
            rows_seen: 0,
            shards: Vec::new(),
        })
    }

    fn layout(&self) -> Result<&Layout> {
        self.layout
            .as_ref()
            .ok_or_else(|| Error::internal("tensor sink: used before `begin`"))
    }

    /// Writes the buffered rows as the next shard.
    fn write_shard(&mut self) -> Result<()> {
        let layout = self.layout()?;
        let dir = self
            .output
            .as_ref()
            .ok_or_else(|| Error::internal("tensor sink: no output directory"))?
            .dir()
            .to_path_buf();
        let rows = self.shard_rows;
        let name = format!("shard-{:05}", self.shards.len());
        let mut shapes = HashMap::from([("features", vec![rows, layout.width])]);
        if layout.label.is_some() {
            shapes.insert("labels", vec![rows]);
        }
        let features = self.features.to_byte_slice();
        let npy = if self.npy {
            let mut files = HashMap::new();
            let file = format!("{name}.features.npy");
            npy::write(&dir.join(&file), "<f4", &shapes["features"], features)?;
            files.insert("features", file);
            if let Some(label) = &layout.label {
                let file = format!("{name}.labels.npy");
                npy::write(
                    &dir.join(&file),
                    label.descr,
                    &shapes["labels"],
                    &self.labels,
                )?;
                files.insert("labels", file);
            }
            Some(files)
        } else {
            None
        };
        let safetensors = if self.safetensors {
            let file = format!("{name}.safetensors");
            let failed = |e: safetensors::SafeTensorError| {
                Error::io(format!("{}: cannot write: {e}", dir.join(&file).display()))
            };
            let mut tensors = vec![(
                "features",
                TensorView::new(Dtype::F32, shapes["features"].clone(), features)
                    .map_err(failed)?,
            )];
            if let Some(label) = &layout.label {
                let view = TensorView::new(label.dtype, shapes["labels"].clone(), &self.labels);
                tensors.push(("labels", view.map_err(failed)?));
            }
            let names = serde_json::to_string(&layout.feature_names())
                .map_err(|e| Error::internal(e.to_string()))?;
            let metadata = HashMap::from([("feature_names".to_string(), names)]);
            let path = dir.join(&file);
            safetensors::serialize_to_file(tensors, Some(metadata), &path).map_err(failed)?;
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(format!("{}: cannot sync: {e}", path.display())))?;
            Some(file)
        } else {
            None
        };
        self.shards.push(Shard {
            rows,
            batches: rows.div_ceil(self.batch_size),
            npy,
            safetensors,
            shapes,
        });
        self.features.clear();
        self.labels.clear();
        self.shard_rows = 0;
        Ok(())
    }

    fn index(&self) -> Result<serde_json::Value> {
        let layout = self.layout()?;
        let columns: Vec<_> = layout
            .features
            .iter()
            .map(|c| json!({ "name": c.name, "offset": c.offset, "width": c.width }))
            .collect();
        Ok(json!({
            "format_version": INDEX_VERSION,
            "rows": self.shards.iter().map(|s| s.rows).sum::<usize>(),
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
            "rows_per_shard": self.rows_per_shard,
            "features": {
                "dtype": "float32",
                "width": layout.width,
                "names": layout.feature_names(),
                "columns": columns,
            },
            "label": layout.label.as_ref().map(|l| json!({ "name": l.name, "dtype": l.numpy_name })),
            "shards": self.shards,
        }))
    }
}

impl Sink for TensorSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        self.layout = Some(Layout::new(
            schema,
            &self.feature_columns,
            self.label_column.as_deref(),
        )?);
        self.output = Some(PendingDir::create(&self.path, self.overwrite)?);
        Ok(())
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        if self.layout.is_none() {
            self.begin(&batch.schema())?;
        }
        let mut start = 0;
        while start < batch.num_rows() {
            let take = (self.rows_per_shard - self.shard_rows).min(batch.num_rows() - start);
            let layout = self
                .layout
                .as_ref()
                .ok_or_else(|| Error::internal("tensor sink: used before `begin`"))?;
            layout.append(
                &batch.slice(start, take),
                self.rows_seen,
                self.fill,
                &mut self.features,
                &mut self.labels,
            )?;
            self.shard_rows += take;
            self.rows_seen += take as u64;
            start += take;
            if self.shard_rows == self.rows_per_shard {
                self.write_shard()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let partial = self.shard_rows % self.batch_size;
        if self.drop_last && partial > 0 {
            let keep = self.shard_rows - partial;
            let layout = self.layout()?;
            let label_bytes = self.labels.len() / self.shard_rows;
            self.features.truncate(keep * layout.width);
            self.labels.truncate(keep * label_bytes);
            self.shard_rows = keep;
        }
        if self.shard_rows > 0 {
            self.write_shard()?;
        }
        let output = self
            .output
            .take()
            .ok_or_else(|| Error::internal("tensor sink: flushed before `begin`"))?;
        let index = serde_json::to_vec_pretty(&self.index()?)
            .map_err(|e| Error::internal(e.to_string()))?;
        let path = output.dir().join(INDEX_FILE);
        std::fs::write(&path, index)
            .and_then(|()| std::fs::File::open(&path)?.sync_all())
            .map_err(|e| Error::io(format!("{}: cannot write: {e}", path.display())))?;
        output.commit()
    }

    fn memory_usage(&self) -> usize {
        self.features.capacity() * size_of::<f32>() + self.labels.capacity()
    }

    fn counters(&self) -> Counters {
        vec![
            (
                "rows written".to_string(),
                self.shards.iter().map(|s| s.rows as u64).sum(),
            ),
            ("shards written".to_string(), self.shards.len() as u64),
        ]
    }
}
