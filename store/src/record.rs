//! What the store keeps, as plain records: the backend's unit of storage, and what readers
//! get back. Identifiers appear only as keys (`kind:value`, emails and phones hashed), never
//! in clear.

use std::collections::BTreeMap;

use datasets::schema::{Channel, Event, EventType, Identifier};
use serde::{Deserialize, Serialize};

/// Consent per purpose (`personalization`, `analytics`, or any other the caller names).
pub type Purposes = BTreeMap<String, bool>;

/// The purpose that allows personalised answers and training on the person's events.
pub const PERSONALIZATION: &str = "personalization";
/// The purpose that allows measuring the person in experiments and reports.
pub const ANALYTICS: &str = "analytics";

/// One stored event: the event as the channel sent it, where the log filed it, and when it
/// arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The log's sequence number: unique, increasing, never reused.
    pub seq: u64,
    /// The sender's id (or one the server assigned): unique for ever.
    pub event_id: String,
    /// Identifier keys, in priority order.
    pub identifiers: Vec<String>,
    /// The key of the identifier the event belongs to (its highest-priority identifier that
    /// was not refused for merging when it arrived): the person who holds it did this.
    pub anchor: String,
    /// Channel name.
    pub channel: String,
    /// Event type name.
    pub event_type: String,
    /// The item, if any (kept even when the catalog does not know it yet).
    pub item_id: Option<String>,
    /// When it happened, seconds since the Unix epoch.
    pub timestamp: i64,
    /// Rating, quantity or revenue.
    pub value: Option<f32>,
    /// The recommendation that led to it, as the server returned it.
    pub recommendation_id: Option<String>,
    /// The store where it happened.
    pub store_id: Option<String>,
    /// When the server accepted it, seconds since the Unix epoch.
    pub received_at: i64,
    /// For a consent change (type [`CONSENT_EVENT`]): the purposes it set.
    pub consent: Option<Purposes>,
}

/// The type of the events that record a consent change (the audit trail of consent).
pub const CONSENT_EVENT: &str = "consent";
/// The type of the events that record an explicit link made through the API.
pub const LINK_EVENT: &str = "identity_link";
/// The type of the events that record an explicit unlink made through the API.
pub const UNLINK_EVENT: &str = "identity_unlink";

impl EventRecord {
    /// The event in the schema the trainer and the models read.
    pub fn to_event(&self) -> Event {
        Event {
            identifiers: self.identifiers.iter().filter_map(|key| Identifier::parse_key(key)).collect(),
            channel: Channel::parse(&self.channel),
            event_type: EventType::parse(&self.event_type),
            item_id: self.item_id.clone(),
            timestamp: self.timestamp,
            value: self.value,
            event_id: Some(self.event_id.clone()),
        }
    }

    /// Whether `other` says what this record says: everything the sender sent (not the
    /// sequence number, the filing or the time of receipt, which differ for a retry).
    pub fn same_content(&self, other: &EventRecord) -> bool {
        self.event_id == other.event_id
            && self.identifiers == other.identifiers
            && self.channel == other.channel
            && self.event_type == other.event_type
            && self.item_id == other.item_id
            && self.timestamp == other.timestamp
            && self.value.map(f32::to_bits) == other.value.map(f32::to_bits)
            && self.recommendation_id == other.recommendation_id
            && self.store_id == other.store_id
            && self.consent == other.consent
    }
}

/// One purchase or return in the consumed ledger of an anchor identifier and an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedEntry {
    /// The event's sequence number.
    pub seq: u64,
    /// +1 for a consuming event, -1 for a return.
    pub sign: i8,
    /// When it happened.
    pub timestamp: i64,
}

/// How a link between identifiers came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkKind {
    /// An event carried the identifiers together.
    Event,
    /// An explicit link through the API.
    Link,
    /// An explicit unlink through the API: the two sides must never be one person again.
    Unlink,
}

impl LinkKind {
    /// A stable label.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkKind::Event => "event",
            LinkKind::Link => "link",
            LinkKind::Unlink => "unlink",
        }
    }
}

/// One entry of the append-only identity log, from which the persons are derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Its sequence number (shared with events).
    pub seq: u64,
    /// What made it.
    pub kind: LinkKind,
    /// The identifier keys it joins (an unlink: the two it separates), in priority order.
    pub identifiers: Vec<String>,
    /// The event that carried it (for API calls, the event that records the call).
    pub event_id: String,
    /// Who asked: the API key's name for calls, the channel for events.
    pub source: String,
    /// What the rules said when it arrived: `merged 1`, `already one person`, or the refusals.
    pub rule: String,
    /// When it was recorded, seconds since the epoch.
    pub at: i64,
}

/// The consent an identifier's person gave, last set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Purposes and whether each is allowed.
    pub purposes: Purposes,
    /// When it was set.
    pub at: i64,
    /// Who set it (the API key's name).
    pub source: String,
}

/// A catalog change made through the API, applied on top of whichever model is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item.
    pub item_id: String,
    /// Its whole entry after the change; `None` once deleted.
    pub item: Option<datasets::schema::Item>,
    /// The log sequence number of the change.
    pub seq: u64,
    /// When it was made.
    pub at: i64,
}

/// What the server showed a person: one recommendation answer, or one impression event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    /// The recommendation id (of the answer, or the one the impression event named), or the
    /// impression event's id.
    pub id: String,
    /// The person's key when it was shown.
    pub person: String,
    /// The channel it was shown on.
    pub channel: String,
    /// The placement, for served answers.
    pub placement: Option<String>,
    /// The items shown.
    pub items: Vec<String>,
    /// When.
    pub at: i64,
}

/// An experiment as stored: its definition belongs to the server (JSON text, kept whole), the
/// store only keeps it durable under its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// The experiment's name: unique for ever.
    pub name: String,
    /// The definition, JSON.
    pub definition: String,
    /// When it was defined, seconds since the epoch.
    pub created_at: i64,
    /// When it was last changed (stopped, say).
    pub updated_at: i64,
}

/// What one exposure put a person in: an experiment and one of its variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureTag {
    /// The experiment.
    pub experiment: String,
    /// The variant served.
    pub variant: String,
}

/// One exposure: an answer shown to a person under an experiment's variant (a served
/// recommendation, or a batch recommendation a channel reports as sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// The recommendation id of the answer.
    pub id: String,
    /// The experiment and variant.
    pub tag: ExposureTag,
    /// The identifier key it is recorded under (the person's most trustworthy one then).
    pub person: String,
    /// The channel it was shown on.
    pub channel: String,
    /// The placement, if known.
    pub placement: Option<String>,
    /// The items shown, best first.
    pub items: Vec<String>,
    /// When, seconds since the epoch.
    pub at: i64,
}

/// A person's assignment in one experiment: the variant of their first exposure, recorded
/// under the identifier key of that exposure, so the person keeps it through later merges and
/// logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The variant.
    pub variant: String,
    /// The first exposure's time.
    pub at: i64,
    /// The first exposure's id.
    pub exposure_id: String,
}

/// Where a model version stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelState {
    /// Loaded and answering every request outside experiments.
    Production,
    /// Loaded, answering only the experiment variants that name it.
    Loaded,
    /// Unloaded; kept in the list, may be loaded again.
    Retired,
}

impl ModelState {
    /// A stable label.
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelState::Production => "production",
            ModelState::Loaded => "loaded",
            ModelState::Retired => "retired",
        }
    }
}

/// A model version in the registry: the artifact's version id (from its header) and file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The version id in the artifact's header.
    pub version: String,
    /// The artifact file (absolute).
    pub path: String,
    /// Where it stands.
    pub state: ModelState,
    /// When it was first registered, seconds since the epoch.
    pub registered_at: i64,
    /// When its state last changed.
    pub changed_at: i64,
}

/// An identifier of an erased person: only a SHA-256 of its key and the time of erasure are
/// kept, so that the person's late events are refused and no trained model's vector is used
/// for them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// When the person was erased.
    pub at: i64,
}

/// The hex SHA-256 of an identifier key, as the suppression list keeps it.
pub fn suppression_hash(key: &str) -> String {
    datasets::schema::hex_sha256(format!("omnirec-erased:{key}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::schema::IdentifierKind;

    #[test]
    fn records_round_trip_through_the_schema_with_hashes_only() {
        let email = Identifier::new(IdentifierKind::Email, "Ann@Example.com").unwrap();
        let cookie = Identifier::new(IdentifierKind::CookieId, "c1").unwrap();
        let record = EventRecord {
            seq: 1,
            event_id: "e1".into(),
            identifiers: vec![email.key(), cookie.key()],
            anchor: email.key(),
            channel: "web".into(),
            event_type: "purchase".into(),
            item_id: Some("i1".into()),
            timestamp: 1_700_000_000,
            value: Some(2.0),
            recommendation_id: None,
            store_id: Some("s1".into()),
            received_at: 5,
            consent: None,
        };
        assert!(!record.identifiers[0].contains('@'));
        let event = record.to_event();
        assert_eq!(event.identifiers, [email, cookie]);
        assert_eq!(event.event_type, EventType::Purchase);
        let retry = EventRecord { seq: 9, received_at: 99, ..record.clone() };
        assert!(record.same_content(&retry));
        assert!(!record.same_content(&EventRecord { value: Some(3.0), ..retry }));
        assert_ne!(suppression_hash("email:x"), suppression_hash("email:y"));
        assert_eq!(suppression_hash("email:x").len(), 64);
    }
}
