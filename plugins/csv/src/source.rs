//! The `csv` source: its config keys, and the schema it settles on before the run (column
//! names from the header or the config, types declared in the config or inferred from a
//! sample of the first file).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::columns::{Accepts, Selection};
use mlpipe_plugin_api::files::expand;
use mlpipe_plugin_api::{
    ComponentKind, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef,
    Source,
};

use crate::decode::{ColumnSpec, Decoding};
use crate::dialect::{Dialect, NullMarkers, single_byte};
use crate::input::{Files, Origin};
use crate::parallel::resolve_threads;
use crate::reader::{Opening, Options, Reader, header_texts, open_first};
use crate::tokenize::tokenize;
use crate::types::{Evidence, TYPE_NAMES, parse_type};

/// How the source names itself in messages.
const COMPONENT: &str = "source `csv`";

/// The file names a directory given as `path` is searched for.
const EXTENSIONS: [&str; 6] = [".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"];

/// The largest first window read for the inference sample.
const MAX_SAMPLE_BYTES: usize = 256 << 20;

/// The text of one batch per thread at most. The reader holds up to four windows of that
/// (one read into, one tokenized, those the batches being decoded take records from): on
/// the benchmark's 318-byte records and two threads, batches of 65,536 rows made 42 MB
/// windows and a peak RSS of 274-297 MiB for the standard job; 32 MiB (52,700 rows)
/// keeps it at 237-245 MiB, as fast.
const MAX_BATCHES_TEXT: usize = 32 << 20;

/// The config keys of the `csv` source.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "path",
            ConfigType::Paths,
            "the CSV files: a file, a glob pattern, a directory (its .csv, .tsv, .txt files, gzipped or not), or a list of them",
        )
        .required(),
        ConfigKey::new(
            "has_header",
            ConfigType::Boolean,
            "whether each file's first line names the columns",
        )
        .default(true),
        ConfigKey::new(
            "column_names",
            ConfigType::StringList,
            "names for the columns, replacing the header's (or naming the columns of files without one; default column_1, column_2, ...)",
        ),
        ConfigKey::new(
            "schema",
            ConfigType::Table,
            "column types by name, e.g. { id = \"int64\", name = \"utf8 not null\" }; columns not listed are inferred",
        ),
        ConfigKey::new(
            "read_dictionary",
            ConfigType::StringList,
            "text columns (names or glob patterns) to read as dictionaries, Dictionary(Int32, Utf8): each distinct value of a batch is stored once, and encoders (ordinal, one_hot) look up each distinct value once",
        ),
        ConfigKey::new(
            "infer_rows",
            ConfigType::Integer,
            "records of the first file sampled to infer the types of the columns `schema` does not declare; 0 reads them as utf8",
        )
        .default(1000),
        ConfigKey::new("delimiter", ConfigType::String, "the field separator (one byte)")
            .default(","),
        ConfigKey::new(
            "quote",
            ConfigType::String,
            "the quote character (one byte; \"\" for none)",
        )
        .default("\""),
        ConfigKey::new(
            "escape",
            ConfigType::String,
            "inside quotes, makes the next byte literal, e.g. \"\\\\\" (\"\" for none: quotes are doubled)",
        )
        .default(""),
        ConfigKey::new(
            "comment",
            ConfigType::String,
            "lines starting with this byte are skipped (\"\" for none)",
        )
        .default(""),
        ConfigKey::new(
            "null_values",
            ConfigType::StringList,
            "field texts that read as null (a quoted field in a text column never does)",
        )
        .default(vec![""]),
        ConfigKey::new(
            "on_error",
            ConfigType::String,
            "\"fail\": a malformed record stops the run; \"skip\": it is skipped and counted",
        )
        .default("fail"),
        ConfigKey::new(
            "threads",
            ConfigType::Integer,
            "threads that parse (scoped, the calling one included); 0 = one per core",
        )
        .default(0),
    ]
}

/// Reads CSV files; see the crate documentation.
pub(crate) struct CsvSource {
    reader: Reader,
    schema: SchemaRef,
}

impl CsvSource {
    pub(crate) fn from_config(config: &Config) -> Result<CsvSource> {
        let paths: Vec<String> = match config.get::<String>("path") {
            Ok(Some(path)) => vec![path],
            _ => config.require("path")?,
        };
        let options = Options {
            dialect: dialect(config)?,
            has_header: config.require("has_header")?,
            threads: resolve_threads(config.require("threads")?),
            skip_bad: match config.require::<String>("on_error")?.as_str() {
                "fail" => false,
                "skip" => true,
                other => {
                    return Err(Error::config(format!(
                        "key `on_error` of {COMPONENT} must be \"fail\" or \"skip\", not {other:?}"
                    )));
                }
            },
            min_window: 1 << 20,
            max_window: 256 << 20,
            max_batches_text: MAX_BATCHES_TEXT,
            chunks_per_thread: 4,
        };
        let request = SchemaRequest {
            column_names: config.get("column_names")?,
            declared: declared_types(config)?,
            dictionary: config
                .get::<Vec<String>>("read_dictionary")?
                .map(|patterns| {
                    Selection::new(ComponentKind::Source, "csv", "read_dictionary", patterns)
                })
                .transpose()?,
            infer_rows: config.require("infer_rows")?,
            nulls: NullMarkers::new(&config.require::<Vec<String>>("null_values")?),
        };
        let files = expand(&paths, "path", &EXTENSIONS)?;
        CsvSource::open(
            files.into_iter().map(Origin::Path).collect(),
            options,
            request,
        )
    }

    /// Opens the dataset, settles its schema and prepares the reader.
    pub(crate) fn open(
        origins: Vec<Origin>,
        options: Options,
        request: SchemaRequest,
    ) -> Result<CsvSource> {
        let dialect = options.dialect;
        let mut files = Files::new(origins);
        let mut opening = open_first(&mut files, &options)?;
        let file = opening.raw.file.clone();
        let first = &opening.first;
        let header = match options.has_header {
            true => Some(header_texts(
                &opening.raw.buffer[first.start..],
                &first.fields,
                &dialect,
                &file,
            )?),
            false => None,
        };
        let columns = first.fields.len();
        let names = column_names(&request, header.as_deref(), columns, &file)?;
        let data_start = first.start + if options.has_header { first.end } else { 0 };
        let (evidence, record_bytes) = sample(
            &mut files,
            &mut opening,
            data_start,
            columns,
            &request,
            &dialect,
        )?;

        let mut specs = Vec::with_capacity(columns);
        for (name, evidence) in names.iter().zip(evidence) {
            let spec = match request.declared.get(name) {
                Some((data_type, nullable)) => ColumnSpec {
                    name: name.clone(),
                    data_type: data_type.clone(),
                    nullable: *nullable,
                    declared: true,
                },
                None => ColumnSpec {
                    name: name.clone(),
                    data_type: evidence.data_type(),
                    nullable: true,
                    declared: false,
                },
            };
            specs.push(spec);
        }
        if let Some(unknown) = request.declared.keys().find(|name| !names.contains(name)) {
            return Err(Error::config(format!(
                "key `schema` of {COMPONENT} declares column `{unknown}`, which {file} does not have; its columns are: {}",
                names.join(", ")
            )));
        }
        if let Some(selection) = &request.dictionary {
            read_as_dictionary(&mut specs, selection)?;
        }
        let fields: Vec<Field> = specs
            .iter()
            .map(|s| Field::new(&s.name, s.data_type.clone(), s.nullable))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let decoding = Decoding {
            columns: specs,
            schema: schema.clone(),
            dialect,
            nulls: request.nulls,
            skip_bad: options.skip_bad,
            infer_rows: request.infer_rows,
        };
        let reader = Reader::new(options, decoding, header, files, opening, record_bytes);
        Ok(CsvSource { reader, schema })
    }
}

impl Source for CsvSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        self.reader.next_batch(max_rows)
    }

    fn size_hint(&self) -> Option<usize> {
        self.reader.estimated_rows()
    }

    fn memory_usage(&self) -> usize {
        self.reader.memory_usage()
    }

    fn counters(&self) -> Counters {
        vec![
            ("records skipped".to_string(), self.reader.skipped()),
            ("files read".to_string(), self.reader.files_opened()),
        ]
    }
}

/// Text columns, which `read_dictionary` can select.
const TEXT: Accepts = Accepts {
    test: |ty| matches!(ty, DataType::Utf8 | DataType::LargeUtf8),
    what: "text (utf8)",
};

/// Turns the text columns `selection` picks into dictionaries of their text type (int32
/// keys). A column it names must be text, declared or inferred.
fn read_as_dictionary(specs: &mut [ColumnSpec], selection: &Selection) -> Result<()> {
    let fields: Vec<Field> = specs
        .iter()
        .map(|s| Field::new(&s.name, s.data_type.clone(), s.nullable))
        .collect();
    for index in selection.resolve(&Schema::new(fields), TEXT)? {
        let text = specs[index].data_type.clone();
        specs[index].data_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(text));
    }
    Ok(())
}

/// What the config says about the columns.
pub(crate) struct SchemaRequest {
    pub column_names: Option<Vec<String>>,
    /// Declared types (and nullability) by column name.
    pub declared: BTreeMap<String, (mlpipe_plugin_api::arrow::datatypes::DataType, bool)>,
    /// The text columns to read as dictionaries.
    pub dictionary: Option<Selection>,
    pub infer_rows: usize,
    pub nulls: NullMarkers,
}

/// The dialect keys.
fn dialect(config: &Config) -> Result<Dialect> {
    let byte = |key: &str, optional: bool| -> Result<Option<u8>> {
        single_byte(&config.require::<String>(key)?, key, COMPONENT, optional)
    };
    let delimiter = byte("delimiter", false)?.unwrap_or(b',');
    Dialect {
        delimiter,
        quote: byte("quote", true)?,
        escape: byte("escape", true)?,
        comment: byte("comment", true)?,
    }
    .validated(COMPONENT)
}

/// The `schema` table, parsed.
fn declared_types(
    config: &Config,
) -> Result<BTreeMap<String, (mlpipe_plugin_api::arrow::datatypes::DataType, bool)>> {
    let table: BTreeMap<String, String> = config.get("schema")?.unwrap_or_default();
    table
        .into_iter()
        .map(|(name, text)| match parse_type(&text) {
            Some(parsed) => Ok((name, parsed)),
            None => Err(Error::config(format!(
                "key `schema` of {COMPONENT}: column `{name}` has unknown type {text:?}; the types are: {TYPE_NAMES}"
            ))),
        })
        .collect()
}

/// The output's column names: `column_names`, else the header, else `column_1`, ....
fn column_names(
    request: &SchemaRequest,
    header: Option<&[String]>,
    columns: usize,
    file: &str,
) -> Result<Vec<String>> {
    let names = match (&request.column_names, header) {
        (Some(names), _) if names.len() != columns => {
            return Err(Error::config(format!(
                "key `column_names` of {COMPONENT} has {} names, but the records of {file} have {columns} fields",
                names.len()
            )));
        }
        (Some(names), _) => names.clone(),
        (None, Some(header)) => header.to_vec(),
        (None, None) => (1..=columns).map(|i| format!("column_{i}")).collect(),
    };
    let mut seen = HashSet::new();
    if let Some(twice) = names.iter().find(|name| !seen.insert(name.as_str())) {
        return Err(Error::bad_data(format!(
            "{file}:1: column name `{twice}` appears twice; rename the columns with `column_names` (a list of {columns} names)"
        )));
    }
    Ok(names)
}

/// Looks at the first `infer_rows` records of the first file (reading more of it when the
/// first window holds fewer); returns what each column's values looked like and the mean
/// bytes per record.
fn sample(
    files: &mut Files,
    opening: &mut Opening,
    data_start: usize,
    columns: usize,
    request: &SchemaRequest,
    dialect: &Dialect,
) -> Result<(Vec<Evidence>, usize)> {
    let tokens = loop {
        let data = &opening.raw.buffer[data_start..];
        let tokens = tokenize(data, dialect, columns, opening.raw.at_eof);
        if tokens.records() >= request.infer_rows
            || opening.raw.at_eof
            || data.len() >= MAX_SAMPLE_BYTES
        {
            break tokens;
        }
        let more = opening.raw.buffer.len();
        files.extend(&mut opening.raw, more, dialect)?;
    };
    let data = &opening.raw.buffer[data_start..];
    let records = tokens.records().min(request.infer_rows);
    let mut evidence = vec![Evidence::default(); columns];
    let mut scratch = Vec::new();
    for record in 0..records {
        for (column, evidence) in evidence.iter_mut().enumerate() {
            let (start, end) = tokens.field(record, column, columns);
            let text = dialect.unquote(&data[start..end], &mut scratch);
            if !request.nulls.is_null(text) {
                evidence.observe(text);
            }
        }
    }
    let record_bytes = match tokens.records() {
        0 => 100,
        n => tokens.consumed / n,
    };
    Ok((evidence, record_bytes))
}
