//! Schemas of values that have no Rust type of their own: tensor datatypes and values
//! (nested arrays, numbers or null), raw bodies, and the embeddings' union types.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::schema::{AnyOf, Array, Object, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::tensor::DataType;

fn typed(t: Type) -> Object {
    Object::with_type(t)
}

/// A tensor element type the server serves: the names in [`DataType::ALL`].
pub struct Datatype;

impl PartialSchema for Datatype {
    fn schema() -> RefOr<Schema> {
        Object::builder()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(
                "Tensor element type. `BYTES` only for the input of a pipeline model (text \
                 or image models: `data` holds texts, or base64-encoded images).",
            ))
            .enum_values(Some(
                DataType::ALL
                    .iter()
                    .map(|d| d.as_str())
                    .chain(std::iter::once("BYTES")),
            ))
            .into()
    }
}

impl ToSchema for Datatype {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Datatype")
    }
}

/// An input tensor's `data`: row-major values, flat or nested by the shape.
pub struct InputValues;

impl PartialSchema for InputValues {
    fn schema() -> RefOr<Schema> {
        // Nesting is spelled out in words, not as a recursive schema: client generators
        // (openapi-python-client) cannot follow a recursive array.
        let nested = Array::builder()
            .items(Object::builder().schema_type(SchemaType::AnyValue))
            .description(Some(
                "A nested row: arrays of the same values, nested by the shape.",
            ));
        let element = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Boolean))
            .item(typed(Type::String))
            .item(nested);
        Array::builder()
            .items(element)
            .description(Some(
                "Row-major values, flat (`[1, 2, 3, 4]`) or nested by the shape \
                 (`[[1, 2], [3, 4]]`, any depth up to 32): numbers for numeric datatypes, \
                 `true`/`false` for BOOL, strings for BYTES (texts, or base64 images). \
                 Their count must equal the product of `shape`.",
            ))
            .examples([json!([1.0, 2.0, 3.0, 4.0]), json!([[1.0, 2.0], [3.0, 4.0]])])
            .into()
    }
}

impl ToSchema for InputValues {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("InputValues")
    }
}

/// An output tensor's `data`: always flat, row-major.
pub struct OutputValues;

impl PartialSchema for OutputValues {
    fn schema() -> RefOr<Schema> {
        let element = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Boolean))
            .item(typed(Type::Null));
        Array::builder()
            .items(element)
            .description(Some(
                "Flat row-major values (shape gives the layout): numbers, or `true`/`false` \
                 for BOOL. A NaN or infinite float, which JSON cannot carry, is `null`.",
            ))
            .examples([json!([202.71085])])
            .into()
    }
}

impl ToSchema for OutputValues {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OutputValues")
    }
}

/// A number, or `null` for a NaN or infinite value (JSON has no spelling for them).
pub struct NumberOrNull;

impl PartialSchema for NumberOrNull {
    fn schema() -> RefOr<Schema> {
        // anyOf rather than `type: [number, null]`: schemathesis 4.32 cannot analyse a
        // type list as array items.
        AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Null))
            .into()
    }
}

impl ToSchema for NumberOrNull {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("NumberOrNull")
    }
}

/// A body of raw bytes (the binary tensor extension).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        Object::builder()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .description(Some("Raw bytes; the operation says what they hold."))
            .into()
    }
}

impl ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// `input` of `POST /v1/embeddings`: one text, or several.
pub struct EmbeddingsInput;

impl PartialSchema for EmbeddingsInput {
    fn schema() -> RefOr<Schema> {
        AnyOf::builder()
            .item(typed(Type::String))
            .item(Array::new(typed(Type::String)))
            .description(Some(
                "One text, or an array of texts (token arrays are refused).",
            ))
            .into()
    }
}

impl ToSchema for EmbeddingsInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EmbeddingsInput")
    }
}

/// One embedding: floats, or with `encoding_format: base64` their little-endian f32
/// bytes in base64.
pub struct EmbeddingVector;

impl PartialSchema for EmbeddingVector {
    fn schema() -> RefOr<Schema> {
        let number_or_null = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Null));
        AnyOf::builder()
            .item(Array::new(number_or_null))
            .item(typed(Type::String))
            .description(Some(
                "Floats (`null` for a non-finite value), or a base64 string of little-endian \
                 f32 bytes with `encoding_format: base64`.",
            ))
            .into()
    }
}

impl ToSchema for EmbeddingVector {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EmbeddingVector")
    }
}
