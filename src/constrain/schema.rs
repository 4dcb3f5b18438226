//! A JSON schema as a regular expression over compact JSON text.
//!
//! The subset pipelines and OpenAI-style `response_format`s use: `type` object (with
//! `properties`, written in the schema's order, and `required`), array (`items`,
//! `minItems`, `maxItems`), string (`minLength`, `maxLength`), integer, number,
//! boolean, null, a list of types; `enum`, `const`, `anyOf`/`oneOf`. Without
//! recursion such a schema describes a regular language, so the output can be
//! enforced by a DFA. Objects admit no properties but the listed ones. Between tokens
//! at most one space is allowed (compact JSON keeps small models from looping on
//! whitespace); numbers have at most 16 integer digits. Anything else (`$ref`,
//! `pattern`, `patternProperties`, …) is an error naming the keyword and where it is.
//!
//! Schemas are read into [`Json`], which keeps the order of object keys as written
//! (teacher's `serde_json` sorts them), so properties come out in the schema's order.

use crate::error::{Error, Result};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// JSON with object keys in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> std::result::Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The same value from a `serde_json::Value` (its keys already sorted).
    pub fn from_value(v: &serde_json::Value) -> Json {
        use serde_json::Value as V;
        match v {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(*b),
            V::Number(n) => Json::Number(n.clone()),
            V::String(s) => Json::String(s.clone()),
            V::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            V::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Compact JSON text.
    pub fn to_text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.to_string(),
            Json::String(s) => serde_json::Value::String(s.clone()).to_string(),
            Json::Array(a) => format!(
                "[{}]",
                a.iter().map(Json::to_text).collect::<Vec<_>>().join(",")
            ),
            Json::Object(o) => format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        v.to_text()
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> std::result::Result<Json, E> {
                serde_json::Number::from_f64(x)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Json, A::Error> {
                let mut v: Vec<(String, Json)> = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, Json>()? {
                    // A repeated key keeps its last value, as JSON parsers do.
                    v.retain(|(old, _)| *old != k);
                    v.push((k, x));
                }
                Ok(Json::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Nesting the converter follows before it calls a schema too deep.
const MAX_DEPTH: usize = 32;

const WS: &str = "[ ]?";
const STRING_CHAR: &str = r#"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})"#;
const INTEGER: &str = "(?:0|[1-9][0-9]{0,15})";

/// Keywords that only describe (or that this subset does not need to act on).
const IGNORED: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "examples",
    "default",
    "format",
    "additionalProperties",
    "strict",
    "name",
];

pub fn to_regex(schema: &Json) -> Result<String> {
    let mut out = String::new();
    convert(schema, "#", 0, &mut out)?;
    Ok(out)
}

fn bad(path: &str, what: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "JSON schema at `{path}`: {what}\nhint: teacher constrains objects, arrays, strings, integers, numbers, booleans, null, enum, const and anyOf"
    ))
}

fn usize_of(v: &Json, key: &str, path: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .filter(|&n| n <= 10_000)
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(path, format!("`{key}` must be an integer from 0 to 10000"))),
    }
}

fn literal(v: &Json) -> String {
    regex::escape(&v.to_text())
}

fn convert(s: &Json, path: &str, depth: usize, out: &mut String) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(bad(path, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let obj = match s {
        Json::Bool(true) => return Err(bad(path, "`true` (any value) cannot be constrained")),
        Json::Object(o) => o,
        _ => return Err(bad(path, "a schema must be an object")),
    };
    for (k, _) in obj {
        let known = [
            "type",
            "properties",
            "required",
            "items",
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "enum",
            "const",
            "anyOf",
            "oneOf",
            "minimum",
        ];
        if !known.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()) {
            return Err(bad(path, format!("the keyword `{k}` is not supported")));
        }
    }
    if let Some(c) = s.get("const") {
        out.push_str(&literal(c));
        return Ok(());
    }
    if let Some(e) = s.get("enum") {
        let vals = e
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad(path, "`enum` must be a non-empty list"))?;
        out.push_str("(?:");
        for (i, v) in vals.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            out.push_str(&literal(v));
        }
        out.push(')');
        return Ok(());
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key) {
            let alts = alts
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad(path, format!("`{key}` must be a non-empty list")))?;
            out.push_str("(?:");
            for (i, a) in alts.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                convert(a, &format!("{path}/{key}/{i}"), depth + 1, out)?;
            }
            out.push(')');
            return Ok(());
        }
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts
            .iter()
            .map(|t| t.as_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(path, "`type` must be a string or a list of strings"))?,
        None if s.get("properties").is_some() => vec!["object"],
        None if s.get("items").is_some() => vec!["array"],
        None => return Err(bad(path, "has no `type` (or enum, const, anyOf)")),
        Some(other) => return Err(bad(path, format!("`type` is {}", other.to_text()))),
    };
    if types.len() > 1 {
        out.push_str("(?:");
    }
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        convert_type(s, t, path, depth, out)?;
    }
    if types.len() > 1 {
        out.push(')');
    }
    Ok(())
}

fn convert_type(s: &Json, t: &str, path: &str, depth: usize, out: &mut String) -> Result<()> {
    match t {
        "string" => {
            let min = usize_of(s, "minLength", path)?.unwrap_or(0);
            let rep = match usize_of(s, "maxLength", path)? {
                Some(max) if max < min => {
                    return Err(bad(path, "`maxLength` is below `minLength`"));
                }
                Some(max) => format!("{{{min},{max}}}"),
                None => format!("{{{min},}}"),
            };
            out.push_str(&format!("\"{STRING_CHAR}{rep}\""));
        }
        "integer" => {
            let non_negative = s
                .get("minimum")
                .and_then(|m| m.as_f64())
                .is_some_and(|m| m >= 0.0);
            if !non_negative {
                out.push_str("-?");
            }
            out.push_str(INTEGER);
        }
        "number" => {
            out.push_str("-?");
            out.push_str(INTEGER);
            out.push_str(r"(?:\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,3})?");
        }
        "boolean" => out.push_str("(?:true|false)"),
        "null" => out.push_str("null"),
        "array" => {
            let items = s
                .get("items")
                .ok_or_else(|| bad(path, "an array needs `items`"))?;
            let mut item = String::new();
            convert(items, &format!("{path}/items"), depth + 1, &mut item)?;
            let min = usize_of(s, "minItems", path)?.unwrap_or(0);
            let max = usize_of(s, "maxItems", path)?;
            if max.is_some_and(|m| m < min) {
                return Err(bad(path, "`maxItems` is below `minItems`"));
            }
            let more = |lo: usize| match max {
                Some(m) => format!("{{{lo},{}}}", m.saturating_sub(1)),
                None => format!("{{{lo},}}"),
            };
            let sep = format!("(?:{WS},{WS}{item})");
            if max == Some(0) {
                out.push_str(&format!(r"\[{WS}\]"));
            } else if min == 0 {
                out.push_str(&format!(r"\[{WS}(?:{item}{sep}{})?{WS}\]", more(0)));
            } else {
                out.push_str(&format!(r"\[{WS}{item}{sep}{}{WS}\]", more(min - 1)));
            }
        }
        "object" => {
            let props: &[(String, Json)] = match s.get("properties") {
                None => &[],
                Some(Json::Object(p)) => p,
                Some(_) => return Err(bad(path, "`properties` must be an object")),
            };
            let required: Vec<&str> = match s.get("required") {
                None => Vec::new(),
                Some(Json::Array(r)) => r
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(path, "`required` must be a list of names"))?,
                Some(_) => return Err(bad(path, "`required` must be a list of names")),
            };
            for r in &required {
                if !props.iter().any(|(k, _)| k == r) {
                    return Err(bad(
                        path,
                        format!("`required` names `{r}`, which is not in `properties`"),
                    ));
                }
            }
            let mut parts: Vec<(String, bool)> = Vec::new();
            for (k, v) in props {
                let mut val = String::new();
                convert(v, &format!("{path}/properties/{k}"), depth + 1, &mut val)?;
                let key = regex::escape(&Json::String(k.clone()).to_text());
                parts.push((
                    format!("{key}{WS}:{WS}{val}"),
                    required.contains(&k.as_str()),
                ));
            }
            // One alternative per property that can come first (all before it are
            // optional); after it, required ones follow with a comma, optional ones
            // may.
            let mut alts: Vec<String> = Vec::new();
            for first in 0..parts.len() {
                let mut a = parts[first].0.clone();
                for (p, req) in &parts[first + 1..] {
                    if *req {
                        a.push_str(&format!("{WS},{WS}{p}"));
                    } else {
                        a.push_str(&format!("(?:{WS},{WS}{p})?"));
                    }
                }
                alts.push(a);
                if parts[first].1 {
                    break;
                }
            }
            let all_optional = parts.iter().all(|(_, r)| !r);
            let body = match (alts.is_empty(), all_optional) {
                (true, _) => String::new(),
                (false, true) => format!("(?:{})?", alts.join("|")),
                (false, false) => format!("(?:{})", alts.join("|")),
            };
            out.push_str(&format!(r"\{{{WS}{body}{WS}\}}"));
        }
        other => return Err(bad(path, format!("the type `{other}` is not supported"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    fn matches(schema: Json, text: &str) -> bool {
        let re = regex::Regex::new(&format!("^(?s:{})$", to_regex(&schema).unwrap())).unwrap();
        re.is_match(text)
    }

    macro_rules! jv {
        ($($t:tt)*) => { Json::from_value(&serde_json::json!($($t)*)) };
    }

    #[test]
    fn objects_arrays_and_scalars() {
        let task_text = r#"{"type": "object", "properties": {
            "instruction": {"type": "string", "minLength": 1},
            "input": {"type": "string"},
            "output": {"type": "string"}},
            "required": ["instruction", "output"]}"#;
        let task = j(task_text);
        assert!(matches(
            task.clone(),
            r#"{"instruction": "Say hi", "input": "", "output": "hi"}"#
        ));
        assert!(matches(
            task.clone(),
            r#"{"instruction":"Say hi","output":"hi"}"#
        ));
        // The schema's order, not alphabetical.
        assert!(!matches(
            task.clone(),
            r#"{"input": "", "instruction": "Say hi", "output": "hi"}"#
        ));
        assert!(!matches(
            task.clone(),
            r#"{"instruction": "", "output": "hi"}"#
        ));
        assert!(!matches(task.clone(), r#"{"output": "hi"}"#));
        assert!(!matches(
            task.clone(),
            r#"{"instruction": "a", "output": "b", "x": 1}"#
        ));
        assert!(matches(
            task.clone(),
            r#"{"instruction": "say \"hi\"\n", "output": "\u00e9"}"#
        ));
        let list = j(&format!(
            r#"{{"type": "array", "items": {task_text}, "minItems": 1, "maxItems": 2}}"#
        ));
        assert!(matches(
            list.clone(),
            r#"[{"instruction":"a","output":"b"}]"#
        ));
        assert!(matches(
            list.clone(),
            r#"[{"instruction":"a","output":"b"}, {"instruction":"c","output":"d"}]"#
        ));
        assert!(!matches(list.clone(), "[]"));
        let opt = jv!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}});
        for ok in [
            "{}",
            r#"{"a": -12}"#,
            r#"{"b": true}"#,
            r#"{"a": 0, "b": false}"#,
        ] {
            assert!(matches(opt.clone(), ok), "{ok}");
        }
        assert!(!matches(opt.clone(), r#"{"a": 012}"#));
        assert!(!matches(opt, r#"{, "b": true}"#));
        assert!(matches(jv!({"enum": ["yes", "no", 3]}), "3"));
        assert!(matches(jv!({"enum": ["yes", "no"]}), "\"no\""));
        assert!(!matches(jv!({"enum": ["yes", "no"]}), "\"maybe\""));
        assert!(matches(jv!({"type": ["string", "null"]}), "null"));
        assert!(matches(jv!({"type": "number"}), "-1.5e3"));
        assert!(matches(
            jv!({"anyOf": [{"type": "integer", "minimum": 0}, {"const": "n/a"}]}),
            "\"n/a\""
        ));
        assert!(!matches(jv!({"type": "integer", "minimum": 0}), "-1"));
        assert_eq!(
            j(r#"{"b": 1, "a": [true, null, "x"]}"#).to_text(),
            r#"{"b":1,"a":[true,null,"x"]}"#
        );
    }

    #[test]
    fn unsupported_schemas_name_the_keyword_and_place() {
        let e = to_regex(&jv!({"type": "object", "properties": {"a": {"$ref": "#"}}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("#/properties/a") && e.contains("$ref"), "{e}");
        let e = to_regex(&jv!({"type": "string", "minLength": 5, "maxLength": 2}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxLength"), "{e}");
        let e = to_regex(&jv!({"type": "object", "required": ["x"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x`"), "{e}");
        let mut deep = r#"{"type": "integer"}"#.to_string();
        for _ in 0..40 {
            deep = format!(r#"{{"type": "array", "items": {deep}}}"#);
        }
        assert!(to_regex(&j(&deep))
            .unwrap_err()
            .to_string()
            .contains("deeper"));
    }
}
