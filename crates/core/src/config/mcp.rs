//! `mcp:` the Model Context Protocol endpoint, `/mcp`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Every code tool call runs in a fresh sandbox, even within an MCP session (whose
    /// calls otherwise share one runbox session); a call's `stateless` argument asks
    /// for the same.
    pub stateless: bool,
}
