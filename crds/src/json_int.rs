//! Integers as JSON Schema means them: `5` and `5.0` are both the integer 5 (serde's integer types
//! only take the first). For request bodies validated against a published schema.

use serde::{Deserialize, Deserializer};

const TWO_63: f64 = 9_223_372_036_854_775_808.0;

fn whole(n: serde_json::Number) -> Result<i64, String> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // 2^63 as f64: every whole float in [-2^63, 2^63) converts exactly.
        Some(f) if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) => Ok(f as i64),
        _ => Err(format!("{n} is not an integer in range")),
    }
}

fn narrow<T: TryFrom<i64>, E: serde::de::Error>(i: i64) -> Result<T, E> {
    T::try_from(i).map_err(|_| E::custom(format!("{i} is out of range")))
}

/// An optional `i64`.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(whole).transpose().map_err(serde::de::Error::custom)
}

/// An optional `i32`.
pub fn opt_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    opt_i64(d)?.map(narrow).transpose()
}

/// An optional `u8`.
pub fn opt_u8<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    opt_i64(d)?.map(narrow).transpose()
}

/// An `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    whole(serde_json::Number::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// An `i32`.
pub fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    narrow(i64(d)?)
}

/// A `u64`.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    narrow(i64(d)?)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::i32")]
        a: i32,
        #[serde(default, deserialize_with = "super::opt_u8")]
        b: Option<u8>,
    }

    #[test]
    fn integral_floats_are_integers_fractions_are_not() {
        let t: T = serde_json::from_str(r#"{"a": 5.0, "b": 7}"#).unwrap();
        assert_eq!((t.a, t.b), (5, Some(7)));
        assert!(serde_json::from_str::<T>(r#"{"a": 5.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 1, "b": 300}"#).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Wide {
        #[serde(deserialize_with = "super::i64")]
        w: i64,
    }

    #[test]
    fn large_whole_floats_are_read_exactly() {
        // Without exact float parsing `2^51 - 1` written as a float came back with a fraction.
        let w: Wide = serde_json::from_str(r#"{"w": 2251799813685247.0}"#).unwrap();
        assert_eq!(w.w, 2_251_799_813_685_247);
        let w: Wide = serde_json::from_str(r#"{"w": -9007199254740991.0}"#).unwrap();
        assert_eq!(w.w, -9_007_199_254_740_991);
    }
}
