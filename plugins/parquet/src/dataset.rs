//! The files of a Parquet dataset, opened: each file's footer (metadata and Arrow schema),
//! the string columns read as dictionaries, the check that every file has the columns the
//! source reads with the same types, and the row groups left to read once the filter's
//! statistics pruning has skipped some.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, UInt64Array};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use mlpipe_plugin_api::columns::Accepts;
use mlpipe_plugin_api::predicate::{Predicate, Statistics};
use mlpipe_plugin_api::{Error, Result};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::{
    FileMetaData, PageIndexPolicy, ParquetMetaDataBuilder, ParquetStatisticsPolicy,
    RowGroupMetaData,
};

use crate::{encryption, guarded, parquet_error};

/// One file of the dataset, with its footer read.
pub(crate) struct DatasetFile {
    pub(crate) path: PathBuf,
    pub(crate) metadata: ArrowReaderMetadata,
    /// For each column the source reads (see [`Columns`]), its index among the file's
    /// top-level columns.
    pub(crate) roots: Vec<usize>,
}

impl DatasetFile {
    /// Opens a file and reads its footer. With `filter`, also the row groups' column
    /// statistics and the page index when the file has one (the reader then skips the
    /// pages a row selection leaves out).
    pub(crate) fn open(path: &Path, filter: bool) -> Result<DatasetFile> {
        let shown = path.display();
        let mut file = File::open(path).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot open the Parquet file: {e} (check the source's `path`)"
            ))
        })?;
        let (page_index, statistics) = if filter {
            (PageIndexPolicy::Optional, ParquetStatisticsPolicy::KeepAll)
        } else {
            (PageIndexPolicy::Skip, ParquetStatisticsPolicy::SkipAll)
        };
        // Size statistics (a recent, optional part of the footer) are not needed to read,
        // and some writers used their field number for something else (an Impala build of
        // parquet-mr: `dict-page-offset-zero.parquet` of parquet-testing).
        let options = ArrowReaderOptions::new()
            .with_page_index_policy(page_index)
            .with_column_stats_policy(statistics)
            .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
        let metadata = guarded(
            || shown.to_string(),
            || {
                ArrowReaderMetadata::load(&file, options.clone())
                    .and_then(|metadata| with_row_groups_rows(metadata, options))
                    .map_err(|e| {
                        let encrypted = e.to_string().to_ascii_lowercase().contains("encrypt");
                        let what = if encrypted {
                            "is encrypted (Parquet modular encryption), and mlpipe cannot decrypt it: write it without encryption"
                        } else {
                            "is not a readable Parquet file"
                        };
                        parquet_error(format!("{shown} {what}"), e)
                    })
            },
        )?;
        // The footer's length was checked by the reader, so it is no huge allocation.
        if encryption::has_plaintext_footer_encryption(&mut file) {
            return Err(Error::bad_data(format!(
                "{shown} is encrypted (Parquet modular encryption, plaintext footer), and mlpipe cannot decrypt it: write it without encryption"
            )));
        }
        let file_bytes = file
            .metadata()
            .map_err(|e| Error::io(format!("{shown}: cannot read the file's size: {e}")))?
            .len();
        let dataset_file = DatasetFile {
            path: path.to_path_buf(),
            metadata,
            roots: Vec::new(),
        };
        dataset_file.check_layout(file_bytes)?;
        Ok(dataset_file)
    }

    /// Checks that every column chunk lies within the file (the reader would panic on a
    /// negative offset, and reads past the end would fail later with a vaguer message).
    fn check_layout(&self, file_bytes: u64) -> Result<()> {
        for (index, group) in self.row_groups().iter().enumerate() {
            for column in group.columns() {
                let start = column
                    .dictionary_page_offset()
                    .unwrap_or_else(|| column.data_page_offset());
                let length = column.compressed_size();
                let end = u64::try_from(start)
                    .ok()
                    .zip(u64::try_from(length).ok())
                    .and_then(|(start, length)| start.checked_add(length));
                if end.is_none_or(|end| end > file_bytes) {
                    return Err(Error::bad_data(format!(
                        "{}: row group {index}, column `{}`: the footer places its data at bytes {start}..{} of a {file_bytes}-byte file; the file is truncated or corrupt",
                        self.path.display(),
                        column.column_path(),
                        start.saturating_add(length)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads the columns `names` as dictionaries (`Dictionary(Int32, T)` of their string or
    /// binary type `T`): the reader then hands out the keys and the dictionary pages as
    /// the file stores them, instead of copying out every value. Each name must be a
    /// column of a type [`dictionary_value`] accepts; a column that already is a
    /// dictionary stays as it is.
    pub(crate) fn read_as_dictionary(&mut self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let schema = self.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in names {
            let Some(index) = fields.iter().position(|f| f.name() == name) else {
                return Err(Error::bad_data(format!(
                    "{}: has no column `{name}`, which `read_dictionary` reads as a dictionary; the files of a dataset must have the same columns",
                    self.path.display()
                )));
            };
            let field = &fields[index];
            if matches!(field.data_type(), DataType::Dictionary(..)) {
                continue;
            }
            let Some(value) = dictionary_value(field.data_type()) else {
                return Err(Error::bad_data(format!(
                    "{}: column `{name}` is of type {}, and only string and binary columns can be read as dictionaries (`read_dictionary`)",
                    self.path.display(),
                    field.data_type()
                )));
            };
            let ty = DataType::Dictionary(Box::new(DataType::Int32), Box::new(value));
            fields[index] = field.clone().with_data_type(ty);
        }
        let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )));
        self.metadata = ArrowReaderMetadata::try_new(self.metadata.metadata().clone(), options)
            .map_err(|e| {
                parquet_error(
                    format!("{}: cannot read dictionary columns", self.path.display()),
                    e,
                )
            })?;
        Ok(())
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }

    pub(crate) fn row_groups(&self) -> &[RowGroupMetaData] {
        self.metadata.metadata().row_groups()
    }

    /// The rows of the file, as its footer states them.
    pub(crate) fn num_rows(&self) -> u64 {
        u64::try_from(self.metadata.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// Uncompressed bytes of the columns the source reads in row group `index`.
    pub(crate) fn read_bytes(&self, index: usize) -> u64 {
        self.bytes(index, |root| self.roots.contains(&root))
    }

    /// Uncompressed bytes of top-level column `root` in row group `index`.
    pub(crate) fn column_bytes(&self, index: usize, root: usize) -> u64 {
        self.bytes(index, |r| r == root)
    }

    /// Uncompressed bytes of the columns whose root `wanted` accepts, in row group `index`.
    fn bytes(&self, index: usize, wanted: impl Fn(usize) -> bool) -> u64 {
        let descriptor = self.metadata.parquet_schema();
        let group = &self.row_groups()[index];
        (0..descriptor.num_columns())
            .filter(|&leaf| wanted(descriptor.get_column_root_idx(leaf)))
            .map(|leaf| u64::try_from(group.column(leaf).uncompressed_size()).unwrap_or(0))
            .sum()
    }

    /// The row groups that may hold rows matching `filter` (all of them without one).
    pub(crate) fn row_groups_to_read(&self, filter: Option<&Predicate>) -> Result<Vec<usize>> {
        let all: Vec<usize> = (0..self.row_groups().len()).collect();
        let Some(filter) = filter else {
            return Ok(all);
        };
        let statistics = guarded(
            || format!("{}: the statistics", self.path.display()),
            || self.statistics(filter),
        )?;
        let may_match = filter.may_match(&statistics)?;
        Ok(all.into_iter().filter(|&i| may_match[i]).collect())
    }

    /// The row groups' statistics of the columns the filter reads. Statistics that cannot
    /// be read (absent, of a nested column, or malformed) are unknown: they prune nothing.
    fn statistics(&self, filter: &Predicate) -> Result<Statistics> {
        let groups = self.row_groups();
        let row_counts: UInt64Array = groups
            .iter()
            .map(|g| u64::try_from(g.num_rows()).ok())
            .collect();
        let mut statistics = Statistics::new(row_counts);
        let schema = self.schema();
        let descriptor = self.metadata.parquet_schema();
        let orders = self.metadata.metadata().file_metadata().column_orders();
        for column in filter.columns() {
            let Ok(converter) = StatisticsConverter::try_new(column, schema, descriptor) else {
                continue;
            };
            let converter = converter
                .with_missing_null_counts_as_zero(false)
                .with_column_orders(orders.map(Vec::as_slice));
            let read = |bounds: parquet::errors::Result<ArrayRef>| bounds.ok();
            let (Some(min), Some(max), Ok(nulls)) = (
                read(converter.row_group_mins(groups)),
                read(converter.row_group_maxes(groups)),
                converter.row_group_null_counts(groups),
            ) else {
                continue;
            };
            if min.len() == groups.len() && max.len() == groups.len() {
                statistics = statistics.with_column(column, min, max, nulls)?;
            }
        }
        Ok(statistics)
    }
}

/// The value type a column of type `ty` has when read as a dictionary: its own, for the
/// string and binary types arrow-rs decodes into dictionaries.
fn dictionary_value(ty: &DataType) -> Option<DataType> {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => {
            Some(ty.clone())
        }
        _ => None,
    }
}

/// Columns that can be read as dictionaries: strings and binaries, and dictionaries of them.
pub(crate) const DICTIONARY_READABLE: Accepts = Accepts {
    test: |ty| match ty {
        DataType::Dictionary(_, value) => dictionary_value(value).is_some(),
        other => dictionary_value(other).is_some(),
    },
    what: "string or binary",
};

/// The metadata with the file's row count set to its row groups' when the two disagree:
/// arrow-rs reads no more rows than the file's count states, and an old parquet-rs wrote 0
/// for files whose row groups hold rows (`repeated_no_annotation.parquet` of
/// parquet-testing, whose 6 rows pyarrow reads).
fn with_row_groups_rows(
    metadata: ArrowReaderMetadata,
    options: ArrowReaderOptions,
) -> parquet::errors::Result<ArrowReaderMetadata> {
    let stated = metadata.metadata().file_metadata().num_rows();
    let held = metadata
        .metadata()
        .row_groups()
        .iter()
        .try_fold(0i64, |sum, group| sum.checked_add(group.num_rows().max(0)));
    let Some(held) = held.filter(|&held| held != stated) else {
        return Ok(metadata);
    };
    let mut builder = Arc::unwrap_or_clone(metadata.metadata().clone()).into_builder();
    let (row_groups, page_index) = (builder.take_row_groups(), builder.take_page_index());
    let file = builder.build();
    let file = file.file_metadata();
    let corrected = FileMetaData::new(
        file.version(),
        held,
        file.created_by().map(String::from),
        file.key_value_metadata().cloned(),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let rebuilt = ParquetMetaDataBuilder::new(corrected)
        .set_row_groups(row_groups)
        .set_page_index(page_index)
        .build();
    ArrowReaderMetadata::try_new(Arc::new(rebuilt), options)
}

/// The columns a source reads: its output columns, then the columns its filter reads.
pub(crate) struct Columns {
    /// The schema of every batch the source returns.
    pub(crate) output: SchemaRef,
    /// The schema of the batches the filter is evaluated on (its columns, all nullable),
    /// or `None` without a filter.
    pub(crate) filter: Option<SchemaRef>,
    /// Every column read, as the first file has it: the output's, then the filter's
    /// (which may repeat some).
    read: Vec<Field>,
}

impl Columns {
    /// The columns to read from a dataset whose first file has `schema`: `wanted` (all
    /// when `None`), and the filter's. Unknown or repeated names are config errors.
    pub(crate) fn plan(
        first: &Path,
        schema: &Schema,
        wanted: Option<&[String]>,
        filter: Option<&Predicate>,
    ) -> Result<Columns> {
        let output: Vec<Field> = match wanted {
            None => schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
            Some([]) => {
                return Err(Error::config(
                    "key `columns` of source `parquet` is empty; list the columns to read, or omit the key to read them all",
                ));
            }
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    if names[..i].contains(name) {
                        return Err(Error::config(format!(
                            "key `columns` of source `parquet` lists `{name}` twice; list each column once"
                        )));
                    }
                    let field = schema.field_with_name(name).map_err(|_| {
                        let available: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        Error::config(format!(
                            "key `columns` of source `parquet`: {} has no column `{name}`; its columns are: {}",
                            first.display(),
                            available.join(", ")
                        ))
                    })?;
                    Ok(field.clone())
                })
                .collect::<Result<_>>()?,
        };
        let filter: Option<Vec<Field>> = match filter {
            None => None,
            Some(filter) => {
                filter.check(schema).map_err(|e| {
                    e.context(format!(
                        "key `filter` of source `parquet` ({})",
                        first.display()
                    ))
                })?;
                let fields = filter
                    .columns()
                    .into_iter()
                    .map(|name| Ok(schema.field_with_name(name)?.clone().with_nullable(true)))
                    .collect::<Result<_>>()?;
                Some(fields)
            }
        };
        let mut read = output.clone();
        read.extend(filter.iter().flatten().cloned());
        Ok(Columns {
            output: Arc::new(Schema::new(output)),
            filter: filter.map(|fields| Arc::new(Schema::new(fields))),
            read,
        })
    }

    /// Finds the columns in `file`, which must have each with the type the first file
    /// (`first`) has, and widens the output's nullability to the file's.
    pub(crate) fn locate(&mut self, file: &mut DatasetFile, first: &Path) -> Result<()> {
        let schema = file.schema().clone();
        let mut roots = Vec::with_capacity(self.read.len());
        for expected in &self.read {
            let name = expected.name();
            let Some((index, field)) = schema.column_with_name(name) else {
                return Err(Error::bad_data(format!(
                    "{}: has no column `{name}`, which {} has; the files of a dataset must have the same columns",
                    file.path.display(),
                    first.display()
                )));
            };
            if field.data_type() != expected.data_type() {
                return Err(Error::bad_data(format!(
                    "{}: column `{name}` is of type {} here but of type {} in {}; the files of a dataset must have the same schema",
                    file.path.display(),
                    field.data_type(),
                    expected.data_type(),
                    first.display()
                )));
            }
            roots.push(index);
        }
        let widened: Vec<Field> = self
            .output
            .fields()
            .iter()
            .zip(&roots)
            .map(|(field, &root)| {
                let nullable = field.is_nullable() || schema.field(root).is_nullable();
                field.as_ref().clone().with_nullable(nullable)
            })
            .collect();
        self.output = Arc::new(Schema::new(widened));
        file.roots = roots;
        Ok(())
    }
}
