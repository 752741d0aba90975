//! JSON helpers: RFC 6901 pointers, RFC 8785 canonical form, SHA-256, and the
//! limits every stored document obeys.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::violation::Violation;

/// The largest canonical document accepted, in bytes (64 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The largest integer magnitude canonical JSON can carry exactly (`2^53`).
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// The RFC 8785 (JSON Canonicalization Scheme) form of a value.
///
/// # Errors
/// Returns a sentence when the value cannot be canonicalised (a number that
/// has no finite IEEE 754 form).
pub fn canonical<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json_canonicalizer::to_string(value).map_err(|e| format!("cannot canonicalise: {e}"))
}

/// The RFC 8785 form of a JSON value, as [`canonical`] gives it, but
/// without the general serializer's per-key buffering when it is not needed.
///
/// serde_json's compact writer already produces RFC 8785 text for most
/// documents: it escapes exactly what RFC 8785 escapes (`"`, `\\`, and
/// control characters as `\b \f \n \r \t` or lowercase `\u00xx`) and
/// writes integers as digits. It differs only for floating-point numbers and
/// integers beyond 2^53 (RFC 8785 writes ECMAScript number forms) and for key
/// order when a key holds a character at or above U+E000 (RFC 8785 sorts by
/// UTF-16 units, serde_json by bytes). A value with any of those, or with keys
/// not in ascending order, takes the general path, so the text is always
/// exactly what [`canonical`] gives.
///
/// # Errors
/// As [`canonical`].
pub fn canonical_json(value: &Value) -> Result<String, String> {
    if compact_is_canonical(value, 0) {
        serde_json::to_string(value).map_err(|e| format!("cannot canonicalise: {e}"))
    } else {
        canonical(value)
    }
}

/// Whether serde_json's compact text of `value` is its RFC 8785 form (see
/// [`canonical_json`]). Deep nesting takes the general path.
fn compact_is_canonical(value: &Value, depth: u32) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => {
            n.as_u64().is_some_and(|u| u <= MAX_SAFE_INTEGER)
                || n.as_i64()
                    .is_some_and(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER)
        }
        Value::Array(items) => {
            depth < 128 && items.iter().all(|v| compact_is_canonical(v, depth + 1))
        }
        Value::Object(map) => {
            let mut prev: Option<&str> = None;
            depth < 128
                && map.iter().all(|(k, v)| {
                    // Bytes below 0xEE: no character at or above U+E000, so
                    // byte order is UTF-16 order.
                    let ordered =
                        k.bytes().all(|b| b < 0xEE) && prev.is_none_or(|p| p < k.as_str());
                    prev = Some(k);
                    ordered && compact_is_canonical(v, depth + 1)
                })
        }
    }
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    lower_hex(&Sha256::digest(bytes))
}

/// The digits of lowercase hex, by value.
pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of a digest, two table lookups per byte (`hex::encode`
/// builds its string one `char` at a time, which showed in verify's
/// profile).
fn lower_hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 2);
    for &b in digest {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Lowercase hex SHA-256 of the canonical form of a value.
///
/// # Errors
/// As [`canonical`].
pub fn canonical_sha256<T: Serialize>(value: &T) -> Result<String, String> {
    canonical(value).map(|c| sha256_hex(c.as_bytes()))
}

/// Lowercase hex SHA-256 of the canonical form of a parsed JSON value, the
/// same as [`canonical_sha256`], but streaming serde_json's compact text
/// into the hash without building it when that text is the RFC 8785 form
/// (see [`canonical_json`]). Anything else takes [`canonical_sha256`].
///
/// # Errors
/// As [`canonical`].
pub fn value_sha256(value: &Value) -> Result<String, String> {
    if !compact_is_canonical(value, 0) {
        return canonical_sha256(value);
    }
    let mut hasher = HashWriter(Sha256::new());
    serde_json::to_writer(&mut hasher, value).map_err(|e| format!("cannot canonicalise: {e}"))?;
    Ok(lower_hex(&hasher.0.finalize()))
}

/// Feeds written bytes to a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Escapes one reference token for a JSON Pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// Builds a JSON Pointer from its unescaped segments.
pub fn pointer_from_segments<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&escape_token(s.as_ref()));
    }
    out
}

/// Splits a JSON Pointer (RFC 6901) into unescaped segments.
///
/// # Errors
/// Returns a sentence when the pointer is not empty and does not start with
/// `/`, or contains a `~` not followed by `0` or `1`.
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON Pointer must start with '/'".into());
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("'~' in a JSON Pointer must be followed by 0 or 1".into()),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Parses a user-given path: a JSON Pointer when it starts with `/`,
/// otherwise dotted segments (`onboarding.enabled`).
///
/// # Errors
/// Returns a sentence for an empty path, an empty dotted segment, or an
/// invalid pointer.
pub fn parse_user_path(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Err("path is empty".into());
    }
    if path.starts_with('/') {
        return parse_pointer(path);
    }
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!(
            "path {path:?} has an empty segment (use a JSON Pointer such as /features/x for keys containing a dot)"
        ));
    }
    Ok(segments)
}

/// Renders a path for people: dotted when no segment contains a dot or
/// slash, otherwise the JSON Pointer.
pub fn display_path(pointer: &str) -> String {
    match parse_pointer(pointer) {
        Ok(segments)
            if !segments.is_empty()
                && segments
                    .iter()
                    .all(|s| !s.is_empty() && !s.contains('.') && !s.contains('/')) =>
        {
            segments.join(".")
        }
        _ => pointer.to_owned(),
    }
}

/// Checks the limits every stored document and input obeys, adding a
/// violation for each breach: integers beyond ±2^53, non-finite numbers,
/// U+0000 in any string or key.
pub fn check_limits(value: &Value, path: &mut Vec<String>, out: &mut Vec<Violation>) {
    // Almost every document is within the limits: prove that without
    // building a path, and walk again for the pointers only when it is not.
    if within_limits(value) {
        return;
    }
    limits_walk(value, path, out);
}

/// Whether [`check_limits`] would find nothing, without allocating.
fn within_limits(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER
            } else {
                n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.abs() <= MAX_SAFE_INTEGER as f64)
            }
        }
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(within_limits),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.contains('\0') && within_limits(v)),
        Value::Null | Value::Bool(_) => true,
    }
}

fn limits_walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<Violation>) {
    match value {
        Value::Number(n) => {
            let too_big = if let Some(u) = n.as_u64() {
                u > MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() > MAX_SAFE_INTEGER
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => f.abs() > MAX_SAFE_INTEGER as f64,
                    _ => {
                        out.push(Violation::new(
                            pointer_from_segments(path),
                            "numbers must be finite",
                        ));
                        return;
                    }
                }
            };
            if too_big {
                out.push(Violation::new(
                    pointer_from_segments(path),
                    "numbers beyond ±2^53 cannot be stored exactly (write ids as strings)",
                ));
            }
        }
        Value::String(s) => {
            if s.contains('\0') {
                out.push(Violation::new(
                    pointer_from_segments(path),
                    "strings must not contain U+0000",
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                limits_walk(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                if k.contains('\0') {
                    out.push(Violation::new(
                        pointer_from_segments(path),
                        "keys must not contain U+0000",
                    ));
                }
                limits_walk(v, path, out);
                path.pop();
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Reads the value at a pointer's segments.
pub fn get_at<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for s in segments {
        current = match current {
            Value::Object(map) => map.get(s)?,
            Value::Array(items) => items.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Sets the value at a pointer's segments, creating objects along the way.
///
/// # Errors
/// Returns a sentence when a parent on the way is not an object, or the path
/// is empty.
pub fn set_at(target: &mut Value, segments: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = segments.split_last() else {
        return Err("cannot set the whole document through a path".into());
    };
    let mut current = target;
    for (depth, s) in parents.iter().enumerate() {
        if current.is_null() {
            *current = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = current else {
            return Err(format!(
                "{} is not an object",
                pointer_from_segments(&segments[..depth])
            ));
        };
        current = map
            .entry(s.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if current.is_null() {
        *current = Value::Object(serde_json::Map::new());
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        _ => Err(format!(
            "{} is not an object",
            pointer_from_segments(parents)
        )),
    }
}

/// Removes the value at a pointer's segments; returns whether anything was
/// there.
pub fn remove_at(target: &mut Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = target;
    for s in parents {
        current = match current {
            Value::Object(map) => match map.get_mut(s) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        Value::Object(map) => map.remove(last).is_some(),
        _ => false,
    }
}

/// Whether `text` is already the RFC 8785 form that [`canonical`] gives for
/// the JSON value it holds, so that hashing `text` equals hashing
/// `canonical(parse(text))`. One pass, no allocation for ASCII keys without
/// escapes. It may answer `false` for some canonical texts (nesting deeper
/// than 64, unusual numbers that fail to re-format): callers then take the
/// slow path of parsing and re-canonicalising, so only `true` must be exact.
pub fn is_canonical(text: &str) -> bool {
    let mut pos = 0;
    canonical_value(text, &mut pos, 0) && pos == text.len()
}

fn canonical_value(text: &str, pos: &mut usize, depth: u32) -> bool {
    let b = text.as_bytes();
    if depth > 64 {
        return false;
    }
    match b.get(*pos) {
        Some(b'{') => {
            *pos += 1;
            if b.get(*pos) == Some(&b'}') {
                *pos += 1;
                return true;
            }
            let mut prev: Option<(std::ops::Range<usize>, bool)> = None;
            loop {
                let Some((key, plain)) = canonical_string(b, pos) else {
                    return false;
                };
                if let Some((p, prev_plain)) = prev {
                    let (a, k) = (&text[p], &text[key.clone()]);
                    let before = if prev_plain && plain {
                        a < k
                    } else {
                        key_before(a, k)
                    };
                    if !before {
                        return false;
                    }
                }
                prev = Some((key, plain));
                if b.get(*pos) != Some(&b':') {
                    return false;
                }
                *pos += 1;
                if !canonical_value(text, pos, depth + 1) {
                    return false;
                }
                match b.get(*pos) {
                    Some(b',') => *pos += 1,
                    Some(b'}') => {
                        *pos += 1;
                        return true;
                    }
                    _ => return false,
                }
            }
        }
        Some(b'[') => {
            *pos += 1;
            if b.get(*pos) == Some(&b']') {
                *pos += 1;
                return true;
            }
            loop {
                if !canonical_value(text, pos, depth + 1) {
                    return false;
                }
                match b.get(*pos) {
                    Some(b',') => *pos += 1,
                    Some(b']') => {
                        *pos += 1;
                        return true;
                    }
                    _ => return false,
                }
            }
        }
        Some(b'"') => canonical_string(b, pos).is_some(),
        Some(b't') => canonical_literal(b, pos, b"true"),
        Some(b'f') => canonical_literal(b, pos, b"false"),
        Some(b'n') => canonical_literal(b, pos, b"null"),
        Some(b'-' | b'0'..=b'9') => canonical_number(text, pos),
        _ => false,
    }
}

/// Scans a number at `pos`; whether it is written as RFC 8785 writes it.
fn canonical_number(text: &str, pos: &mut usize) -> bool {
    let b = text.as_bytes();
    let start = *pos;
    while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = b.get(*pos) {
        *pos += 1;
    }
    let token = &text[start..*pos];
    let digits = token.strip_prefix('-').unwrap_or(token);
    // Integers below 10^15 (< 2^53) print as themselves in ES6 form.
    let plain = token == "0"
        || (!digits.is_empty()
            && digits.len() <= 15
            && !digits.starts_with('0')
            && digits.bytes().all(|c| c.is_ascii_digit()));
    plain
        || serde_json::from_str::<Value>(token)
            .ok()
            .and_then(|v| canonical(&v).ok())
            .is_some_and(|c| c == token)
}

fn canonical_literal(b: &[u8], pos: &mut usize, literal: &[u8]) -> bool {
    if b.get(*pos..*pos + literal.len()) == Some(literal) {
        *pos += literal.len();
        true
    } else {
        false
    }
}

/// Scans a string at `pos` written as RFC 8785 writes it (only `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t` and lowercase `\u00xx` for other control
/// characters escaped); returns the span between the quotes, and whether it
/// is plain ASCII without escapes (so it compares as its bytes).
fn canonical_string(b: &[u8], pos: &mut usize) -> Option<(std::ops::Range<usize>, bool)> {
    if b.get(*pos) != Some(&b'"') {
        return None;
    }
    let start = *pos + 1;
    let mut i = start;
    let mut plain = true;
    loop {
        let (next, ascii) = skip_plain(b, i);
        plain &= ascii;
        i = next;
        match *b.get(i)? {
            b'"' => {
                *pos = i + 1;
                return Some((start..i, plain));
            }
            0..=0x1f => return None,
            b'\\' => {
                plain = false;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        let lower = |c: u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
                        if hex[0] != b'0'
                            || hex[1] != b'0'
                            || !matches!(hex[2], b'0' | b'1')
                            || !lower(hex[3])
                        {
                            return None;
                        }
                        if hex[2] == b'0' && matches!(hex[3], b'8' | b'9' | b'a' | b'c' | b'd') {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            c => {
                plain &= c.is_ascii();
                i += 1;
            }
        }
    }
}

/// The first index at or after `i` that holds a `"`, a `\\` or a control
/// character (or where fewer than eight bytes are left), found eight bytes at
/// a time with the word-at-a-time tests of "Bit Twiddling Hacks", and whether
/// every byte skipped was ASCII.
#[inline]
fn skip_plain(b: &[u8], mut i: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut high = 0;
    while let Some(word) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        let special = (zero_byte(quote) | zero_byte(backslash) | below_space) & HIGH;
        if special != 0 {
            // A borrow only runs upward from a true match, so the lowest
            // flagged byte is exactly the first special one: jump to it.
            let first = special.trailing_zeros() / 8;
            if first > 0 {
                high |= w & (u64::MAX >> (64 - 8 * first));
            }
            return (i + first as usize, high & HIGH == 0);
        }
        high |= w;
        i += 8;
    }
    (i, high & HIGH == 0)
}

/// Whether object key `a` sorts strictly before `b` in RFC 8785 order (UTF-16
/// code units of the unescaped text); both are canonical string contents.
fn key_before(a: &str, b: &str) -> bool {
    let simple = |s: &str| s.bytes().all(|c| c.is_ascii() && c != b'\\');
    if simple(a) && simple(b) {
        return a < b;
    }
    let units = |s: &str| -> Option<Vec<u16>> {
        let text: String = serde_json::from_str(&format!("\"{s}\"")).ok()?;
        Some(text.encode_utf16().collect())
    };
    match (units(a), units(b)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `is_canonical(t)` must imply `canonical(parse(t)) == t`.
    fn agrees(text: &str) {
        if is_canonical(text) {
            let value: Value = serde_json::from_str(text).expect("canonical text parses");
            assert_eq!(canonical(&value).expect("canonicalises"), text, "{text:?}");
        }
    }

    #[test]
    fn lower_hex_is_the_hex_crate_s_lowercase_form() {
        for bytes in [&b""[..], b"a", b"guildconf", &[0, 15, 16, 127, 128, 255]] {
            let digest = Sha256::digest(bytes);
            assert_eq!(sha256_hex(bytes), hex::encode(digest));
            assert_eq!(lower_hex(bytes), hex::encode(bytes));
        }
    }

    /// The allocation-free check agrees with the walk that names the paths,
    /// at each limit's edge and deep inside arrays and objects.
    #[test]
    fn the_quick_limit_check_agrees_with_the_walk() {
        let edge = MAX_SAFE_INTEGER;
        let cases = [
            json!(edge),
            json!(edge + 1),
            json!(-(edge as i64)),
            json!(-(edge as i64) - 1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(9_007_199_254_740_992.0),
            json!(9_007_199_254_740_994.0),
            json!(-9_007_199_254_740_994.0),
            json!(1.5),
            json!(1e300),
            json!("a\u{0}b"),
            json!({"a\u{0}": 1}),
            json!({"ok": [1, 2, {"deep": [true, null, "x\u{0}"]}]}),
            json!({"ok": [1, 2, {"deep": [true, null, "x"]}], "n": edge}),
            json!([[[[edge + 1]]]]),
            json!({}),
            json!(null),
        ];
        for value in cases {
            let mut walked = Vec::new();
            limits_walk(&value, &mut Vec::new(), &mut walked);
            let mut checked = Vec::new();
            check_limits(&value, &mut Vec::new(), &mut checked);
            assert_eq!(within_limits(&value), walked.is_empty(), "{value}");
            assert_eq!(checked, walked, "{value}");
        }
    }

    #[test]
    fn specials_are_found_at_every_offset_of_the_word_skip() {
        for offset in 0..20 {
            let pad = "a".repeat(offset);
            // A raw control character or an uppercase escape is never canonical.
            for bad in ["\u{1}", "\u{1f}", "\\u001F", "\\/"] {
                let text = format!("[\"{pad}{bad}{pad}\"]");
                assert!(!is_canonical(&text), "{text:?}");
            }
            // Escapes RFC 8785 writes, a quote closing early, non-ASCII text.
            for good in ["\\\"", "\\\\", "\\n", "\\u001f", "é", "😀", "\u{7f}"] {
                let text = format!("[\"{pad}{good}{pad}\"]");
                assert!(is_canonical(&text), "{text:?}");
                agrees(&text);
            }
            assert!(!is_canonical(&format!("[\"{pad}\"{pad}\"]")));
            // A `\u` escape is `\u00` then 0 or 1, then a lowercase hex digit.
            for bad in ["\\u00 0", "\\u00\"0", "\\u00/f", "\\u002f"] {
                let text = format!("[\"{pad}{bad}{pad}\"]");
                assert!(!is_canonical(&text), "{text:?}");
            }
            // Key order: plain ASCII keys compare as bytes, others as UTF-16
            // code units (U+1F600 is D83D DE00, so it sorts before U+E000).
            let ordered = format!(
                "{{\"{pad}a\":1,\"{pad}b\":2,\"{pad}é\":3,\"{pad}😀\":4,\"{pad}\u{e000}\":5}}"
            );
            assert!(is_canonical(&ordered), "{ordered:?}");
            agrees(&ordered);
            let swapped = format!("{{\"{pad}b\":1,\"{pad}a\":2}}");
            assert!(!is_canonical(&swapped), "{swapped:?}");
            let by_code_point = format!("{{\"{pad}\u{e000}\":1,\"{pad}😀\":2}}");
            assert!(!is_canonical(&by_code_point), "{by_code_point:?}");
        }
    }

    #[test]
    fn canonical_texts_are_recognised() {
        let values = [
            json!({"b": 1, "a": [true, false, null, "x\u{1}\n\"\\/é€😀"], "": {}}),
            json!({"\u{e000}": 1, "\u{1f600}": 2, "a\nb": 3, "a\"": 4, "é": 5}),
            json!([
                0,
                -1,
                1.5,
                1e21,
                1e-7,
                -0.25,
                123_456_789_012_345_u64,
                9_007_199_254_740_993_u64
            ]),
            json!("\u{7f}\u{2028}\t\r\u{8}\u{c}"),
            json!([[], {}, [[{"z": [1]}]]]),
        ];
        for v in values {
            let text = canonical(&v).expect("canonicalises");
            assert!(is_canonical(&text), "{text}");
            agrees(&text);
        }
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            " 1",
            "1 ",
            "1.0",
            "-0",
            "01",
            "1E3",
            "1e3",
            "100000000000000000000000",
            r#""\u0041""#,
            r#""\/""#,
            r#""\u000a""#,
            r#""\u001F""#,
            r#"{"\u00e9":1}"#,
            r#"{"\ue000":1,"\ud83d\ude00":2}"#,
            "[1,]",
            "{",
            "tru",
            "",
        ] {
            assert!(!is_canonical(text), "{text}");
            agrees(text);
        }
        // Supplementary characters sort by UTF-16 units, before U+E000.
        assert!(is_canonical("{\"\u{1f600}\":2,\"\u{e000}\":1}"));
        agrees("{\"\u{1f600}\":2,\"\u{e000}\":1}");
    }

    proptest::proptest! {
        #[test]
        fn checker_never_accepts_a_non_canonical_text(text in "[\\[\\]{}\":,0-9a-e.+\\-\\\\ntrufls\u{e9}\u{1f600} ]{0,24}") {
            agrees(&text);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = "[a-cA\\u{0}-\\u{1f}\"\\\\/\u{7f}\u{e9}\u{d7ff}\u{e000}\u{ffff}\u{1f600}]{0,4}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-(1i64 << 54)..(1i64 << 54)).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                Just(9_007_199_254_740_992u64),
                Just(9_007_199_254_740_993u64)
            ]
            .prop_map(Value::from),
            key.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(key, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn canonical_json_agrees_with_canonical(value in arb_json()) {
            proptest::prop_assert_eq!(canonical_json(&value), canonical(&value));
        }
    }

    #[test]
    fn canonical_json_edge_cases() {
        for value in [
            json!({"\u{e000}": 1, "\u{1f600}": 2, "a": [1.5, -0.0, 1e21]}),
            json!([
                9_007_199_254_740_992u64,
                9_007_199_254_740_993u64,
                -9_007_199_254_740_993i64
            ]),
            json!({"a": "\u{0}\u{1f}\u{7f}\\\"/\u{2028}", "b": {"c": [[]]}}),
        ] {
            assert_eq!(canonical_json(&value), canonical(&value), "{value}");
        }
    }

    #[test]
    fn pointers_round_trip() {
        let segs = vec!["a/b".to_string(), "c~d".to_string(), String::new()];
        let p = pointer_from_segments(&segs);
        assert_eq!(p, "/a~1b/c~0d/");
        assert_eq!(parse_pointer(&p), Ok(segs));
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/a~2").is_err());
    }

    #[test]
    fn user_paths() {
        assert_eq!(
            parse_user_path("onboarding.enabled"),
            Ok(vec!["onboarding".to_string(), "enabled".to_string()])
        );
        assert_eq!(
            parse_user_path("/features/a.b"),
            Ok(vec!["features".to_string(), "a.b".to_string()])
        );
        assert!(parse_user_path("a..b").is_err());
        assert!(parse_user_path("").is_err());
        assert_eq!(display_path("/features/a.b"), "/features/a.b");
        assert_eq!(display_path("/onboarding/enabled"), "onboarding.enabled");
    }

    #[test]
    fn limits() {
        let mut out = Vec::new();
        check_limits(
            &json!({"a": 9007199254740993u64, "b": "x\u{0}y", "c": [-9007199254740993i64], "ok": 9007199254740992u64}),
            &mut Vec::new(),
            &mut out,
        );
        let paths: Vec<_> = out.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/a", "/b", "/c/0"]);
    }

    #[test]
    fn canonical_form_sorts_keys() {
        assert_eq!(
            canonical(&json!({"b": 1, "a": [1.0, "é"]})).as_deref(),
            Ok(r#"{"a":[1,"é"],"b":1}"#)
        );
    }
}
