//! JSON Schemas of the MCP tools: the result object as every code and function tool's
//! output schema (made from the same `ToSchema` derive that `/openapi.json` uses, with
//! its references under `$defs`), and a stored function's arguments as its input.

use std::sync::{Arc, OnceLock};

use rmcp::model::JsonObject;
use runbox_runtime::functions::args::{ArgSpec, ArgType};
use runbox_runtime::result::ResultObject;
use serde_json::{json, Map, Value};
use utoipa::{PartialSchema, ToSchema};

/// The result object, self-contained.
pub fn result_object() -> Arc<JsonObject> {
    static SCHEMA: OnceLock<Arc<JsonObject>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut referenced = Vec::new();
            <ResultObject as ToSchema>::schemas(&mut referenced);
            let mut defs = Map::new();
            for (name, schema) in referenced {
                defs.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
            }
            let mut root = serde_json::to_value(<ResultObject as PartialSchema>::schema())
                .unwrap_or_else(|_| json!({"type": "object"}));
            if let Value::Object(fields) = &mut root {
                fields.insert("$defs".into(), Value::Object(defs));
            }
            relocate_refs(&mut root);
            Arc::new(into_object(root))
        })
        .clone()
}

/// OpenAPI puts shared schemas under `#/components/schemas`; a standalone JSON Schema
/// under `#/$defs`.
fn relocate_refs(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/components/schemas/") {
                            *target = format!("#/$defs/{name}");
                        }
                    }
                    other => relocate_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(relocate_refs),
        _ => {}
    }
}

/// A stored function's arguments as a tool's input schema.
pub fn arguments(specs: &[ArgSpec]) -> Arc<JsonObject> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for spec in specs {
        let mut property = match spec.kind {
            ArgType::Int => json!({"type": "integer"}),
            ArgType::Float => json!({"type": "number"}),
            ArgType::Str => json!({"type": "string"}),
            ArgType::Bool => json!({"type": "boolean"}),
            ArgType::List => json!({"type": "array"}),
            ArgType::Dict => json!({"type": "object"}),
            ArgType::Any => json!({}),
        };
        if !spec.description.is_empty() {
            property["description"] = json!(spec.description);
        }
        if let Some(default) = &spec.default {
            property["default"] = default.clone();
        }
        properties.insert(spec.name.clone(), property);
        if spec.required {
            required.push(json!(spec.name));
        }
    }
    Arc::new(into_object(json!({
        "type": "object",
        "properties": properties,
        "required": required,
    })))
}

/// A tool's own input schema, written out.
pub fn object(schema: Value) -> Arc<JsonObject> {
    Arc::new(into_object(schema))
}

fn into_object(value: Value) -> JsonObject {
    match value {
        Value::Object(fields) => fields,
        _ => JsonObject::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_schema_stands_alone() {
        let schema = Value::Object((*result_object()).clone());
        assert_eq!(schema["type"], "object");
        let text = schema.to_string();
        assert!(!text.contains("#/components/"), "{text}");
        assert!(schema["$defs"]["OutputView"].is_object(), "{text}");
        assert!(schema["properties"]["outputs"].is_object(), "{text}");
    }

    #[test]
    fn arguments_become_properties() {
        let specs = vec![ArgSpec {
            name: "n".into(),
            kind: ArgType::Int,
            required: true,
            description: "how many".into(),
            default: None,
        }];
        let schema = Value::Object((*arguments(&specs)).clone());
        assert_eq!(schema["properties"]["n"]["type"], "integer");
        assert_eq!(schema["required"], json!(["n"]));
    }
}
