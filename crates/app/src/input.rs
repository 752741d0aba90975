//! Reading what a user hands in (a `--file` document, the lines of an export)
//! with a size cap, so `apply --file /dev/zero` fails fast instead of growing
//! without bound, and with bytes that are not UTF-8 reported, not panicked on.

use std::io::{BufRead, Read};

use guildconf_domain::json::MAX_DOCUMENT_BYTES;

/// The most bytes read from one input: a `--file` document, or one line of
/// an export. Sixteen times the 64 KiB limit of a canonical document, which
/// leaves room for pretty-printed input and for an export line that carries
/// a document's snapshot and its changes (before and after) besides.
pub const MAX_INPUT_BYTES: usize = 16 * MAX_DOCUMENT_BYTES;

/// Why an input could not be read.
#[derive(Debug)]
pub enum InputError {
    /// More than [`MAX_INPUT_BYTES`].
    TooLarge,
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The read itself failed.
    Io(std::io::Error),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::TooLarge => write!(
                f,
                "is larger than {} KiB (a document's canonical JSON is at most {} KiB)",
                MAX_INPUT_BYTES / 1024,
                MAX_DOCUMENT_BYTES / 1024
            ),
            InputError::NotUtf8 => f.write_str("is not UTF-8"),
            InputError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// The whole of `reader` as text, at most [`MAX_INPUT_BYTES`].
///
/// # Errors
/// [`InputError`] when it is larger, not UTF-8, or unreadable.
pub fn read_capped(reader: impl Read) -> Result<String, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(InputError::Io)?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| InputError::NotUtf8)
}

/// The lines of `reader` (without their `\n`), each at most
/// [`MAX_INPUT_BYTES`]; an error names what was wrong with one line and
/// ends nothing: the caller decides.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<String, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buffer.clear();
        let limit = MAX_INPUT_BYTES as u64 + 2;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buffer);
        match read {
            Err(e) => {
                self.done = true;
                Some(Err(InputError::Io(e)))
            }
            Ok(0) => None,
            Ok(_) => {
                if self.buffer.last() == Some(&b'\n') {
                    self.buffer.pop();
                } else if self.buffer.len() as u64 >= limit {
                    // The rest of an oversized line is not worth reading.
                    self.done = true;
                    return Some(Err(InputError::TooLarge));
                }
                if self.buffer.len() > MAX_INPUT_BYTES {
                    self.done = true;
                    return Some(Err(InputError::TooLarge));
                }
                Some(
                    String::from_utf8(std::mem::take(&mut self.buffer))
                        .map_err(|_| InputError::NotUtf8),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_past_the_cap_is_refused_without_reading_on() {
        let endless = std::io::repeat(b' ');
        assert!(matches!(read_capped(endless), Err(InputError::TooLarge)));
        assert_eq!(read_capped(&b"{}"[..]).ok().as_deref(), Some("{}"));
        assert!(matches!(
            read_capped(&b"\xff"[..]),
            Err(InputError::NotUtf8)
        ));
    }

    #[test]
    fn lines_are_capped_and_checked_one_by_one() {
        let text = b"a\n\xff\nb";
        let lines: Vec<_> = Lines::new(&text[..]).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].as_ref().ok().map(String::as_str), Some("a"));
        assert!(matches!(lines[1], Err(InputError::NotUtf8)));
        assert_eq!(lines[2].as_ref().ok().map(String::as_str), Some("b"));
        let endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let mut lines = Lines::new(endless);
        assert!(matches!(lines.next(), Some(Err(InputError::TooLarge))));
        assert!(lines.next().is_none());
    }
}
