//! Whole numbers as JSON Schema has them: `integer` includes `3.0`, and an `int64` ends at
//! `i64::MAX`. serde's `u64` refuses the first and takes past the second; these readers agree
//! with the document instead.

use serde::{Deserialize, Deserializer};

/// An optional `integer` of at least 0 and at most `i64::MAX`, written as `3` or `3.0`.
pub fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=i64::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    match whole {
        Some(n) if n <= i64::MAX as u64 => Ok(Some(n)),
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a whole number from 0 to {}",
            i64::MAX
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::whole")]
        n: Option<u64>,
    }

    fn read(json: &str) -> Option<Option<u64>> {
        serde_json::from_str::<T>(json).ok().map(|t| t.n)
    }

    #[test]
    fn whole_numbers_as_the_schema_says() {
        assert_eq!(read(r#"{"n": 3}"#), Some(Some(3)));
        assert_eq!(read(r#"{"n": 3.0}"#), Some(Some(3)));
        assert_eq!(read(r#"{}"#), Some(None));
        assert_eq!(read(r#"{"n": null}"#), Some(None));
        assert_eq!(
            read(r#"{"n": 9223372036854775807}"#),
            Some(Some(i64::MAX as u64))
        );
        assert_eq!(read(r#"{"n": 9223372036854775808}"#), None);
        assert_eq!(read(r#"{"n": 3.5}"#), None);
        assert_eq!(read(r#"{"n": -1}"#), None);
    }
}
