//! JSON objects that name a key twice.
//!
//! `serde_json` keeps the last of two equal keys, so `{"type": "view", "type": "purchase"}`
//! would be a purchase without a word. No sender means both; which one they meant is a guess.
//! [`duplicate_key`] finds the first such key in a document, at any depth, so event lines
//! and request bodies can refuse it by name.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The first key that some object of `json` names twice, with where it is (`events[3]` for
/// the fourth entry of the top level's `events`; empty at the top level); `None` when every
/// object's keys are distinct or `json` does not parse (the caller's own parse says why).
pub fn duplicate_key(json: &[u8]) -> Option<(String, String)> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut found = None;
    let _ = Walk { at: None, found: &mut found }.deserialize(&mut deserializer);
    found
}

/// Where a value is: a key of an object, or an entry of an array, under its parent. Only
/// spelled out when a repeated key is found, so the walk allocates nothing per value.
enum Step<'a> {
    Key(&'a str, Option<&'a Step<'a>>),
    Index(usize, Option<&'a Step<'a>>),
}

impl Step<'_> {
    fn spell(&self) -> String {
        let (mut steps, mut at) = (Vec::new(), Some(self));
        while let Some(step) = at {
            steps.push(step);
            at = match step {
                Step::Key(_, parent) | Step::Index(_, parent) => *parent,
            };
        }
        let mut path = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Key(key, _) if path.is_empty() => path.push_str(key),
                Step::Key(key, _) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(index, _) => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }
}

/// Walks one JSON value; on a repeated key it records it and stops the walk with an error.
struct Walk<'a, 'f> {
    at: Option<&'a Step<'a>>,
    found: &'f mut Option<(String, String)>,
}

/// The error that ends the walk (its text is never shown).
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stop")
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object key, borrowed from the input where it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

/// Keys up to this many are compared in a list; more go into a hash set.
const LISTED_KEYS: usize = 32;

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for index in 0.. {
            let step = Step::Index(index, self.at);
            if seq.next_element_seed(Walk { at: Some(&step), found: &mut *self.found })?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut listed, mut hashed): (Vec<Cow<'de, str>>, HashSet<Cow<'de, str>>) = Default::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = if hashed.is_empty() && listed.len() < LISTED_KEYS {
                listed.contains(&key)
            } else {
                hashed.extend(listed.drain(..));
                hashed.contains(&key)
            };
            if repeated {
                *self.found = Some((self.at.map_or_else(String::new, Step::spell), key.into_owned()));
                return Err(de::Error::custom(Stop));
            }
            {
                let step = Step::Key(&key, self.at);
                map.next_value_seed(Walk { at: Some(&step), found: &mut *self.found })?;
            }
            if hashed.is_empty() && listed.len() < LISTED_KEYS {
                listed.push(key);
            } else {
                hashed.insert(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_repeated_key_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"a": 1, "b": [1, {"c": 2}], "d": {"e": null}}"#), None);
        assert_eq!(
            duplicate_key(br#"{"type": "view", "type": "purchase"}"#),
            Some((String::new(), "type".to_string()))
        );
        let nested = br#"{"events": [{"type": "view"}, {"item_id": "a", "x": {}, "item_id": "b"}]}"#;
        assert_eq!(duplicate_key(nested), Some(("events[1]".to_string(), "item_id".to_string())));
        let deeper = br#"{"identifiers": {"email": "a@b", "email": "c@d"}}"#;
        assert_eq!(duplicate_key(deeper), Some(("identifiers".to_string(), "email".to_string())));
        // Escapes spell the same key; keys differing in case are different keys.
        assert!(duplicate_key(br#"{"a": 1, "\u0061": 2}"#).is_some());
        assert_eq!(duplicate_key(br#"{"a": 1, "A": 2}"#), None);
        // The same key in sibling objects is no repeat; broken JSON is the parser's to name.
        assert_eq!(duplicate_key(br#"[{"a": 1}, {"a": 2}]"#), None);
        assert_eq!(duplicate_key(br#"{"a": 1, "b""#), None);
        // Past the list of keys compared one by one, the hash set still finds a repeat.
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"k7\": 0}}", many.join(", "));
        assert_eq!(duplicate_key(text.as_bytes()), Some((String::new(), "k7".to_string())));
        assert_eq!(duplicate_key(format!("{{{}}}", many.join(", ")).as_bytes()), None);
    }
}
