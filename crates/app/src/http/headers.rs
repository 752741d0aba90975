//! The request and response headers the API gives meaning to: entity tags
//! (a config's version), preconditions, the idempotency key and the reason.

use axum::http::{HeaderMap, HeaderValue};

use super::problem::Problem;

/// `X-Reason`: why a write is made, when the body does not say.
pub(crate) const X_REASON: &str = "x-reason";
/// `Idempotency-Key`: a retry with the same key returns the first result.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The entity tag of a config version: `"N"`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A list of entity tags from `If-Match` or `If-None-Match`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tags {
    /// `*`: any current representation.
    Any,
    /// The versions named, each as `(weak, version)`; a tag that names no
    /// version (not `"<digits>"`) is kept out, as it can match none.
    Listed(Vec<(bool, u64)>),
}

impl Tags {
    /// Whether version `v` matches under the weak comparison
    /// (`If-None-Match`), where `W/"3"` and `"3"` are the same.
    pub(crate) fn matches_weakly(&self, v: u64) -> bool {
        match self {
            Tags::Any => true,
            Tags::Listed(tags) => tags.iter().any(|(_, t)| *t == v),
        }
    }

    /// The versions that match under the strong comparison (`If-Match`),
    /// where a weak tag matches nothing.
    pub(crate) fn strong_versions(&self) -> Vec<u64> {
        match self {
            Tags::Any => Vec::new(),
            Tags::Listed(tags) => tags
                .iter()
                .filter(|(weak, _)| !weak)
                .map(|(_, v)| *v)
                .collect(),
        }
    }
}

/// Parses one precondition header, when present. An item that is not `*`
/// or a quoted version (`"abc"`, `3` without quotes, a weak tag for
/// `If-Match`) names no version, so it matches nothing: the precondition
/// fails rather than the request.
///
/// # Errors
/// 400 when the header is not visible ASCII text.
pub(crate) fn tags(headers: &HeaderMap, name: &str) -> Result<Option<Tags>, Problem> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut listed = Vec::new();
    for value in values {
        let text = value.to_str().map_err(|_| {
            Problem::invalid(&format!("/headers/{name}"), "must be visible ASCII text")
        })?;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                return Ok(Some(Tags::Any));
            }
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let version = quoted
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(v) = version {
                listed.push((weak, v));
            }
        }
    }
    Ok(Some(Tags::Listed(listed)))
}

/// The `If-None-Match` of a read, parsed from the request's headers
/// without copying them (the config read is the hot path).
#[derive(Debug)]
pub(crate) struct IfNoneMatch(pub(crate) Option<Tags>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Problem> {
        tags(&parts.headers, "if-none-match").map(IfNoneMatch)
    }
}

/// The text of an optional header.
///
/// # Errors
/// 400 when it is not visible ASCII text.
pub(crate) fn text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Problem> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                Problem::invalid(
                    &format!("/headers/{name}"),
                    "must be ASCII text (give a non-ASCII reason in the body)",
                )
            })
        })
        .transpose()
}

/// The reason of a write: from the body or from `X-Reason`, not both.
///
/// # Errors
/// 400 when both give one.
pub(crate) fn reason(
    headers: &HeaderMap,
    in_body: Option<String>,
) -> Result<Option<String>, Problem> {
    match (in_body, text(headers, X_REASON)?) {
        (Some(_), Some(_)) => Err(Problem::unprocessable(
            "/reason",
            "give the reason in the body or in the X-Reason header, not both",
        )),
        (body, header) => Ok(body.or(header)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<Tags> {
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_str(value).expect("a header"));
        tags(&h, "if-match").expect("parses")
    }

    #[test]
    fn entity_tags_parse_as_versions() {
        assert_eq!(parse("*"), Some(Tags::Any));
        assert_eq!(parse("\"3\""), Some(Tags::Listed(vec![(false, 3)])));
        assert_eq!(
            parse("W/\"3\", \"4\""),
            Some(Tags::Listed(vec![(true, 3), (false, 4)]))
        );
        // A tag that names no version matches nothing, but is not an error.
        assert_eq!(parse("\"abc\""), Some(Tags::Listed(vec![])));
        assert_eq!(parse("\"+3\""), Some(Tags::Listed(vec![])));
        let tags = parse("W/\"3\", \"4\"").expect("tags");
        assert_eq!(tags.strong_versions(), vec![4]);
        assert!(tags.matches_weakly(3));
        // Not a tag at all: it matches nothing either.
        assert_eq!(parse("3"), Some(Tags::Listed(vec![])));
        assert_eq!(parse(""), Some(Tags::Listed(vec![])));
    }
}
