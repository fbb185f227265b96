//! Record batches and schemas across the boundary, as Arrow C Data Interface structs.
//!
//! A batch crosses as one `FFI_ArrowArray` of struct type plus its `FFI_ArrowSchema`
//! (which keeps field metadata and the schema's own metadata). Ownership moves with the
//! struct: whoever holds an [`FfiBatch`] owns it, and dropping it calls the producer's
//! `release` callback exactly once. No buffer is copied, unless it is under-aligned.
//!
//! Both structs are wrapped with `#[sabi(unsafe_opaque_field)]`, which turns off
//! `abi_stable`'s layout check for them; their size and alignment, fixed by the C Data
//! Interface specification, are asserted in the tests below instead.

use std::sync::Arc;

use abi_stable::StableAbi;
use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_data::{BufferSpec, layout};

use crate::error::{Error, Result};

/// A record batch in C Data Interface form.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiBatch {
    #[sabi(unsafe_opaque_field)]
    array: FFI_ArrowArray,
    #[sabi(unsafe_opaque_field)]
    schema: FFI_ArrowSchema,
}

/// A schema in C Data Interface form.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiSchema {
    #[sabi(unsafe_opaque_field)]
    schema: FFI_ArrowSchema,
}

/// What importing a batch found beyond its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Buffers that were under-aligned for their type and had to be copied.
    pub realigned_buffers: usize,
}

impl FfiSchema {
    /// Exports a schema.
    pub fn export(schema: &Schema) -> Result<FfiSchema> {
        let schema = FFI_ArrowSchema::try_from(schema)
            .map_err(|e| Error::internal(format!("cannot export schema: {e}")))?;
        Ok(FfiSchema { schema })
    }

    /// Imports a schema; a schema that does not convert is an error, never an empty schema.
    pub fn import(&self) -> Result<SchemaRef> {
        Schema::try_from(&self.schema)
            .map(Arc::new)
            .map_err(|e| Error::bad_data(format!("malformed schema: {e}")))
    }
}

impl FfiBatch {
    /// Exports a batch without copying its buffers.
    pub fn export(batch: RecordBatch) -> Result<FfiBatch> {
        let schema = FFI_ArrowSchema::try_from(batch.schema().as_ref())
            .map_err(|e| Error::internal(format!("cannot export batch schema: {e}")))?;
        let array = FFI_ArrowArray::new(&StructArray::from(batch).into_data());
        Ok(FfiBatch { array, schema })
    }

    /// Imports a batch, checking its structure first: arrow-rs trusts what it imports,
    /// so a malformed array from a plugin must be caught here, as an error, not a panic.
    pub fn import(self) -> Result<(RecordBatch, ImportStats)> {
        let schema = Arc::new(
            Schema::try_from(&self.schema)
                .map_err(|e| Error::bad_data(format!("malformed batch schema: {e}")))?,
        );
        let struct_type = DataType::Struct(schema.fields().clone());
        let mut stats = ImportStats::default();
        check_structure(&self.array, &struct_type, "batch", 0, &mut stats)?;
        // SAFETY: the array and schema come from a producer bound by the C Data Interface
        // (the plugin ABI contract), `check_structure` has verified that buffer and child
        // counts and pointers match the type, and `validate_full` below checks offsets,
        // lengths and values before anything reads the data.
        let data = unsafe { from_ffi(self.array, &self.schema) }
            .map_err(|e| Error::bad_data(format!("malformed batch: {e}")))?;
        data.validate_full()
            .map_err(|e| Error::bad_data(format!("malformed batch: {e}")))?;
        let struct_array = StructArray::from(data);
        if struct_array.null_count() > 0 {
            return Err(Error::bad_data(
                "malformed batch: the top-level struct array has nulls",
            ));
        }
        let rows = struct_array.len();
        let (_, columns, _) = struct_array.into_parts();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema, columns, &options)
            .map_err(|e| Error::bad_data(format!("malformed batch: {e}")))?;
        Ok((batch, stats))
    }
}

/// Exports arrays as the columns `arg0, arg1, …` of a batch (kernel arguments).
pub(crate) fn arrays_to_batch(arrays: &[ArrayRef]) -> Result<RecordBatch> {
    let columns = arrays
        .iter()
        .enumerate()
        .map(|(i, array)| (format!("arg{i}"), array.clone()));
    if arrays.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    }
    RecordBatch::try_from_iter(columns).map_err(Error::from)
}

const MAX_DEPTH: usize = 64;

/// Checks that an imported array has the buffers, children and dictionary its type
/// requires, with non-null pointers, and counts under-aligned buffers.
fn check_structure(
    array: &FFI_ArrowArray,
    data_type: &DataType,
    path: &str,
    depth: usize,
    stats: &mut ImportStats,
) -> Result<()> {
    let fail = |what: String| {
        Err(Error::bad_data(format!(
            "malformed array at {path}: {what}"
        )))
    };
    if depth > MAX_DEPTH {
        return fail(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    if array.is_released() {
        return fail("it was already released".to_string());
    }
    let (value_type, expects_dictionary) = match data_type {
        DataType::Dictionary(key, value) => (key.as_ref(), Some(value.as_ref())),
        other => (other, None),
    };
    let spec = layout(value_type);
    let expected_buffers = spec.buffers.len() + usize::from(spec.can_contain_null_mask);
    let buffers = array.num_buffers();
    let buffer_count_ok = if spec.variadic {
        buffers > expected_buffers
    } else {
        buffers == expected_buffers
    };
    if !buffer_count_ok {
        return fail(format!(
            "{data_type} needs {expected_buffers} buffers{}, the producer gave {buffers}",
            if spec.variadic {
                " plus variadic ones"
            } else {
                ""
            }
        ));
    }
    for (index, buffer_spec) in spec.buffers.iter().enumerate() {
        let slot = index + usize::from(spec.can_contain_null_mask);
        let pointer = array.buffer(slot);
        if pointer.is_null() && !array.is_empty() {
            return fail(format!("buffer {slot} is null for a non-empty array"));
        }
        if let BufferSpec::FixedWidth { alignment, .. } = buffer_spec
            && !(pointer as usize).is_multiple_of(*alignment)
        {
            stats.realigned_buffers += 1;
        }
    }
    let children: Vec<(String, &DataType)> = match value_type {
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::ListView(field)
        | DataType::LargeListView(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => vec![(field.name().clone(), field.data_type())],
        DataType::Struct(fields) => fields
            .iter()
            .map(|f| (f.name().clone(), f.data_type()))
            .collect(),
        DataType::Union(fields, _) => fields
            .iter()
            .map(|(_, f)| (f.name().clone(), f.data_type()))
            .collect(),
        DataType::RunEndEncoded(run_ends, values) => vec![
            (run_ends.name().clone(), run_ends.data_type()),
            (values.name().clone(), values.data_type()),
        ],
        _ => Vec::new(),
    };
    if array.num_children() != children.len() {
        return fail(format!(
            "{data_type} needs {} children, the producer gave {}",
            children.len(),
            array.num_children()
        ));
    }
    for (index, (name, child_type)) in children.iter().enumerate() {
        let child_path = format!("{path}.{name}");
        check_structure(
            array.child(index),
            child_type,
            &child_path,
            depth + 1,
            stats,
        )?;
    }
    match (expects_dictionary, array.dictionary()) {
        (Some(value_type), Some(dictionary)) => check_structure(
            dictionary,
            value_type,
            &format!("{path}.<dictionary>"),
            depth + 1,
            stats,
        ),
        (Some(_), None) => fail("a dictionary array without its dictionary".to_string()),
        (None, Some(_)) => fail("a dictionary on a non-dictionary type".to_string()),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, size_of};

    use arrow::array::{Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn c_data_interface_structs_have_the_sizes_the_spec_fixes() {
        // struct ArrowSchema: 3 pointers + i64 + i64 + 5 pointers = 9 words + 8 bytes.
        assert_eq!(size_of::<FFI_ArrowSchema>(), 72);
        assert_eq!(align_of::<FFI_ArrowSchema>(), 8);
        // struct ArrowArray: 5 i64 + 5 pointers.
        assert_eq!(size_of::<FFI_ArrowArray>(), 80);
        assert_eq!(align_of::<FFI_ArrowArray>(), 8);
        assert_eq!(size_of::<FfiBatch>(), 152);
    }

    fn sample() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ])
        .with_metadata(std::collections::HashMap::from([(
            "origin".to_string(),
            "test".to_string(),
        )]));
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_batch_round_trips_without_copying() {
        let batch = sample();
        let address = batch.column(0).to_data().buffers()[0].as_ptr();
        let (back, stats) = FfiBatch::export(batch.clone()).unwrap().import().unwrap();
        assert_eq!(back, batch);
        assert_eq!(
            back.schema().metadata().get("origin").map(String::as_str),
            Some("test")
        );
        assert_eq!(back.column(0).to_data().buffers()[0].as_ptr(), address);
        assert_eq!(stats.realigned_buffers, 0);
    }

    #[test]
    fn sliced_batches_and_empty_batches_round_trip() {
        let batch = sample().slice(1, 2);
        let (back, _) = FfiBatch::export(batch.clone()).unwrap().import().unwrap();
        assert_eq!(back, batch);
        let empty = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(7)),
        )
        .unwrap();
        let (back, _) = FfiBatch::export(empty).unwrap().import().unwrap();
        assert_eq!(back.num_rows(), 7);
    }

    #[test]
    fn a_batch_whose_schema_disagrees_with_its_array_is_an_error() {
        let batch = sample();
        let mut exported = FfiBatch::export(batch).unwrap();
        let lying = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
        exported.schema = FFI_ArrowSchema::try_from(&lying).unwrap();
        let error = exported.import().unwrap_err();
        assert!(error.message().contains("children"), "{error}");
    }

    #[test]
    fn a_wrong_buffer_count_is_an_error() {
        let ints = Int32Array::from(vec![1, 2, 3]);
        let batch = RecordBatch::try_from_iter([("i", Arc::new(ints) as ArrayRef)]).unwrap();
        let mut exported = FfiBatch::export(batch).unwrap();
        let lying = Schema::new(vec![Field::new("i", DataType::Utf8, false)]);
        exported.schema = FFI_ArrowSchema::try_from(&lying).unwrap();
        let error = exported.import().unwrap_err();
        assert!(error.message().contains("needs 3 buffers"), "{error}");
    }

    #[test]
    fn an_under_aligned_buffer_is_realigned_and_counted() {
        // Producers in other languages hand over buffers aligned for less than their type
        // needs; arrow-rs would panic on them. Here a float64 buffer starts at an odd address.
        let mut bytes = vec![0_u8];
        for v in [1.5_f64, -2.0, 3.25, 4.0] {
            bytes.extend(v.to_le_bytes());
        }
        let shifted = arrow::buffer::Buffer::from_vec(bytes).slice(1);
        assert_ne!(
            shifted.as_ptr().align_offset(8),
            0,
            "the test needs a misaligned buffer"
        );
        let field = Field::new("x", DataType::Float64, false);
        // SAFETY: the buffer holds exactly 4 little-endian f64 values and the struct one
        // child of length 4; only the alignment breaks the layout rules, which is what the
        // import must repair. No typed array is made from this data here.
        let data = unsafe {
            let values = arrow::array::ArrayData::builder(DataType::Float64)
                .len(4)
                .add_buffer(shifted)
                .build_unchecked();
            arrow::array::ArrayData::builder(DataType::Struct(vec![field.clone()].into()))
                .len(4)
                .add_child_data(values)
                .build_unchecked()
        };
        let exported = FfiBatch {
            array: FFI_ArrowArray::new(&data),
            schema: FFI_ArrowSchema::try_from(&Schema::new(vec![field])).unwrap(),
        };
        let (back, stats) = exported.import().unwrap();
        assert_eq!(stats.realigned_buffers, 1);
        let expected = Float64Array::from(vec![1.5, -2.0, 3.25, 4.0]);
        assert_eq!(back.column(0).as_ref(), &expected as &dyn Array);
        assert_eq!(
            back.column(0).to_data().buffers()[0]
                .as_ptr()
                .align_offset(8),
            0
        );
    }

    #[test]
    fn schemas_round_trip() {
        let schema = sample().schema();
        let back = FfiSchema::export(&schema).unwrap().import().unwrap();
        assert_eq!(back, schema);
    }
}
