//! Notebook outputs as every surface shows them: Jupyter MIME bundles whose raster
//! images are stored like the image files a run writes and referenced by URL.

use std::collections::BTreeMap;

use runbox_core::{OutputData, OutputItem};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::image_ref::StoredImageRef;

/// One display item of a run: a figure shown or left open, an object displayed, or the
/// rich representation of the run's value.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OutputView {
    /// `display_data` (`display()`, a figure) or `execute_result` (the value of the
    /// cell's last expression, or a function's return value).
    #[serde(rename = "type")]
    #[schema(pattern = "^(display_data|execute_result)$")]
    pub kind: String,
    /// MIME type → representation: `text/plain` (always), `text/html`, `text/markdown`,
    /// `text/latex`, `image/svg+xml` as text; `application/json` as JSON; `image/png`
    /// and `image/jpeg` as the stored image (`name`, `url`, `mime`, `bytes`).
    pub data: BTreeMap<String, OutputValue>,
    /// The bundle's metadata (e.g. an image's `width`).
    pub metadata: Map<String, Value>,
    /// The item was cut or lost a representation to stay within `limits.outputs_bytes`
    /// or `limits.image_bytes`.
    pub truncated: bool,
}

/// One representation of an item.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutputValue {
    /// `image/png`, `image/jpeg`: stored, served by URL.
    Image(StoredImageRef),
    /// `text/*`, `image/svg+xml`.
    Text(String),
    /// `application/json`.
    Json(Value),
}

// Written out rather than derived: an untagged enum derives `oneOf`, which a string
// fails (it is both text and JSON), so that validators (MCP clients check structured
// content against the tool's output schema) refuse it. `anyOf` says what is meant.
impl PartialSchema for OutputValue {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(StoredImageRef::name()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("`text/*`, `image/svg+xml`.")),
            )
            .item(ObjectBuilder::new().description(Some("`application/json`: any JSON.")))
            .description(Some(
                "A stored image (`image/png`, `image/jpeg`), text, or JSON, by MIME type.",
            ))
            .into()
    }
}

impl ToSchema for OutputValue {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((StoredImageRef::name().into(), StoredImageRef::schema()));
        <StoredImageRef as ToSchema>::schemas(schemas);
    }
}

/// A raster image of an item, to be stored, and where its reference goes.
pub(crate) struct Raster {
    pub mime: &'static str,
    /// `output-3.png`: the item's place in the run, and the image's type.
    pub name: String,
    pub data: Vec<u8>,
}

/// The item's view with its rasters left out, and the rasters to store for it.
pub(crate) fn split(index: usize, item: OutputItem) -> (OutputView, Vec<Raster>) {
    let mut data = BTreeMap::new();
    let mut rasters = Vec::new();
    for (mime, representation) in item.data {
        match representation {
            OutputData::Text(text) => {
                data.insert(mime.to_string(), OutputValue::Text(text));
            }
            OutputData::Json(value) => {
                data.insert(mime.to_string(), OutputValue::Json(value));
            }
            OutputData::Raster(bytes) => {
                let extension = if mime == "image/jpeg" { "jpg" } else { "png" };
                rasters.push(Raster {
                    mime,
                    name: format!("output-{}.{extension}", index + 1),
                    data: bytes,
                });
            }
        }
    }
    let view = OutputView {
        kind: item.kind.as_str().to_string(),
        data,
        metadata: item.metadata,
        truncated: item.truncated,
    };
    (view, rasters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbox_core::OutputKind;

    #[test]
    fn texts_stay_and_rasters_are_set_apart_named_by_place() {
        let item = OutputItem {
            kind: OutputKind::DisplayData,
            data: vec![
                ("text/plain", OutputData::Text("<Figure>".into())),
                ("image/png", OutputData::Raster(vec![1, 2, 3])),
            ],
            metadata: Map::new(),
            truncated: false,
        };
        let (view, rasters) = split(2, item);
        assert_eq!(view.kind, "display_data");
        assert_eq!(view.data.len(), 1);
        assert_eq!(rasters.len(), 1);
        assert_eq!(rasters[0].name, "output-3.png");
        assert_eq!(rasters[0].mime, "image/png");
    }
}
