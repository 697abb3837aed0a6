//! Notebook outputs: the display items of a run (figures shown, objects displayed, the
//! value's rich representation), each a Jupyter MIME bundle, in the order the code made
//! them. What the agent sends is checked by the sandbox crate before it becomes one of
//! these; the runtime stores their raster images and serves them by URL.

use serde_json::{Map, Value};

/// The MIME types an item may carry; an agent's entry of any other type is dropped.
pub const OUTPUT_MIME_TYPES: [&str; 8] = [
    "text/plain",
    "text/html",
    "text/markdown",
    "text/latex",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "application/json",
];

/// Jupyter's two kinds of display output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// `display(obj)`, a figure shown or left open.
    DisplayData,
    /// The value of the cell's last expression, or a function call's return value.
    ExecuteResult,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::DisplayData => "display_data",
            OutputKind::ExecuteResult => "execute_result",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "display_data" => Some(OutputKind::DisplayData),
            "execute_result" => Some(OutputKind::ExecuteResult),
            _ => None,
        }
    }
}

/// One representation of an item.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputData {
    /// `text/*` and `image/svg+xml`.
    Text(String),
    /// `application/json`.
    Json(Value),
    /// `image/png` and `image/jpeg`: the decoded bytes, their signature checked.
    Raster(Vec<u8>),
}

/// One display item.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputItem {
    pub kind: OutputKind,
    /// MIME type → representation, in the order of [`OUTPUT_MIME_TYPES`].
    pub data: Vec<(&'static str, OutputData)>,
    pub metadata: Map<String, Value>,
    /// Cut or stripped of a representation to stay within the caps.
    pub truncated: bool,
}

impl OutputItem {
    /// Bytes of raster images it carries.
    pub fn raster_bytes(&self) -> u64 {
        self.data
            .iter()
            .map(|(_, data)| match data {
                OutputData::Raster(bytes) => bytes.len() as u64,
                _ => 0,
            })
            .sum()
    }
}
