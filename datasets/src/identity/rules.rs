//! The rules of identity resolution, shared by the trainer and the live identity graph:
//! merge limits per identifier kind, placeholder values that never identify anyone, and the
//! guard against "hot" identifiers seen with too many persons in a short time.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::schema::{Identifier, IdentifierKind};

/// How many identifiers of each kind one person may hold; `None` means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLimits {
    per_kind: [Option<usize>; IdentifierKind::ALL.len()],
}

impl Default for IdentityLimits {
    /// One account, loyalty card and POS number; five emails; three phones; ten devices; fifty
    /// cookies (cookies are cleared and renewed often).
    fn default() -> Self {
        let mut limits = IdentityLimits { per_kind: [None; IdentifierKind::ALL.len()] };
        for (kind, limit) in [
            (IdentifierKind::UserId, 1),
            (IdentifierKind::LoyaltyId, 1),
            (IdentifierKind::PosCustomerId, 1),
            (IdentifierKind::Email, 5),
            (IdentifierKind::Phone, 3),
            (IdentifierKind::DeviceId, 10),
            (IdentifierKind::CookieId, 50),
        ] {
            limits.per_kind[kind.index()] = Some(limit);
        }
        limits
    }
}

impl IdentityLimits {
    /// Limits with no bound for any kind.
    pub fn unlimited() -> Self {
        IdentityLimits { per_kind: [None; IdentifierKind::ALL.len()] }
    }

    /// Sets the limit for `kind` (`None`: unlimited). A limit of 0 is refused.
    pub fn set(&mut self, kind: IdentifierKind, limit: Option<usize>) -> Result<()> {
        if limit == Some(0) {
            return Err(Error::InvalidConfig {
                name: format!("identity.limits.{kind}"),
                reason: "must be at least 1".into(),
            });
        }
        self.per_kind[kind.index()] = limit;
        Ok(())
    }

    /// The limit for `kind`.
    pub fn get(&self, kind: IdentifierKind) -> Option<usize> {
        self.per_kind[kind.index()]
    }
}

/// Values that channels send when they do not know the person (`undefined`, `guest`, the
/// all-zero UUID, `test@test.com`, …). A placeholder never identifies anyone: it links no
/// events, names no person, and an event that carries nothing else belongs to nobody.
///
/// Shared devices and hard-coded ids are the most common cause of wrong merges in identity
/// stitching; the merge limits and [`HotGuard`] catch the ones no list can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    /// The configured extra values, as written (for the settings round trip).
    extra: Vec<String>,
    /// Whether the built-in list applies.
    builtin: bool,
    /// Lowercase values of the plain kinds.
    plain: HashSet<String>,
    /// Hashes of the email and phone placeholders, as [`Identifier::new`] stores them.
    hashed: HashSet<String>,
}

/// The built-in placeholder values, for every kind (emails and phones are compared by hash).
pub const BUILTIN_PLACEHOLDERS: [&str; 34] = [
    "undefined",
    "null",
    "nil",
    "none",
    "nan",
    "-1",
    "anonymous",
    "anon",
    "guest",
    "unknown",
    "n/a",
    "na",
    "test",
    "default",
    "user",
    "false",
    "true",
    "[object object]",
    "test@test.com",
    "test@example.com",
    "example@example.com",
    "email@example.com",
    "user@example.com",
    "noemail@noemail.com",
    "no@email.com",
    "none@none.com",
    "null@null.com",
    "email@email.com",
    "a@a.com",
    "0000000000",
    "1111111111",
    "1234567890",
    "0123456789",
    "9999999999",
];

impl Default for Placeholders {
    fn default() -> Self {
        Placeholders::new(true, Vec::new())
    }
}

impl Placeholders {
    /// The built-in list (when `builtin`) and `extra`.
    pub fn new(builtin: bool, extra: Vec<String>) -> Self {
        let mut plain = HashSet::new();
        let mut hashed = HashSet::new();
        let builtin_values = if builtin { &BUILTIN_PLACEHOLDERS[..] } else { &[] };
        for value in builtin_values.iter().copied().chain(extra.iter().map(String::as_str)) {
            let value = value.trim();
            plain.insert(value.to_lowercase());
            for kind in [IdentifierKind::Email, IdentifierKind::Phone] {
                if let Some(identifier) = Identifier::new(kind, value) {
                    hashed.insert(identifier.value);
                }
            }
        }
        Placeholders { extra, builtin, plain, hashed }
    }

    /// No placeholder at all.
    pub fn none() -> Self {
        Placeholders::new(false, Vec::new())
    }

    /// Whether `identifier` is a placeholder: a listed value (any case), or, with the built-in
    /// list, a value of a kind stored in clear made only of zeros and separators (`0`,
    /// `000-000`, the all-zero UUID).
    pub fn contains(&self, identifier: &Identifier) -> bool {
        if identifier.kind.is_hashed() {
            return self.hashed.contains(&identifier.value);
        }
        self.contains_plain(&identifier.value)
    }

    /// Whether `value`, of a kind stored in clear (a user id), is a placeholder.
    pub fn contains_plain(&self, value: &str) -> bool {
        let value = value.trim();
        let all_zero = value.bytes().any(|c| c == b'0')
            && value.bytes().all(|c| c == b'0' || c == b'-' || c == b' ' || c == b'.');
        if self.builtin && all_zero {
            return true;
        }
        // Lowercase only when needed: this runs for every identifier of every live event.
        if value.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
            self.plain.contains(value)
        } else {
            self.plain.contains(&value.to_lowercase())
        }
    }
}

/// The guard against hot identifiers: an identifier seen, within `window_seconds`, with more
/// than `max_anchors` distinct anchors (the highest-priority identifier of each event it
/// appears in) is refused for merging, as a broken merge limit would refuse it. A person's
/// own cookie is seen with their account alone; a shop's demo tablet or a hard-coded id is
/// seen with everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotGuard {
    /// Most distinct anchors within the window; 0 turns the guard off.
    pub max_anchors: usize,
    /// The window, in seconds.
    pub window_seconds: i64,
}

impl Default for HotGuard {
    /// More than five persons within a day.
    fn default() -> Self {
        HotGuard { max_anchors: 5, window_seconds: 86_400 }
    }
}

/// Every rule of identity resolution. This is the trainer's `[identity]` table:
///
/// ```toml
/// [identity]
/// limits = { email = 5, cookie_id = 0 }   # per kind; 0 is unlimited; others keep defaults
/// placeholders = ["dummy", "x@y.z"]       # added to the built-in list
/// builtin_placeholders = true
/// hot_max_anchors = 5                     # 0 turns the guard off
/// hot_window_hours = 24
/// ```
///
/// Artifacts store it with every kind listed, and the server's live identity graph applies
/// the artifact's rules, so training and serving stitch persons alike.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RulesTable", into = "RulesTable")]
pub struct IdentityRules {
    /// Merge limits per kind.
    pub limits: IdentityLimits,
    /// Values that identify nobody.
    pub placeholders: Placeholders,
    /// The hot-identifier guard.
    pub hot: HotGuard,
}

impl IdentityRules {
    /// Rules with the given limits, the built-in placeholders and the default guard.
    pub fn with_limits(limits: IdentityLimits) -> Self {
        IdentityRules { limits, ..IdentityRules::default() }
    }

    /// No limit, no placeholder, no guard: everything connected is one person.
    pub fn permissive() -> Self {
        IdentityRules {
            limits: IdentityLimits::unlimited(),
            placeholders: Placeholders::none(),
            hot: HotGuard { max_anchors: 0, window_seconds: 0 },
        }
    }
}

/// The `[identity]` table as written.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RulesTable {
    limits: BTreeMap<String, usize>,
    placeholders: Vec<String>,
    builtin_placeholders: bool,
    hot_max_anchors: usize,
    hot_window_hours: f64,
}

impl Default for RulesTable {
    fn default() -> Self {
        RulesTable::from(IdentityRules::default())
    }
}

impl TryFrom<RulesTable> for IdentityRules {
    type Error = String;

    fn try_from(table: RulesTable) -> std::result::Result<Self, String> {
        let mut limits = IdentityLimits::default();
        for (name, limit) in table.limits {
            let kind = IdentifierKind::parse(&name).ok_or_else(|| {
                format!(
                    "unknown identifier kind `{name}` (expected one of {})",
                    IdentifierKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })?;
            limits.per_kind[kind.index()] = (limit > 0).then_some(limit);
        }
        if !(table.hot_window_hours.is_finite() && table.hot_window_hours >= 0.0) {
            return Err(format!(
                "hot_window_hours must be a number of hours >= 0, found {}",
                table.hot_window_hours
            ));
        }
        if let Some(blank) = table.placeholders.iter().find(|p| p.trim().is_empty()) {
            return Err(format!(
                "placeholders: `{blank}` is blank (blank values never identify anyone anyway)"
            ));
        }
        Ok(IdentityRules {
            limits,
            placeholders: Placeholders::new(table.builtin_placeholders, table.placeholders),
            hot: HotGuard {
                max_anchors: table.hot_max_anchors,
                window_seconds: (table.hot_window_hours * 3_600.0).round() as i64,
            },
        })
    }
}

impl From<IdentityRules> for RulesTable {
    fn from(rules: IdentityRules) -> Self {
        let limits = IdentifierKind::ALL
            .into_iter()
            .map(|kind| (kind.as_str().to_string(), rules.limits.per_kind[kind.index()].unwrap_or(0)))
            .collect();
        RulesTable {
            limits,
            placeholders: rules.placeholders.extra,
            builtin_placeholders: rules.placeholders.builtin,
            hot_max_anchors: rules.hot.max_anchors,
            hot_window_hours: rules.hot.window_seconds as f64 / 3_600.0,
        }
    }
}
