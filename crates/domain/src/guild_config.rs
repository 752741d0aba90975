//! The shipped config schema: `GuildConfig`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::ids::{json_kind, Snowflake};
use crate::json::escape_token;
use crate::redact::Secret;
use crate::schema::ConfigSchema;
use crate::secret_paths::SecretPaths;
use crate::violation::{Violation, Violations};

/// The longest welcome message, in Unicode scalar values.
pub const MAX_WELCOME_MESSAGE: usize = 2000;
/// The longest verification timeout, in minutes (one week).
pub const MAX_TIMEOUT_MINUTES: u64 = 7 * 24 * 60;

/// A guild's configuration, as a bot reads it. The stored form is the JSON
/// document produced by [`GuildConfigSchema::normalise`]; this struct is its
/// typed view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuildConfig {
    /// Role key (such as `moderator`) to role id.
    pub role_mapping: BTreeMap<String, Snowflake>,
    /// What happens when a member joins.
    pub onboarding: Onboarding,
    /// A yearly reset of roles.
    pub yearly_reset: YearlyReset,
    /// Where announcements go.
    pub announcements: Announcements,
    /// Feature flags.
    pub features: BTreeMap<String, bool>,
}

/// Onboarding of new members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Onboarding {
    /// Whether onboarding runs.
    pub enabled: bool,
    /// The channel greeting new members; required when enabled.
    pub welcome_channel: Option<Snowflake>,
    /// The greeting, at most 2000 Unicode scalar values.
    pub welcome_message: Option<String>,
    /// How members prove they are human.
    pub verification: Verification,
}

/// Member verification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// The verification mode.
    pub mode: VerificationMode,
    /// The role granted once verified; required unless the mode is `none`.
    pub verified_role: Option<Snowflake>,
    /// Minutes a member has to verify (1 to 10080).
    pub timeout_minutes: u64,
}

/// How members are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationMode {
    /// No verification.
    None,
    /// React to a message.
    Reaction,
    /// Solve a captcha.
    Captcha,
    /// A moderator verifies by hand.
    Manual,
}

/// The yearly reset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearlyReset {
    /// Whether the reset runs.
    pub enabled: bool,
    /// Month of the reset, 1 to 12.
    pub month: u32,
    /// Day of the reset; a real calendar day (29 February allowed).
    pub day: u32,
    /// IANA time zone the date is read in.
    pub timezone: String,
    /// Roles kept through the reset.
    pub preserve_roles: Vec<Snowflake>,
}

/// Announcements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcements {
    /// Whether announcements are posted.
    pub enabled: bool,
    /// The channel to post in; required when enabled.
    pub channel: Option<Snowflake>,
    /// A role to mention.
    pub mention_role: Option<Snowflake>,
    /// A webhook to post through (a secret https URL).
    pub webhook_url: Option<Secret<String>>,
}

impl GuildConfig {
    /// Reads the typed view of a normalised document.
    ///
    /// # Errors
    /// Returns the deserialisation error when `document` is not a normalised
    /// `GuildConfig` document.
    pub fn from_document(document: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(document)
    }
}

/// The [`ConfigSchema`] of [`GuildConfig`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GuildConfigSchema;

const ROLE_MAPPING: &str = "role_mapping";
const ONBOARDING: &str = "onboarding";
const YEARLY_RESET: &str = "yearly_reset";
const ANNOUNCEMENTS: &str = "announcements";
const FEATURES: &str = "features";

/// The shipped defaults, built once: every write normalises onto them.
static DEFAULTS: LazyLock<Value> = LazyLock::new(|| {
    json!({
        ROLE_MAPPING: {},
        ONBOARDING: {
            "enabled": false,
            "welcome_channel": null,
            "welcome_message": null,
            "verification": {"mode": "none", "verified_role": null, "timeout_minutes": 10}
        },
        YEARLY_RESET: {
            "enabled": false,
            "month": 1,
            "day": 1,
            "timezone": "UTC",
            "preserve_roles": []
        },
        ANNOUNCEMENTS: {"enabled": false, "channel": null, "mention_role": null, "webhook_url": null},
        FEATURES: {}
    })
});

impl ConfigSchema for GuildConfigSchema {
    fn defaults(&self) -> Value {
        DEFAULTS.clone()
    }

    fn normalise(&self, input: &Value) -> Result<Value, Violations> {
        let mut v = Validator::default();
        let out = v.object(input, "", &DEFAULTS, |v, obj, base, out| {
            v.role_mapping(obj.get(ROLE_MAPPING), out);
            v.section(
                obj.get(ONBOARDING),
                ONBOARDING,
                &base[ONBOARDING],
                out,
                Validator::onboarding,
            );
            v.section(
                obj.get(YEARLY_RESET),
                YEARLY_RESET,
                &base[YEARLY_RESET],
                out,
                Validator::yearly_reset,
            );
            v.section(
                obj.get(ANNOUNCEMENTS),
                ANNOUNCEMENTS,
                &base[ANNOUNCEMENTS],
                out,
                Validator::announcements,
            );
            v.features(obj.get(FEATURES), out);
            v.unknown(
                obj,
                &[
                    ROLE_MAPPING,
                    ONBOARDING,
                    YEARLY_RESET,
                    ANNOUNCEMENTS,
                    FEATURES,
                ],
                "",
            );
        });
        if v.violations.is_empty() {
            Ok(out)
        } else {
            Err(Violations(v.violations))
        }
    }

    fn secret_paths(&self) -> SecretPaths {
        SecretPaths::new(["/announcements/webhook_url"])
    }
}

/// Walks one input document, building its normalised form and collecting
/// every violation on the way.
#[derive(Default)]
struct Validator {
    violations: Vec<Violation>,
}

type Fields = Map<String, Value>;

impl Validator {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation::new(path, message));
    }

    /// Validates an object against `base` (its defaults): missing keys keep
    /// the default; `fill` reads the present keys.
    fn object(
        &mut self,
        input: &Value,
        path: &str,
        base: &Value,
        fill: impl FnOnce(&mut Self, &Fields, &Value, &mut Fields),
    ) -> Value {
        let mut out = base.as_object().cloned().unwrap_or_default();
        match input {
            Value::Object(obj) => fill(self, obj, base, &mut out),
            other => self.fail(path, format!("must be an object, got {}", json_kind(other))),
        }
        Value::Object(out)
    }

    fn section(
        &mut self,
        input: Option<&Value>,
        key: &str,
        base: &Value,
        out: &mut Fields,
        fill: fn(&mut Self, &Fields, &str, &mut Fields),
    ) {
        let Some(input) = input else { return };
        let path = format!("/{key}");
        let value = self.object(input, &path, base, |v, obj, _, o| fill(v, obj, &path, o));
        out.insert(key.to_owned(), value);
    }

    fn unknown(&mut self, obj: &Fields, known: &[&str], path: &str) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                self.fail(format!("{path}/{}", escape_token(key)), "unknown field");
            }
        }
    }

    fn boolean(&mut self, obj: &Fields, key: &str, path: &str, out: &mut Fields) {
        if let Some(value) = obj.get(key) {
            match value {
                Value::Bool(_) => {
                    out.insert(key.into(), value.clone());
                }
                other => self.fail(
                    format!("{path}/{key}"),
                    format!("must be true or false, got {}", json_kind(other)),
                ),
            }
        }
    }

    fn optional_snowflake(&mut self, obj: &Fields, key: &str, path: &str, out: &mut Fields) {
        if let Some(value) = obj.get(key) {
            if value.is_null() {
                out.insert(key.into(), Value::Null);
                return;
            }
            match Snowflake::from_json(value) {
                Ok(s) => {
                    out.insert(key.into(), Value::String(s.to_string()));
                }
                Err(e) => self.fail(format!("{path}/{key}"), e),
            }
        }
    }

    fn integer(
        &mut self,
        obj: &Fields,
        key: &str,
        path: &str,
        range: (u64, u64),
        out: &mut Fields,
    ) {
        if let Some(value) = obj.get(key) {
            match value.as_u64() {
                Some(n) if (range.0..=range.1).contains(&n) => {
                    out.insert(key.into(), json!(n));
                }
                _ => self.fail(
                    format!("{path}/{key}"),
                    format!("must be an integer from {} to {}", range.0, range.1),
                ),
            }
        }
    }

    fn role_mapping(&mut self, input: Option<&Value>, out: &mut Fields) {
        let Some(input) = input else { return };
        let Value::Object(map) = input else {
            self.fail(
                "/role_mapping",
                format!("must be an object, got {}", json_kind(input)),
            );
            return;
        };
        let mut normalised = Map::new();
        for (key, value) in map {
            let path = format!("/role_mapping/{}", escape_token(key));
            let chars = key.chars().count();
            if chars == 0 || chars > 64 {
                self.fail(&path, "role key must be 1 to 64 characters");
            } else if key.chars().any(char::is_control) {
                self.fail(&path, "role key must not contain control characters");
            }
            match Snowflake::from_json(value) {
                Ok(s) => {
                    normalised.insert(key.clone(), Value::String(s.to_string()));
                }
                Err(e) => self.fail(&path, e),
            }
        }
        out.insert(ROLE_MAPPING.into(), Value::Object(normalised));
    }

    fn features(&mut self, input: Option<&Value>, out: &mut Fields) {
        let Some(input) = input else { return };
        let Value::Object(map) = input else {
            self.fail(
                "/features",
                format!("must be an object, got {}", json_kind(input)),
            );
            return;
        };
        for (key, value) in map {
            let path = format!("/features/{}", escape_token(key));
            let valid_name = (1..=64).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                self.fail(&path, "flag name must match [a-z0-9_]{1,64}");
            }
            if !value.is_boolean() {
                self.fail(
                    &path,
                    format!("flag must be true or false, got {}", json_kind(value)),
                );
            }
        }
        out.insert(FEATURES.into(), input.clone());
    }

    fn onboarding(&mut self, obj: &Fields, path: &str, out: &mut Fields) {
        self.boolean(obj, "enabled", path, out);
        self.optional_snowflake(obj, "welcome_channel", path, out);
        if let Some(message) = obj.get("welcome_message") {
            match message {
                Value::Null => {
                    out.insert("welcome_message".into(), Value::Null);
                }
                Value::String(s) if s.chars().count() > MAX_WELCOME_MESSAGE => self.fail(
                    format!("{path}/welcome_message"),
                    format!(
                        "must be at most {MAX_WELCOME_MESSAGE} characters, got {}",
                        s.chars().count()
                    ),
                ),
                Value::String(_) => {
                    out.insert("welcome_message".into(), message.clone());
                }
                other => self.fail(
                    format!("{path}/welcome_message"),
                    format!("must be a string or null, got {}", json_kind(other)),
                ),
            }
        }
        let verification_base = out.get("verification").cloned().unwrap_or(Value::Null);
        if let Some(input) = obj.get("verification") {
            let vpath = format!("{path}/verification");
            let value = self.object(input, &vpath, &verification_base, |v, o, _, out| {
                if let Some(mode) = o.get("mode") {
                    match serde_json::from_value::<VerificationMode>(mode.clone()) {
                        Ok(_) => {
                            out.insert("mode".into(), mode.clone());
                        }
                        Err(_) => v.fail(
                            format!("{vpath}/mode"),
                            "must be one of none, reaction, captcha, manual",
                        ),
                    }
                }
                v.optional_snowflake(o, "verified_role", &vpath, out);
                v.integer(o, "timeout_minutes", &vpath, (1, MAX_TIMEOUT_MINUTES), out);
                v.unknown(o, &["mode", "verified_role", "timeout_minutes"], &vpath);
            });
            out.insert("verification".into(), value);
        }
        self.unknown(
            obj,
            &[
                "enabled",
                "welcome_channel",
                "welcome_message",
                "verification",
            ],
            path,
        );
        // Cross-field rules, checked on the merged result.
        if out.get("enabled") == Some(&Value::Bool(true))
            && out.get("welcome_channel").is_none_or(Value::is_null)
            && !self.has_violation_at(&format!("{path}/welcome_channel"))
        {
            self.fail(
                format!("{path}/welcome_channel"),
                "required when onboarding is enabled",
            );
        }
        if let Some(Value::Object(ver)) = out.get("verification") {
            let mode_is_none = ver.get("mode").and_then(Value::as_str) == Some("none");
            let role_missing = ver.get("verified_role").is_none_or(Value::is_null);
            let role_path = format!("{path}/verification/verified_role");
            if !mode_is_none
                && role_missing
                && !self.has_violation_at(&role_path)
                && !self.has_violation_at(&format!("{path}/verification/mode"))
            {
                self.fail(role_path, "required unless verification mode is none");
            }
        }
    }

    fn yearly_reset(&mut self, obj: &Fields, path: &str, out: &mut Fields) {
        self.boolean(obj, "enabled", path, out);
        self.integer(obj, "month", path, (1, 12), out);
        self.integer(obj, "day", path, (1, 31), out);
        if let Some(tz) = obj.get("timezone") {
            match tz.as_str() {
                Some(name) if name.parse::<chrono_tz::Tz>().is_ok() => {
                    out.insert("timezone".into(), tz.clone());
                }
                _ => self.fail(
                    format!("{path}/timezone"),
                    "must be an IANA time zone name such as Europe/Berlin",
                ),
            }
        }
        if let Some(roles) = obj.get("preserve_roles") {
            match roles {
                Value::Array(items) => {
                    let mut normalised = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        match Snowflake::from_json(item) {
                            Ok(s) => {
                                let s = Value::String(s.to_string());
                                if normalised.contains(&s) {
                                    self.fail(
                                        format!("{path}/preserve_roles/{i}"),
                                        "duplicate role id",
                                    );
                                }
                                normalised.push(s);
                            }
                            Err(e) => self.fail(format!("{path}/preserve_roles/{i}"), e),
                        }
                    }
                    out.insert("preserve_roles".into(), Value::Array(normalised));
                }
                other => self.fail(
                    format!("{path}/preserve_roles"),
                    format!("must be an array of role ids, got {}", json_kind(other)),
                ),
            }
        }
        self.unknown(
            obj,
            &["enabled", "month", "day", "timezone", "preserve_roles"],
            path,
        );
        let month = out.get("month").and_then(Value::as_u64);
        let day = out.get("day").and_then(Value::as_u64);
        if let (Some(month), Some(day)) = (month, day) {
            // 2000 is a leap year, so 29 February counts as a real day.
            let real = u32::try_from(month)
                .ok()
                .zip(u32::try_from(day).ok())
                .and_then(|(m, d)| NaiveDate::from_ymd_opt(2000, m, d))
                .is_some();
            if !real
                && !self.has_violation_at(&format!("{path}/day"))
                && !self.has_violation_at(&format!("{path}/month"))
            {
                self.fail(
                    format!("{path}/day"),
                    format!("{month}/{day} is not a calendar day"),
                );
            }
        }
    }

    fn announcements(&mut self, obj: &Fields, path: &str, out: &mut Fields) {
        self.boolean(obj, "enabled", path, out);
        self.optional_snowflake(obj, "channel", path, out);
        self.optional_snowflake(obj, "mention_role", path, out);
        if let Some(hook) = obj.get("webhook_url") {
            match hook {
                Value::Null => {
                    out.insert("webhook_url".into(), Value::Null);
                }
                Value::String(s) => match check_https_url(s) {
                    Ok(()) => {
                        out.insert("webhook_url".into(), hook.clone());
                    }
                    // The message never echoes the value: it is a secret.
                    Err(e) => self.fail(format!("{path}/webhook_url"), e),
                },
                other => self.fail(
                    format!("{path}/webhook_url"),
                    format!("must be an https URL or null, got {}", json_kind(other)),
                ),
            }
        }
        self.unknown(
            obj,
            &["enabled", "channel", "mention_role", "webhook_url"],
            path,
        );
        if out.get("enabled") == Some(&Value::Bool(true))
            && out.get("channel").is_none_or(Value::is_null)
            && !self.has_violation_at(&format!("{path}/channel"))
        {
            self.fail(
                format!("{path}/channel"),
                "required when announcements are enabled",
            );
        }
    }

    fn has_violation_at(&self, path: &str) -> bool {
        self.violations.iter().any(|v| v.path == path)
    }
}

fn check_https_url(text: &str) -> Result<(), String> {
    if text.len() > 2048 {
        return Err("must be an https URL of at most 2048 bytes".into());
    }
    // The URL parser quietly drops tabs and line breaks; a stored URL
    // holds exactly what was checked, so they are refused instead.
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    match url::Url::parse(text) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err("must be an https URL with a host".into()),
        Err(_) => Err("must be a valid https URL".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(err: Violations) -> Vec<String> {
        err.0.into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn defaults_are_normalised_and_typed() {
        let schema = GuildConfigSchema;
        let d = schema.defaults();
        assert_eq!(schema.normalise(&d).as_ref(), Ok(&d));
        assert_eq!(schema.normalise(&json!({})).as_ref(), Ok(&d));
        let typed = GuildConfig::from_document(&d).expect("defaults are a GuildConfig");
        assert!(!typed.onboarding.enabled);
    }

    #[test]
    fn partial_input_is_merged_onto_defaults_and_ids_become_strings() {
        let out = GuildConfigSchema
            .normalise(&json!({"onboarding": {"enabled": true, "welcome_channel": 42}, "role_mapping": {"mod": 7}}))
            .expect("valid");
        assert_eq!(out["onboarding"]["welcome_channel"], json!("42"));
        assert_eq!(out["onboarding"]["verification"]["mode"], json!("none"));
        assert_eq!(out["role_mapping"]["mod"], json!("7"));
    }

    #[test]
    fn reports_every_violation_with_its_path() {
        let err = GuildConfigSchema
            .normalise(&json!({
                "onboarding": {"enabled": true, "welcome_message": "x".repeat(2001), "verification": {"mode": "captcha"}},
                "yearly_reset": {"month": 2, "day": 30, "timezone": "Mars/Base"},
                "features": {"Bad-Flag": true, "ok": "yes"},
                "announcements": {"webhook_url": "http://example.com/secret-token"},
                "role_mapping": {"mod": "0"},
                "extra": 1
            }))
            .expect_err("invalid");
        let text = err.to_string();
        assert!(
            !text.contains("secret-token"),
            "the secret must not be echoed: {text}"
        );
        assert_eq!(
            paths(err),
            vec![
                "/role_mapping/mod",
                "/onboarding/welcome_message",
                "/onboarding/welcome_channel",
                "/onboarding/verification/verified_role",
                "/yearly_reset/timezone",
                "/yearly_reset/day",
                "/announcements/webhook_url",
                "/features/Bad-Flag",
                "/features/ok",
                "/extra",
            ]
        );
    }

    #[test]
    fn leap_day_is_a_calendar_day() {
        assert!(GuildConfigSchema
            .normalise(&json!({"yearly_reset": {"month": 2, "day": 29}}))
            .is_ok());
        assert!(GuildConfigSchema
            .normalise(&json!({"yearly_reset": {"month": 4, "day": 31}}))
            .is_err());
    }

    #[test]
    fn non_object_document_is_rejected() {
        assert_eq!(
            paths(GuildConfigSchema.normalise(&json!([1])).expect_err("array")),
            vec![""]
        );
    }
}
