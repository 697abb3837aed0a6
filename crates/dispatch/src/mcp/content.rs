//! A run's result object as MCP content, for a model to read: what it printed, each
//! notebook output (figures as `image` items with their PNG bytes, the rest as text),
//! the value, the error with its kind; and the whole result object as structured
//! content.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock};
use runbox_runtime::outputs::{OutputValue, OutputView};
use runbox_runtime::result::{ResultObject, StoredImageRef};
use runbox_runtime::Runtime;
use serde_json::Value;

/// Raster types an MCP `image` item carries; other images stay links in the result.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

pub async fn tool_result(runtime: &Runtime, result: &ResultObject) -> CallToolResult {
    let mut content = Vec::new();
    if !result.stdout.is_empty() {
        content.push(ContentBlock::text(result.stdout.clone()));
    }
    if !result.stderr.is_empty() {
        content.push(ContentBlock::text(format!("stderr:\n{}", result.stderr)));
    }
    let mut shows_value = false;
    for output in &result.outputs {
        shows_value |= output.kind == "execute_result";
        content.extend(output_blocks(runtime, output).await);
    }
    if !shows_value && !result.value.is_null() {
        content.push(ContentBlock::text(format!("value: {}", result.value)));
    }
    for image in &result.images {
        if let Some(block) = image_block(runtime, image).await {
            content.push(block);
        }
    }
    if let Some(error) = &result.error {
        let mut text = format!("error ({}): {}", error.kind.as_str(), error.message);
        if let Some(traceback) = error.traceback.as_deref().filter(|t| !t.is_empty()) {
            text.push('\n');
            text.push_str(traceback);
        }
        content.push(ContentBlock::text(text));
    }
    if result.truncated {
        content.push(ContentBlock::text(
            "(output was cut at runbox's limits)".to_string(),
        ));
    }
    if content.is_empty() {
        content.push(ContentBlock::text("(no output)".to_string()));
    }
    let mut tool = CallToolResult::structured(serde_json::to_value(result).unwrap_or(Value::Null));
    tool.content = content;
    tool.is_error = Some(!result.success);
    tool
}

/// An output as a model can take it: its image, or its plain text.
async fn output_blocks(runtime: &Runtime, output: &OutputView) -> Vec<ContentBlock> {
    let mut blocks = Vec::new();
    let mut has_image = false;
    for value in output.data.values() {
        if let OutputValue::Image(image) = value {
            if let Some(block) = image_block(runtime, image).await {
                blocks.push(block);
                has_image = true;
            }
        }
    }
    if !has_image {
        let text =
            ["text/plain", "text/markdown"]
                .iter()
                .find_map(|mime| match output.data.get(*mime) {
                    Some(OutputValue::Text(text)) => Some(text.clone()),
                    _ => None,
                });
        if let Some(text) = text {
            blocks.push(ContentBlock::text(text));
        }
    }
    blocks
}

/// A stored image's bytes, read back from the store, as an `image` item.
async fn image_block(runtime: &Runtime, image: &StoredImageRef) -> Option<ContentBlock> {
    if !IMAGE_TYPES.contains(&image.mime.as_str()) {
        return None;
    }
    let name = image.url.rsplit('/').next()?;
    let stored = runtime.stored_image(name).await.ok()??;
    Some(ContentBlock::image(
        STANDARD.encode(&stored.data),
        image.mime.clone(),
    ))
}
