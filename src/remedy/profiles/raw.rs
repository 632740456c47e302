//! Step one of loading a profile: plain serde types that mirror the file
//! (`deny_unknown_fields` everywhere), read in file order with duplicates kept.

use std::fmt;

use serde::Deserialize;

/// A profile file as written (step one of loading).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) description: String,
    #[serde(default)]
    pub(super) extends: Option<String>,
    /// Keys outside `net.` this profile may set (explicit opt-in).
    #[serde(default)]
    pub(super) allow_outside_net: Vec<String>,
    #[serde(default)]
    pub(super) params: Pairs<crate::yaml::Value>,
    #[serde(default)]
    pub(super) sysctls: Pairs<RawSetting>,
}

/// A mapping read in file order with duplicates kept, so a key written twice
/// (also as `net.ipv4.x` and `net/ipv4/x`) is reported instead of silently overridden.
#[derive(Debug)]
pub(super) struct Pairs<V>(pub(super) Vec<(String, V)>);

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs<V>, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    v.push(entry);
                }
                Ok(Pairs(v))
            }
            fn visit_unit<E>(self) -> Result<Pairs<V>, E> {
                Ok(Pairs(Vec::new()))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSetting {
    #[serde(default)]
    pub(super) value: Option<crate::yaml::Value>,
    #[serde(default)]
    pub(super) at_least: Option<i64>,
    #[serde(default)]
    pub(super) at_most: Option<i64>,
    #[serde(default)]
    pub(super) reason: Option<String>,
}
