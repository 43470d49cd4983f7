//! Policy selection: which policy set a request is enforced with, by API, model, API key and
//! tenant header.
//!
//! ```yaml
//! policies: [policies/default.yaml]     # the base: set `default`
//! tenant_header: x-tenant               # the header that names a tenant (optional)
//! sets:
//!   team-a:
//!     policies: [team-a.yaml]           # an overlay: enforced after the base's policies
//!   strict:
//!     policies: [strict.yaml]
//! select:                               # first match wins; no match: `default`
//!   - {tenant: team-a, set: team-a}
//!   - {api: messages, model: "claude-*", set: strict}
//!   - {api_key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, set: strict}
//! ```
//!
//! A rule holds when every condition it names holds: `api` (`chat` or `chat.completions`,
//! `responses`, `completions`, `messages`), `model` (exact, or a glob with `*` and `?`),
//! `api_key_sha256` (the lower-case hex SHA-256 of the bearer token or `x-api-key`: keys are
//! never written in the config, and never logged), `tenant` (the value of `tenant_header`).
//!
//! A set builds on the base (`base: true`, the default): its policies are the base's followed
//! by its own, so every base rule still scans the original text, and the most severe action
//! wins. `deliberate check --config FILE` proves no set removes or weakens a base `block` or
//! `redact` rule ([`super::overlay`]).
//!
//! Labels in metrics and audit records stay bounded: the tenant label is a tenant the config
//! names, `other` for any other value of the header, `none` without one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::HeaderMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::config_error::ConfigError;
use super::routes::ENFORCED_APIS;
use crate::layer::glob;

/// A policy set of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetConfig {
    /// Its name.
    pub name: String,
    /// Whether it builds on the base (`default`) set.
    pub base: bool,
    /// Its own policy files, enforced after the base's.
    pub policies: Vec<PathBuf>,
    /// Where the config defines it (line, column).
    pub at: (usize, usize),
}

impl SetConfig {
    /// The set's policy files in enforcement order: `base` (the default set's) first when
    /// it builds on the base, then its own.
    pub fn paths(&self, base: &[PathBuf]) -> Vec<PathBuf> {
        let mut v = if self.base { base.to_vec() } else { Vec::new() };
        v.extend(self.policies.iter().cloned());
        v
    }
}

/// One `select:` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectRule {
    /// The set it selects.
    pub set: String,
    /// The API (an [`ENFORCED_APIS`] name).
    pub api: Option<String>,
    /// The model: exact, or a glob (`*`, `?`).
    pub model: Option<String>,
    /// Lower-case hex SHA-256 of the API key.
    pub api_key_sha256: Option<String>,
    /// The tenant header's value.
    pub tenant: Option<String>,
    /// Where the config has it (line, column).
    pub at: (usize, usize),
}

/// A shadow candidate of a set: `shadow: {policies: [candidate.yaml], sample: 0.1}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSpec {
    /// The candidate's policy files (in the set's order: the base's first when the set
    /// builds on it, then these).
    pub policies: Vec<PathBuf>,
    /// Share of the set's requests it scans, `0.0..=1.0` (0: off).
    pub sample: f64,
}

impl Eq for ShadowSpec {}

/// The selection part of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The header naming a tenant, lower-case.
    pub tenant_header: Option<String>,
    /// The sets besides `default`, in config order.
    pub sets: Vec<SetConfig>,
    /// The rules, in order.
    pub rules: Vec<SelectRule>,
    /// Shadow candidates by set name (`default` for the top-level `shadow:`).
    pub shadows: Vec<(String, ShadowSpec)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSet {
    #[serde(default)]
    base: Option<bool>,
    policies: Vec<PathBuf>,
    #[serde(default)]
    shadow: Option<RawShadow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShadow {
    policies: Vec<PathBuf>,
    #[serde(default)]
    sample: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSelect {
    set: String,
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key_sha256: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// The facts of a request a rule looks at.
#[derive(Debug, Clone, Default)]
pub struct RequestKey<'a> {
    /// The API name of the route.
    pub api: Option<&'a str>,
    /// The model asked for.
    pub model: Option<&'a str>,
    /// The hex SHA-256 of the API key.
    pub key_sha256: Option<String>,
    /// The tenant header's value.
    pub tenant: Option<&'a str>,
}

impl Selection {
    /// Validates the raw `tenant_header`, `sets` and `select` of a config at `file`.
    pub(crate) fn from_raw(
        file: &Path,
        header: Option<String>,
        shadow: Option<Spanned<RawShadow>>,
        sets: Option<BTreeMap<String, Spanned<RawSet>>>,
        select: Option<Vec<Spanned<RawSelect>>>,
        rel: &dyn Fn(PathBuf) -> PathBuf,
    ) -> Result<Selection, ConfigError> {
        let err = |at: (usize, usize), message: String| ConfigError {
            file: file.to_path_buf(),
            line: at.0,
            column: at.1,
            message,
        };
        let pos = |l: serde_saphyr::Location| (l.line() as usize, l.column() as usize);
        let mut out = Selection {
            tenant_header: header.map(|h| h.to_ascii_lowercase()),
            ..Selection::default()
        };
        if let Some(h) = &out.tenant_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(err(
                (0, 0),
                format!("tenant_header `{h}` is not a header name"),
            ));
        }
        let mut shadow_of = |name: &str, at, raw: RawShadow| {
            let sample = raw.sample.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&sample) {
                return Err(err(
                    at,
                    format!("shadow sample {sample} is not within 0..1"),
                ));
            }
            out.shadows.push((
                name.to_owned(),
                ShadowSpec {
                    policies: raw.policies.into_iter().map(rel).collect(),
                    sample,
                },
            ));
            Ok(())
        };
        if let Some(s) = shadow {
            shadow_of(super::DEFAULT_SET, pos(s.referenced), s.value)?;
        }
        let raw_sets = sets_raw(sets);
        let mut sets = Vec::new();
        for (name, s) in raw_sets {
            let at = pos(s.referenced);
            if let Some(sh) = s.value.shadow {
                shadow_of(&name, at, sh)?;
            }
            sets.push(SetConfig {
                name,
                base: s.value.base.unwrap_or(true),
                policies: s.value.policies.into_iter().map(rel).collect(),
                at,
            });
        }
        sets.sort_by_key(|s| s.at);
        for s in &sets {
            if s.name == super::DEFAULT_SET {
                return Err(err(
                    s.at,
                    "`default` is the set of the top-level `policies:`".to_owned(),
                ));
            }
            if !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(err(
                    s.at,
                    format!("set name `{}`: use letters, digits, `-`, `_`, `.`", s.name),
                ));
            }
            if s.policies.is_empty() && !s.base {
                return Err(err(s.at, format!("set `{}` has no policy", s.name)));
            }
        }
        for r in select.unwrap_or_default() {
            let at = pos(r.referenced);
            let v = r.value;
            if v.set != super::DEFAULT_SET && !sets.iter().any(|s| s.name == v.set) {
                return Err(err(at, format!("select names unknown set `{}`", v.set)));
            }
            let api = match v.api.as_deref() {
                None => None,
                Some("chat") => Some("chat.completions".to_owned()),
                Some(a) if ENFORCED_APIS.contains(&a) => Some(a.to_owned()),
                Some(a) => {
                    return Err(err(
                        at,
                        format!("unknown api `{a}` (chat, {})", ENFORCED_APIS.join(", ")),
                    ));
                }
            };
            if let Some(k) = &v.api_key_sha256
                && (k.len() != 64 || !k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            {
                return Err(err(
                    at,
                    "api_key_sha256 must be 64 lower-case hex digits (`printf %s \"$KEY\" | sha256sum`)"
                        .to_owned(),
                ));
            }
            if v.tenant.is_some() && out.tenant_header.is_none() {
                return Err(err(
                    at,
                    "a `tenant` condition needs `tenant_header:`".to_owned(),
                ));
            }
            if api.is_none()
                && v.model.is_none()
                && v.api_key_sha256.is_none()
                && v.tenant.is_none()
            {
                return Err(err(
                    at,
                    "a select rule needs a condition (api, model, api_key_sha256, tenant)"
                        .to_owned(),
                ));
            }
            out.rules.push(SelectRule {
                set: v.set,
                api,
                model: v.model,
                api_key_sha256: v.api_key_sha256,
                tenant: v.tenant,
                at,
            });
        }
        out.sets = sets;
        Ok(out)
    }

    /// Whether any rule looks at the model (the request body must be read to select).
    pub fn needs_model(&self) -> bool {
        self.rules.iter().any(|r| r.model.is_some())
    }

    /// The set for a request: the first rule that holds, else `default`.
    pub fn select(&self, key: &RequestKey<'_>) -> &str {
        for r in &self.rules {
            let holds = r.api.as_deref().is_none_or(|a| key.api == Some(a))
                && r.model
                    .as_deref()
                    .is_none_or(|m| key.model.is_some_and(|km| glob(m, km)))
                && r.api_key_sha256
                    .as_deref()
                    .is_none_or(|k| key.key_sha256.as_deref() == Some(k))
                && r.tenant.as_deref().is_none_or(|t| key.tenant == Some(t));
            if holds {
                return &r.set;
            }
        }
        super::DEFAULT_SET
    }

    /// The tenant label for metrics and audit records: a tenant the config names, `other`,
    /// or `none`.
    pub fn tenant_label(&self, tenant: Option<&str>) -> String {
        match tenant {
            None => "none".to_owned(),
            Some(t) if self.rules.iter().any(|r| r.tenant.as_deref() == Some(t)) => t.to_owned(),
            Some(_) => "other".to_owned(),
        }
    }

    /// The tenant header's value in `headers`.
    pub fn tenant<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let h = self.tenant_header.as_deref()?;
        headers.get(h).and_then(|v| v.to_str().ok()).map(str::trim)
    }
}

fn sets_raw(
    sets: Option<BTreeMap<String, Spanned<RawSet>>>,
) -> impl Iterator<Item = (String, Spanned<RawSet>)> {
    sets.unwrap_or_default().into_iter()
}

/// The hex SHA-256 of the request's API key (`Authorization: Bearer …` or `x-api-key`).
pub fn key_sha256(headers: &HeaderMap) -> Option<String> {
    let key = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))?
        .trim();
    if key.is_empty() {
        return None;
    }
    Some(sha256_hex(key.as_bytes()))
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The model a request body asks for (`None`: not JSON, or no string `model`).
pub fn body_model(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct M {
        model: Option<String>,
    }
    serde_json::from_slice::<M>(body).ok()?.model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        for (p, t, want) in [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o*", "gpt-4o-mini", true),
            ("claude-*-sonnet", "claude-3-5-sonnet", true),
            ("claude-*-sonnet", "claude-3-5-haiku", false),
            ("?pt", "gpt", true),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
    }

    #[test]
    fn keys_hash_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer test".parse().unwrap());
        let want = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(key_sha256(&h).as_deref(), Some(want));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "test".parse().unwrap());
        assert_eq!(key_sha256(&h).as_deref(), Some(want));
        assert_eq!(key_sha256(&HeaderMap::new()), None);
    }

    #[test]
    fn first_matching_rule_wins_and_labels_stay_bounded() {
        let rule = |set: &str| SelectRule {
            set: set.to_owned(),
            api: None,
            model: None,
            api_key_sha256: None,
            tenant: None,
            at: (0, 0),
        };
        let s = Selection {
            tenant_header: Some("x-tenant".to_owned()),
            sets: Vec::new(),
            shadows: Vec::new(),
            rules: vec![
                SelectRule {
                    tenant: Some("a".to_owned()),
                    ..rule("team-a")
                },
                SelectRule {
                    api: Some("messages".to_owned()),
                    model: Some("claude-*".to_owned()),
                    ..rule("strict")
                },
            ],
        };
        let key = |api, model, tenant| RequestKey {
            api,
            model,
            key_sha256: None,
            tenant,
        };
        assert_eq!(
            s.select(&key(Some("messages"), Some("claude-x"), Some("a"))),
            "team-a"
        );
        assert_eq!(
            s.select(&key(Some("messages"), Some("claude-x"), None)),
            "strict"
        );
        assert_eq!(
            s.select(&key(Some("chat.completions"), Some("claude-x"), None)),
            "default"
        );
        assert_eq!(s.select(&key(Some("messages"), None, None)), "default");
        assert_eq!(s.tenant_label(Some("a")), "a");
        assert_eq!(s.tenant_label(Some("random-value")), "other");
        assert_eq!(s.tenant_label(None), "none");
    }
}
