//! Requirements as functions declare them, normalised so that one set always names one
//! environment, and refused when they are pip options rather than requirements.

const MAX_REQUIREMENTS: usize = 100;
const MAX_REQUIREMENT_LEN: usize = 300;

/// A function's dependencies, normalised (PEP 503 names, no blanks) and sorted, so that
/// the same set always names the same environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DependencySet {
    requirements: Vec<String>,
}

/// A requirement runbox refuses before pip ever sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dependency `{requirement}`: {reason}")]
pub struct InvalidRequirement {
    pub requirement: String,
    pub reason: String,
}

impl DependencySet {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, InvalidRequirement> {
        if list.len() > MAX_REQUIREMENTS {
            return Err(InvalidRequirement {
                requirement: format!("({} requirements)", list.len()),
                reason: format!("at most {MAX_REQUIREMENTS} dependencies are allowed"),
            });
        }
        let mut requirements = list
            .iter()
            .map(|r| normalize_requirement(r.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        requirements.sort();
        requirements.dedup();
        Ok(DependencySet { requirements })
    }

    pub fn requirements(&self) -> &[String] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// `Pandas [SQL,excel] >= 2.2 ; python_version>"3"` → `pandas[excel,sql]>=2.2; python_version>"3"`.
fn normalize_requirement(raw: &str) -> Result<String, InvalidRequirement> {
    let invalid = |reason: &str| InvalidRequirement {
        requirement: raw.to_string(),
        reason: reason.to_string(),
    };
    let text = raw.trim();
    if text.is_empty() {
        return Err(invalid("is empty"));
    }
    if text.len() > MAX_REQUIREMENT_LEN {
        return Err(invalid("is too long"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if text.starts_with('-') {
        // `--index-url …`, `-e …`, `-r file`: pip options are the operator's business.
        return Err(invalid("pip options are not allowed, only requirements"));
    }
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(text.len());
    let name = project_name(&text[..name_len])
        .ok_or_else(|| invalid("does not start with a package name"))?;
    let mut rest = text[name_len..].trim_start();
    let mut normalized = name;
    if let Some(after) = rest.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| invalid("has an unclosed `[` of extras"))?;
        let mut extras = after[..close]
            .split(',')
            .map(|e| project_name(e.trim()).ok_or_else(|| invalid("has an invalid extra")))
            .collect::<Result<Vec<_>, _>>()?;
        extras.sort();
        extras.dedup();
        normalized.push('[');
        normalized.push_str(&extras.join(","));
        normalized.push(']');
        rest = after[close + 1..].trim_start();
    }
    if let Some(url) = rest.strip_prefix('@') {
        let url = url.trim();
        if url.is_empty() || url.contains(char::is_whitespace) {
            return Err(invalid("has an invalid URL after `@`"));
        }
        normalized.push_str(" @ ");
        normalized.push_str(url);
        return Ok(normalized);
    }
    let (specifier, marker) = match rest.split_once(';') {
        Some((specifier, marker)) => (specifier, Some(marker)),
        None => (rest, None),
    };
    let tokens: Vec<&str> = specifier.split_whitespace().collect();
    // `== 1.2` is fine; `==1 2` is two versions pasted together.
    let glued = tokens.windows(2).any(|pair| {
        pair[0].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '*')
            && pair[1].starts_with(|c: char| c.is_ascii_alphanumeric())
    });
    if glued {
        return Err(invalid("has a space inside a version"));
    }
    let specifier = tokens.concat();
    if !specifier.is_empty() {
        let valid = specifier.starts_with(['<', '>', '=', '!', '~'])
            && specifier.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '.' | '*' | '+' | '!' | '<' | '>' | '=' | '~' | ',' | '_' | '-'
                    )
            });
        if !valid {
            return Err(invalid(
                "has an invalid version specifier (e.g. `==1.2`, `>=2,<3`, `~=2.2`)",
            ));
        }
        normalized.push_str(&specifier);
    }
    if let Some(marker) = marker {
        let marker = marker.split_whitespace().collect::<Vec<_>>().join(" ");
        if marker.is_empty() {
            return Err(invalid("has an empty environment marker after `;`"));
        }
        normalized.push_str("; ");
        normalized.push_str(&marker);
    }
    Ok(normalized)
}

/// PEP 503: lower case, runs of `-`, `_` and `.` become one `-`.
fn project_name(text: &str) -> Option<String> {
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return None;
    }
    let mut name = String::with_capacity(text.len());
    let mut separator = false;
    for c in text.chars() {
        if matches!(c, '.' | '_' | '-') {
            separator = true;
        } else {
            if separator {
                name.push('-');
                separator = false;
            }
            name.push(c.to_ascii_lowercase());
        }
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(list: &[&str]) -> Vec<String> {
        DependencySet::parse(list)
            .expect("valid")
            .requirements()
            .to_vec()
    }

    #[test]
    fn requirements_are_normalised_sorted_and_deduplicated() {
        assert_eq!(
            normalized(&["Pandas == 2.2.*", "numpy", " numpy ", "Foo_Bar.baz>=1,<2"]),
            vec!["foo-bar-baz>=1,<2", "numpy", "pandas==2.2.*"]
        );
        assert_eq!(
            normalized(&["Requests [Socks, security] ~= 2.31"]),
            vec!["requests[security,socks]~=2.31"]
        );
        assert_eq!(
            normalized(&["tomli; python_version  < \"3.11\""]),
            vec!["tomli; python_version < \"3.11\""]
        );
        assert_eq!(
            normalized(&["pkg @ https://example.org/pkg-1.0.tar.gz"]),
            vec!["pkg @ https://example.org/pkg-1.0.tar.gz"]
        );
    }

    #[test]
    fn options_and_garbage_are_refused() {
        for bad in [
            "",
            "  ",
            "--index-url=http://evil",
            "-e .",
            "numpy; ",
            "numpy ==1 2",
            "numpy$(id)",
            "numpy\nscipy",
            "[extra]",
            "numpy[",
        ] {
            assert!(DependencySet::parse(&[bad]).is_err(), "{bad:?} accepted");
        }
    }
}
