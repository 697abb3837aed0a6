//! LLM output is pasted into /runcode as-is, so a fenced block is cut out before running.

use std::sync::OnceLock;

use regex::Regex;

/// Returns the body of the first fenced code block (```` ```python ```` or a bare
/// ```` ``` ````) when `code` contains one, otherwise `code` unchanged.
pub fn extract_first_fenced_block(code: &str) -> &str {
    static FENCE: OnceLock<Option<Regex>> = OnceLock::new();
    let fence = FENCE.get_or_init(|| {
        // The info string (python, py, bash, sh, …) is optional; the body is lazy so the
        // first closing fence ends it.
        Regex::new(r"(?s)```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n(.*?)```").ok()
    });
    match fence.as_ref().and_then(|re| re.captures(code)) {
        Some(captures) => captures.get(1).map_or(code, |m| m.as_str()),
        None => code,
    }
}

#[cfg(test)]
mod tests {
    use super::extract_first_fenced_block;

    #[test]
    fn takes_the_first_python_block() {
        let text = "Here:\n```python\nprint('a')\n```\nand\n```python\nprint('b')\n```";
        assert_eq!(extract_first_fenced_block(text), "print('a')\n");
    }

    #[test]
    fn takes_a_bare_block() {
        assert_eq!(extract_first_fenced_block("```\necho hi\n```"), "echo hi\n");
    }

    #[test]
    fn leaves_plain_code_alone() {
        assert_eq!(extract_first_fenced_block("print(1)"), "print(1)");
    }

    #[test]
    fn unterminated_fence_is_plain_code() {
        assert_eq!(
            extract_first_fenced_block("```python\nprint(1)"),
            "```python\nprint(1)"
        );
    }
}
