//! What a sandbox is made of: its image and the OCI runtime it runs under. Warm pools
//! are kept per placement, so that a run of the `strong` tier never gets a sandbox of
//! the standard runtime.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    pub image: String,
    /// The OCI runtime; empty: the engine's default.
    pub runtime: String,
}

impl Placement {
    pub fn new(image: impl Into<String>, runtime: impl Into<String>) -> Self {
        Placement {
            image: image.into(),
            runtime: runtime.into().trim().to_string(),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.runtime.is_empty() {
            f.write_str(&self.image)
        } else {
            write!(f, "{} ({})", self.image, self.runtime)
        }
    }
}
