//! A deserializer wrapper that reads every struct from a JSON object only.
//!
//! Serde's derived structs also accept a sequence of their fields in order (`["a", "b"]` for
//! `{ko, en}`), a form the published document never allows: a body `[1, 2]` or a nested
//! `"name": ["a", "b"]` would be accepted although the schema says `object`. [`ObjectsOnly`]
//! asks the wrapped deserializer for a map wherever a struct is wanted, at every depth, so such
//! input is refused as `invalid type: sequence, expected struct ...` naming its field.
//!
//! The wrapper passes through everything else unchanged: it wraps the visitors, sequences, maps
//! and enum accesses it hands out, so nested values are read through it too. Untagged enums
//! buffer their input before choosing a variant and are not reached by it: their struct
//! variants hold an [`Object`] instead.

use std::fmt;

use serde::{
    Deserialize,
    de::{
        self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
    },
};
use serde_json::{Map, Value};

/// See the module documentation; wraps a deserializer, visitor, seed or access alike.
pub struct ObjectsOnly<T>(pub T);

/// A struct read from a JSON object only, where [`ObjectsOnly`] does not reach: a variant of an
/// untagged enum.
#[derive(Debug, Clone)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        T::deserialize(ObjectsOnly(Value::Object(map))).map(Object).map_err(de::Error::custom)
    }
}

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(ObjectsOnly(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, ObjectsOnly(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, ObjectsOnly(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, ObjectsOnly(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, ObjectsOnly(visitor))
    }

    /// The one change: a struct is read as a map, so a sequence is an invalid type.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(ObjectsOnly(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, ObjectsOnly(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ObjectsOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(ObjectsOnly(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectsOnly(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(ObjectsOnly(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(ObjectsOnly(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(ObjectsOnly(data))
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for ObjectsOnly<T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for ObjectsOnly<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(ObjectsOnly(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ObjectsOnly<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(ObjectsOnly(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(ObjectsOnly(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for ObjectsOnly<A> {
    type Error = A::Error;
    type Variant = ObjectsOnly<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), A::Error> {
        self.0.variant_seed(ObjectsOnly(seed)).map(|(value, variant)| (value, ObjectsOnly(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for ObjectsOnly<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(ObjectsOnly(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, ObjectsOnly(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, ObjectsOnly(visitor))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Name {
        ko: String,
        en: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Patch {
        name: Option<Name>,
        tags: Vec<Name>,
        pair: Option<(i64, String)>,
    }

    fn read(json: &str) -> Result<Patch, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        Patch::deserialize(ObjectsOnly(&mut de)).map_err(|e| e.to_string())
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Plain(String),
        Named(Object<Name>),
    }

    #[test]
    fn an_untagged_variant_holding_an_object_refuses_a_sequence() {
        let named: Either = serde_json::from_str(r#"{"ko": "a"}"#).unwrap();
        assert!(matches!(named, Either::Named(Object(Name { ref ko, en: None })) if ko == "a"));
        assert!(matches!(serde_json::from_str(r#""a""#).unwrap(), Either::Plain(p) if p == "a"));
        assert!(serde_json::from_str::<Either>(r#"["a", "b"]"#).is_err());
        assert!(serde_json::from_str::<Either>(r#"{"ko": ["a"]}"#).is_err());
    }

    #[test]
    fn objects_are_read_as_before() {
        let patch = read(r#"{"name": {"ko": "가", "en": null}, "tags": [{"ko": "a"}], "pair": [1, "x"]}"#).unwrap();
        assert_eq!(patch.name, Some(Name { ko: "가".into(), en: None }));
        assert_eq!(patch.tags, vec![Name { ko: "a".into(), en: None }]);
        assert_eq!(patch.pair, Some((1, "x".into())));
    }

    #[test]
    fn a_sequence_where_a_struct_is_wanted_is_refused_at_any_depth() {
        // Plain serde accepts all three.
        assert!(serde_json::from_str::<Patch>(r#"[null, [], null]"#).is_ok());
        for json in [r#"[null, [], null]"#, r#"{"name": ["a", "b"], "tags": []}"#, r#"{"tags": [["a", null]]}"#] {
            let e = read(json).unwrap_err();
            assert!(e.starts_with("invalid type: sequence, expected struct"), "{json}: {e}");
        }
    }
}
