use super::*;

fn signature(params: &[(&str, &str, bool)]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|(name, kind, has_default)| {
                json!({"name": name, "kind": kind, "has_default": has_default})
            })
            .collect(),
    )
}

#[test]
fn both_shapes_give_the_same_specs() {
    let short = parse_specs(&json!({"count": "int", "label": "str"}))
        .expect("valid")
        .expect("declared");
    let long = parse_specs(&json!([
        {"name": "count", "type": "int", "required": true},
        {"name": "label", "type": "string"}
    ]))
    .expect("valid")
    .expect("declared");
    assert_eq!(short, long);
    assert_eq!(parse_specs(&Value::Null), Ok(None));
}

#[test]
fn a_default_makes_an_argument_optional_and_must_fit_its_type() {
    let specs = parse_specs(&json!([{"name": "n", "type": "int", "default": 3}]))
        .expect("valid")
        .expect("declared");
    assert!(!specs[0].required);
    assert_eq!(specs[0].default, Some(json!(3)));
    let err = parse_specs(&json!([{"name": "n", "type": "int", "default": "x"}]))
        .expect_err("bad default");
    assert_eq!(err.argument.as_deref(), Some("n"));
    assert!(parse_specs(&json!([{"name": "n", "required": true, "default": 1}])).is_err());
    assert!(parse_specs(&json!({"n": "integer-ish"})).is_err());
    assert!(parse_specs(&json!({"1n": "int"})).is_err());
    assert!(parse_specs(&json!([{"name": "n"}, {"name": "n"}])).is_err());
    assert!(parse_specs(&json!([{"name": "n", "typo": 1}])).is_err());
}

#[test]
fn calls_are_checked_by_name_and_type() {
    let specs = parse_specs(&json!({"count": "int", "min_value": "float"}))
        .expect("valid")
        .expect("declared");
    let ok = validate_call(
        "f",
        &specs,
        false,
        json!({"count": 10, "min_value": 0})
            .as_object()
            .expect("object"),
    );
    assert!(ok.is_ok());
    let missing = validate_call(
        "f",
        &specs,
        false,
        json!({"min_value": 0.5}).as_object().expect("object"),
    )
    .expect_err("missing");
    assert_eq!(missing.argument.as_deref(), Some("count"));
    assert!(missing
        .message
        .contains("missing required argument `count`"));
    let wrong = validate_call(
        "f",
        &specs,
        false,
        json!({"count": "10", "min_value": 0.5})
            .as_object()
            .expect("object"),
    )
    .expect_err("wrong type");
    assert_eq!(
        wrong.message,
        "argument `count` must be int, got str \"10\""
    );
    let float_for_int = validate_call(
        "f",
        &specs,
        false,
        json!({"count": 1.5, "min_value": 0.5})
            .as_object()
            .expect("object"),
    );
    assert!(float_for_int.is_err());
    let extra = validate_call(
        "f",
        &specs,
        false,
        json!({"count": 1, "min_value": 0.5, "other": 1})
            .as_object()
            .expect("object"),
    )
    .expect_err("unexpected");
    assert_eq!(extra.argument.as_deref(), Some("other"));
    assert!(validate_call(
        "f",
        &specs,
        true,
        json!({"count": 1, "min_value": 0.5, "other": 1})
            .as_object()
            .expect("object"),
    )
    .is_ok());
}

#[test]
fn declared_defaults_are_filled_in() {
    let specs = parse_specs(&json!([{"name": "n", "type": "int", "default": 7}]))
        .expect("valid")
        .expect("declared");
    let call = validate_call("f", &specs, false, &Map::new()).expect("valid");
    assert_eq!(call.get("n"), Some(&json!(7)));
}

#[test]
fn undeclared_args_come_from_the_signature() {
    let reported = signature(&[
        ("a", "positional_or_keyword", false),
        ("b", "keyword_only", true),
        ("rest", "var_positional", false),
    ]);
    let specs = reconcile("f", None, &reported).expect("valid");
    assert_eq!(specs.len(), 2);
    assert!(specs[0].required && !specs[1].required);
    assert!(!accepts_extra(&reported));
    assert!(accepts_extra(&signature(&[("kw", "var_keyword", false)])));
}

#[test]
fn declared_args_must_agree_with_the_signature() {
    let reported = signature(&[("a", "positional_or_keyword", false)]);
    let declared = parse_specs(&json!({"a": "int", "b": "int"})).expect("valid");
    let err = reconcile("f", declared, &reported).expect_err("b is not a parameter");
    assert_eq!(err.argument.as_deref(), Some("b"));
    let declared = parse_specs(&json!([{"name": "a", "required": false}])).expect("valid");
    let err = reconcile("f", declared, &reported).expect_err("a has no default");
    assert_eq!(err.argument.as_deref(), Some("a"));
    let positional = signature(&[("a", "positional_only", false)]);
    assert!(reconcile("f", None, &positional).is_err());
}
