//! The one strict JSON reader for every evidence file and Prometheus answer.
//!
//! `serde_json::from_slice::<Value>` keeps the last of two equal keys in an object, so a file
//! can say one thing to a person or another tool (which may keep the first) and another to the
//! gate. [`from_str`] reads the same JSON into the same [`Value`], except that a key repeated
//! in one object is an error naming the key, with serde_json's line and column.
//!
//! It is serde_json's own parser with a [`Deserialize`] visitor that builds the value and
//! checks each object's keys as they arrive; no JSON is parsed by hand here.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Longest key shown in a duplicate-key error; longer keys are cut (the input may be hostile).
const MAX_KEY_SHOWN: usize = 64;

/// Parses JSON text into a [`Value`], refusing a key repeated within one object.
pub(crate) fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut deserializer)?.0;
    deserializer.end()?;
    Ok(value)
}

/// [`from_str`] of bytes (which must be UTF-8).
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut deserializer)?.0;
    deserializer.end()?;
    Ok(value)
}

/// The message of a duplicate-key error: "duplicate key `k`".
fn duplicate_message(key: &str) -> String {
    let shown: String = key.chars().take(MAX_KEY_SHOWN).collect();
    let shown = shown.escape_debug().to_string();
    let cut = if key.chars().count() > MAX_KEY_SHOWN {
        "…"
    } else {
        ""
    };
    format!("duplicate key `{shown}{cut}` in one object; relgate cannot tell which value is meant")
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never hands a non-finite float to a visitor; map one to null like
        // `Value` does, rather than failing.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(deserializer).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(duplicate_message(&key)));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads() {
        let text =
            r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}, "big": 18446744073709551615}"#;
        assert_eq!(
            from_str(text).expect("valid"),
            serde_json::from_str::<Value>(text).expect("valid")
        );
        assert_eq!(from_slice(b" 1 ").expect("scalar"), json!(1));
        // Key order is kept (preserve_order), as the importers' messages rely on.
        let keys: Vec<String> = from_str(r#"{"z": 1, "a": 2}"#)
            .expect("valid")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn repeated_keys_are_errors_with_a_position() {
        let err = from_str("{\n  \"a\": 1,\n  \"a\": 2\n}").expect_err("duplicate");
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
        assert_eq!(err.line(), 3);
        let err = from_str(r#"{"x": [{"k": 1, "k": 1}]}"#).expect_err("nested");
        assert!(err.to_string().contains("duplicate key `k`"), "{err}");
        // The same key in two objects is fine.
        assert!(from_str(r#"[{"k": 1}, {"k": 2}]"#).is_ok());
        // Escapes that spell the same key are the same key.
        let err = from_str(r#"{"a": 1, "\u0061": 2}"#).expect_err("escaped");
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn long_and_odd_keys_are_cut_and_escaped() {
        let key = "k".repeat(500);
        let err = from_str(&format!(r#"{{"{key}": 1, "{key}": 2}}"#)).expect_err("long");
        assert!(err.to_string().len() < 300, "{err}");
        let err = from_str(r#"{"a\nb": 1, "a\nb": 2}"#).expect_err("newline");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(from_str(r#"{"a": 1} x"#).is_err());
        assert!(from_str(r#"{"a": 1}{"a": 2}"#).is_err());
    }
}
