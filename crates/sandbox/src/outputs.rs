//! The agent's notebook outputs, checked before they become [`OutputItem`]s: only the
//! known MIME types, raster images whose bytes are what their type says, and the run's
//! caps applied again (the agent is inside the sandbox and not trusted). The costs are
//! the agent's own (docs/agent-protocol.md), so an honest agent's items pass unchanged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use runbox_core::exec::image_signature_matches;
use runbox_core::outputs::OUTPUT_MIME_TYPES;
use runbox_core::{OutputData, OutputItem, OutputKind};
use serde_json::{Map, Value};

/// What every item costs of the text budget besides its strings.
const ITEM_OVERHEAD: u64 = 64;

/// What is left of a run's caps for its outputs.
#[derive(Debug)]
pub(crate) struct OutputBudget {
    /// Text of all items (`limits.outputs_bytes`).
    text: u64,
    /// Raster bytes (`limits.image_bytes`, shared with the image files).
    pub images: u64,
    /// Something was cut or dropped.
    pub truncated: bool,
}

impl OutputBudget {
    pub fn new(text: u64, images: u64) -> Self {
        OutputBudget {
            text,
            images,
            truncated: false,
        }
    }

    /// The item `raw` describes, within what is left; `None` for a malformed item or
    /// one there is no room for.
    pub fn admit(&mut self, raw: &Value) -> Option<OutputItem> {
        let fields = raw.as_object()?;
        let kind = OutputKind::parse(fields.get("type")?.as_str()?)?;
        let bundle = fields.get("data")?.as_object()?;
        if self.text < ITEM_OVERHEAD {
            self.truncated = true;
            return None;
        }
        self.text -= ITEM_OVERHEAD;
        let mut truncated = fields.get("truncated").and_then(Value::as_bool) == Some(true);
        let mut metadata = fields
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !self.spend(json_len(&Value::Object(metadata.clone()))) {
            metadata = Map::new();
            truncated = true;
        }
        let mut data = Vec::new();
        for mime in OUTPUT_MIME_TYPES {
            let Some(value) = bundle.get(mime) else {
                continue;
            };
            match self.representation(mime, value) {
                Some(representation) => data.push((mime, representation)),
                None => truncated = true,
            }
        }
        if data.is_empty() {
            self.truncated = true;
            return None;
        }
        self.truncated |= truncated;
        Some(OutputItem {
            kind,
            data,
            metadata,
            truncated,
        })
    }

    fn representation(&mut self, mime: &'static str, value: &Value) -> Option<OutputData> {
        match mime {
            "image/png" | "image/jpeg" => {
                let bytes = STANDARD.decode(value.as_str()?.as_bytes()).ok()?;
                if !image_signature_matches(mime, &bytes) || bytes.len() as u64 > self.images {
                    return None;
                }
                self.images -= bytes.len() as u64;
                Some(OutputData::Raster(bytes))
            }
            "application/json" => self
                .spend(json_len(value))
                .then(|| OutputData::Json(value.clone())),
            "text/plain" => {
                // The plain text is what every client can show: cut to fit, never dropped.
                let mut text = value.as_str()?.to_string();
                let room = usize::try_from(self.text).unwrap_or(usize::MAX);
                if text.len() > room {
                    let mut cut = room;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    self.truncated = true;
                }
                self.text -= text.len() as u64;
                Some(OutputData::Text(text))
            }
            _ => {
                let text = value.as_str()?;
                self.spend(text.len() as u64)
                    .then(|| OutputData::Text(text.to_string()))
            }
        }
    }

    fn spend(&mut self, cost: u64) -> bool {
        if cost > self.text {
            return false;
        }
        self.text -= cost;
        true
    }
}

fn json_len(value: &Value) -> u64 {
    serde_json::to_string(value).map_or(u64::MAX, |text| text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest";

    fn png_base64() -> String {
        STANDARD.encode(PNG)
    }

    #[test]
    fn an_honest_item_passes_whole() {
        let mut budget = OutputBudget::new(1 << 20, 1 << 20);
        let item = budget
            .admit(&json!({
                "type": "display_data",
                "data": {"text/plain": "<Figure>", "image/png": png_base64(), "text/html": "<b>x</b>"},
                "metadata": {"image/png": {"width": 10}},
                "truncated": false
            }))
            .expect("admitted");
        assert_eq!(item.kind, OutputKind::DisplayData);
        let types: Vec<&str> = item.data.iter().map(|(mime, _)| *mime).collect();
        assert_eq!(types, ["text/plain", "text/html", "image/png"]);
        assert_eq!(item.raster_bytes(), PNG.len() as u64);
        assert!(!item.truncated && !budget.truncated);
    }

    #[test]
    fn forged_types_and_images_are_dropped() {
        let mut budget = OutputBudget::new(1 << 20, 1 << 20);
        let item = budget
            .admit(&json!({
                "type": "execute_result",
                "data": {
                    "text/plain": "x",
                    "application/x-evil": "boom",
                    "image/png": STANDARD.encode(b"<html>not a png</html>"),
                    "image/jpeg": "%%% not base64"
                }
            }))
            .expect("the plain text stays");
        assert_eq!(
            item.data,
            vec![("text/plain", OutputData::Text("x".into()))]
        );
        assert!(item.truncated);
        assert!(budget
            .admit(&json!({"type": "forged", "data": {"text/plain": "x"}}))
            .is_none());
        assert!(budget
            .admit(&json!({"type": "display_data", "data": "x"}))
            .is_none());
        assert!(budget.admit(&json!(["display_data"])).is_none());
    }

    #[test]
    fn the_caps_hold_whatever_the_agent_says() {
        let mut budget = OutputBudget::new(ITEM_OVERHEAD + 5, 4);
        let item = budget
            .admit(&json!({
                "type": "display_data",
                "data": {"text/plain": "héllo world", "text/html": "<table/>", "image/png": png_base64()}
            }))
            .expect("cut, not dropped");
        assert_eq!(
            item.data,
            vec![("text/plain", OutputData::Text("hé".into()))]
        );
        assert!(item.truncated && budget.truncated);
        assert!(
            budget
                .admit(&json!({"type": "display_data", "data": {"text/plain": "more"}}))
                .is_none(),
            "no room for another item"
        );
    }
}
