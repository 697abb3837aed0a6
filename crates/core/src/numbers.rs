//! JSON numbers as runbox carries them. A number keeps its JSON text from the request to
//! the sandbox and back (serde_json's `arbitrary_precision`), so an integer of any size
//! arrives as the Python `int` it spells. Any other number becomes a Python `float`, a
//! double: one that a double cannot hold as written (`1e400`, or more digits than a
//! double has) is refused rather than silently rounded.

use serde_json::{Map, Number, Value};

/// Python refuses to read integers longer than this from text (`sys.int_info`'s
/// default `str_digits_check_threshold` limit), so runbox refuses them first.
pub const MAX_INTEGER_DIGITS: usize = 4300;

/// A number in a value that would not arrive as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InexactNumber {
    /// Where it is: `""` for the value itself, else `name`, `[3]`, `a[0].b`.
    pub path: String,
    pub message: String,
}

/// Whether the number is written as an integer (no fraction, no exponent).
pub fn is_integer(number: &Number) -> bool {
    !number.to_string().contains(['.', 'e', 'E'])
}

/// The first number in `value` that would not arrive exactly as written, if any.
pub fn find_inexact(value: &Value) -> Option<InexactNumber> {
    let mut path = String::new();
    find_in(value, &mut path)
}

/// As [`find_inexact`] over the values of an object (variables, arguments): the path
/// starts with the name.
pub fn find_inexact_in(fields: &Map<String, Value>) -> Option<InexactNumber> {
    let mut path = String::new();
    find_in_fields(fields, &mut path)
}

fn find_in_fields(fields: &Map<String, Value>, path: &mut String) -> Option<InexactNumber> {
    fields.iter().find_map(|(name, item)| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
        let found = find_in(item, path);
        path.truncate(len);
        found
    })
}

fn find_in(value: &Value, path: &mut String) -> Option<InexactNumber> {
    match value {
        Value::Number(number) => check(number).map(|message| InexactNumber {
            path: path.clone(),
            message,
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let found = find_in(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(fields) => find_in_fields(fields, path),
        Value::Null | Value::Bool(_) | Value::String(_) => None,
    }
}

fn check(number: &Number) -> Option<String> {
    let text = number.to_string();
    if is_integer(number) {
        let digits = text.trim_start_matches('-').len();
        return (digits > MAX_INTEGER_DIGITS).then(|| {
            format!("an integer of {digits} digits is longer than the {MAX_INTEGER_DIGITS} digits Python reads")
        });
    }
    let held = match text.parse::<f64>() {
        Ok(double) if double.is_finite() => {
            Decimal::parse(&text).is_some_and(|written| Some(written) == Decimal::of(double))
        }
        _ => false,
    };
    (!held).then(|| {
        format!(
            "the number {} cannot be represented exactly as a float (a double); send it as a \
             string, or with at most the 17 significant digits a double holds",
            shorten(&text)
        )
    })
}

fn shorten(text: &str) -> String {
    if text.len() <= 40 {
        text.to_string()
    } else {
        format!("{}…", &text[..40])
    }
}

/// A decimal number in a normal form: sign, significant digits without leading or
/// trailing zeros, and the power of ten of the first digit. Zero is (false, "", 0).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// Parses JSON number text (`-12.50e3`); `None` when the exponent is absurdly large.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all: String = whole.chars().chain(fraction.chars()).collect();
        let leading = all.len() - all.trim_start_matches('0').len();
        let digits = all.trim_matches('0').to_string();
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        let point = i64::try_from(whole.len()).ok()? - i64::try_from(leading).ok()?;
        Some(Decimal {
            negative,
            digits,
            exponent: exponent.checked_add(point)?.checked_sub(1)?,
        })
    }

    /// The shortest decimal that reads back as `double` (Rust prints exactly that).
    fn of(double: f64) -> Option<Decimal> {
        Decimal::parse(&format!("{double:e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn integers_of_any_size_keep_their_digits() {
        let value = parsed(r#"{"big": 1180591620717411303424, "neg": -18446744073709551617}"#);
        assert_eq!(find_inexact(&value), None);
        assert_eq!(
            value.to_string(),
            r#"{"big":1180591620717411303424,"neg":-18446744073709551617}"#
        );
        assert!(is_integer(value["big"].as_number().expect("number")));
    }

    #[test]
    fn doubles_are_accepted_as_written() {
        for text in [
            "0.1",
            "1.5",
            "-2.50",
            "1e2",
            "1E-7",
            "0.30000000000000004",
            "0.0",
            "-0.0",
        ] {
            assert_eq!(find_inexact(&parsed(text)), None, "{text}");
        }
    }

    #[test]
    fn numbers_a_double_would_change_are_found_with_their_path() {
        let value = parsed(r#"{"a": [1, {"b": 1e400}]}"#);
        let found = find_inexact(&value).expect("found");
        assert_eq!(found.path, "a[1].b");
        let Value::Object(fields) = value else {
            panic!("an object")
        };
        assert_eq!(find_inexact_in(&fields).expect("found").path, "a[1].b");
        assert!(found.message.contains("1e+400"), "{}", found.message);
        for text in [
            "3.14159265358979323846",
            "1e-400",
            "-1e309",
            "1.00000000000000000001",
        ] {
            assert!(find_inexact(&parsed(text)).is_some(), "{text}");
        }
    }

    #[test]
    fn integers_longer_than_python_reads_are_found() {
        let long = "9".repeat(MAX_INTEGER_DIGITS + 1);
        let found = find_inexact(&parsed(&long)).expect("found");
        assert!(found.message.contains("4300"), "{}", found.message);
        assert_eq!(find_inexact(&parsed(&"9".repeat(MAX_INTEGER_DIGITS))), None);
        assert_eq!(find_inexact(&json!([1, 2.5, "x"])), None);
    }
}
