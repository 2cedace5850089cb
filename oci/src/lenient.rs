//! Decoding as Docker's and containerd's Go structs do: `null` is the same as an absent field
//! (an empty string, list or map), a string where Docker's `StrSlice` allows one is a list of
//! one, a set member's value (`"80/tcp": {}`) may be anything.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny};
use std::collections::BTreeMap;

/// A string; `null` is "".
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// An optional string; `null` is absent.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A list; `null` is empty.
pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A map; `null` is empty, a `null` value is "".
pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A set written as a map to empty objects (`ExposedPorts`, `Volumes`); `null` is empty and
/// the members' values are not looked at.
pub fn set<'de, D: Deserializer<'de>, T: Default>(d: D) -> Result<BTreeMap<String, T>, D::Error> {
    let m = Option::<BTreeMap<String, IgnoredAny>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_keys().map(|k| (k, T::default())).collect())
}

/// Docker's `StrSlice`: a list of strings, or one string; `null` is absent, `[]` is an empty
/// list (set, but empty).
pub fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

/// A boolean; `null` is false.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or_default())
}

/// A number; `null` is 0. Go's durations are signed nanoseconds: a negative one is 0 here.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(0),
        Some(n) => match (n.as_u64(), n.as_i64()) {
            (Some(v), _) => Ok(v),
            (None, Some(_)) => Ok(0),
            (None, None) => Err(de::Error::custom(format!("expected an integer, found {n}"))),
        },
    }
}
