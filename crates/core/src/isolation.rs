//! Isolation tiers: how strong a kernel boundary a run asks for. `standard` is the
//! engine's usual container runtime (runc, or crun); `strong` a user-space kernel
//! (gVisor's runsc) between the code and the host's. A run may also name a runtime the
//! engine has registered. Asking for a tier nobody offers is refused, never downgraded.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    Standard,
    Strong,
    /// An OCI runtime by the name the engine registered it under (`crun`, `runsc` …).
    #[serde(untagged)]
    Runtime(String),
}

/// Runtimes whose sandboxes have a kernel of their own: naming one asks for `strong`.
const STRONG_RUNTIMES: [&str; 1] = ["runsc"];

/// Whether `runtime` gives its containers a kernel of their own: one of the runtimes
/// known to, or the one configured as `sandbox.strong_runtime`.
pub fn has_own_kernel(runtime: &str, strong_runtime: &str) -> bool {
    let runtime = runtime.trim();
    !runtime.is_empty() && (runtime == strong_runtime.trim() || STRONG_RUNTIMES.contains(&runtime))
}

impl Isolation {
    /// `standard`, `strong` or a runtime's name (letters, digits, `-`, `_`, `.`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "standard" | "default" => Some(Isolation::Standard),
            "strong" => Some(Isolation::Strong),
            _ if text.len() <= 64
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
            {
                Some(Isolation::Runtime(text.to_string()))
            }
            _ => None,
        }
    }

    /// Whether the runs get a kernel of their own.
    pub fn is_strong(&self) -> bool {
        match self {
            Isolation::Standard => false,
            Isolation::Strong => true,
            Isolation::Runtime(name) => STRONG_RUNTIMES.contains(&name.as_str()),
        }
    }

    /// The stronger of two asks; a runtime named wins over the tier it belongs to. A
    /// token's isolation is a floor: a request asks for more, never for less.
    pub fn at_least(self, floor: &Isolation) -> Isolation {
        match (self.is_strong(), floor.is_strong()) {
            (false, true) => floor.clone(),
            _ => self,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Isolation::Standard => "standard",
            Isolation::Strong => "strong",
            Isolation::Runtime(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_runtime_names_parse() {
        assert_eq!(Isolation::parse("Strong"), Some(Isolation::Strong));
        assert_eq!(Isolation::parse(""), Some(Isolation::Standard));
        assert_eq!(
            Isolation::parse("crun"),
            Some(Isolation::Runtime("crun".into()))
        );
        assert_eq!(Isolation::parse("run sc; rm -rf"), None);
        assert!(Isolation::parse("runsc").is_some_and(|i| i.is_strong()));
    }

    #[test]
    fn the_configured_strong_runtime_has_its_own_kernel() {
        assert!(has_own_kernel("runsc", ""));
        assert!(has_own_kernel("gvisor", " gvisor "));
        assert!(!has_own_kernel("crun", "runsc"));
        assert!(!has_own_kernel("", ""));
    }

    #[test]
    fn a_floor_is_never_lowered() {
        let strong = Isolation::Strong;
        assert_eq!(Isolation::Standard.at_least(&strong), Isolation::Strong);
        assert_eq!(
            Isolation::Runtime("crun".into()).at_least(&strong),
            Isolation::Strong
        );
        assert_eq!(
            Isolation::Runtime("runsc".into()).at_least(&strong),
            Isolation::Runtime("runsc".into())
        );
        assert_eq!(
            Isolation::Runtime("crun".into()).at_least(&Isolation::Standard),
            Isolation::Runtime("crun".into())
        );
    }
}
