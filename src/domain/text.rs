//! What text the system accepts: storable in Postgres `text` (no NUL, U+0000; every other
//! Unicode scalar value is storable in a UTF-8 database) and, for required text, not blank.
//!
//! The HTTP layer publishes the same rules as JSON Schema patterns ([`NUL_FREE_PATTERN`],
//! [`NOT_BLANK_PATTERN`]), so the document and the checks cannot drift apart.

use super::FieldError;

/// Every request string: no NUL anywhere.
pub const NUL_FREE_PATTERN: &str = r"^[^\x00]*$";

/// A required text: no NUL, and at least one character that is not whitespace as
/// [`str::trim`] sees it (Unicode `White_Space`, listed here one by one so every regex dialect
/// agrees: Python's `\s` and ECMAScript's `\s` each differ from it).
pub const NOT_BLANK_PATTERN: &str = concat!(
    r"^[^\x00]*",
    r"[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\x00]*$",
);

/// Longest value of any query parameter, in characters (every one is declared with it).
pub const MAX_QUERY_VALUE: usize = 200;

/// 400 for a value holding NUL.
pub fn nul_error(field: impl Into<String>) -> FieldError {
    FieldError::new(field, "must not contain the NUL character (U+0000)")
}

/// Refuses NUL.
pub fn storable(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        return Err(nul_error(field));
    }
    Ok(())
}

/// A required text: storable, at most `max` characters as sent, not blank; returns it trimmed.
pub fn required(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    optional(field, value, max).and_then(|v| {
        if v.is_empty() {
            return Err(FieldError::new(field, format!("must be 1 to {max} characters, not only whitespace")));
        }
        Ok(v)
    })
}

/// An optional text: storable, at most `max` characters as sent; returns it trimmed.
pub fn optional(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    storable(field, value)?;
    if value.chars().count() > max {
        return Err(FieldError::new(field, format!("must be at most {max} characters")));
    }
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_text_is_trimmed_bounded_as_sent_and_never_blank_or_nul() {
        assert_eq!(required("name", "  Lee ", 10).unwrap(), "Lee");
        assert_eq!(required("name", " \u{3000}\u{85}", 10).unwrap_err().field, "name");
        assert_eq!(required("name", "a\0b", 10).unwrap_err().reason, nul_error("name").reason);
        assert!(required("name", "abc       x", 10).is_err());
        // Not Unicode whitespace, so not blank (the published pattern agrees).
        assert_eq!(required("name", "\u{1c}", 10).unwrap(), "\u{1c}");
        assert_eq!(optional("d", "   ", 10).unwrap(), "");
    }

    #[test]
    fn the_blank_pattern_lists_exactly_what_trim_removes() {
        let class = NOT_BLANK_PATTERN.split('[').nth(2).unwrap();
        for c in (0..=0x3000u32).filter_map(char::from_u32).filter(|c| c.is_whitespace()) {
            let listed = match c as u32 {
                0x2000..=0x200a => class.contains(r"\u2000-\u200a"),
                0x09 => class.contains(r"\t"),
                0x0a => class.contains(r"\n"),
                0x0d => class.contains(r"\r"),
                0x20 => class.contains(' '),
                n if n < 0x100 => class.contains(&format!(r"\x{n:02x}")),
                n => class.contains(&format!(r"\u{n:04x}")),
            };
            assert!(listed, "whitespace U+{:04X} is missing from the pattern", c as u32);
        }
    }
}
