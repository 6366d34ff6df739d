//! What the log stores per event, and what it answers per appended event.

use datasets::schema::{Channel, Event, EventType, Identifier};
use serde::{Deserialize, Serialize};

/// One event as the log keeps it: normalised identifiers (emails and phones only as their
/// SHA-256), the unified event fields, and the two references a channel may send back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEvent {
    /// The sender's id (or the one the server assigned); unique in the log for ever.
    pub event_id: String,
    /// `kind:value` keys, in priority order, at least one.
    pub identifiers: Vec<String>,
    /// Channel name.
    pub channel: String,
    /// Event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The item, if any (kept even when the catalog does not know it yet).
    pub item_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    /// Rating, quantity or revenue.
    pub value: Option<f32>,
    /// The recommendation that led to it, as the server returned it.
    pub recommendation_id: Option<String>,
    /// The store where it happened.
    pub store_id: Option<String>,
    /// When the server accepted it, seconds since the Unix epoch.
    pub received_at: i64,
}

impl StoredEvent {
    /// The record of a validated event; `event.event_id` must be set.
    pub fn new(
        event: &Event,
        event_id: String,
        recommendation_id: Option<String>,
        store_id: Option<String>,
        received_at: i64,
    ) -> Self {
        let mut identifiers = event.identifiers.clone();
        identifiers.sort();
        StoredEvent {
            event_id,
            identifiers: identifiers.iter().map(Identifier::key).collect(),
            channel: event.channel.as_str().to_owned(),
            event_type: event.event_type.as_str().to_owned(),
            item_id: event.item_id.clone(),
            timestamp: event.timestamp,
            value: event.value,
            recommendation_id,
            store_id,
            received_at,
        }
    }

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

    /// Whether `other` says the same as this record: every field but the time of receipt,
    /// which differs for a retry of the same event.
    pub fn same_content(&self, other: &StoredEvent) -> bool {
        StoredEvent { received_at: 0, ..self.clone() } == StoredEvent { received_at: 0, ..other.clone() }
    }
}

/// What became of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored, durably, under this sequence number.
    Accepted(u64),
    /// Already stored with the same content under this sequence number; nothing changed.
    Duplicate(u64),
    /// Already stored with other content under this sequence number; nothing changed.
    Conflict(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::schema::IdentifierKind;

    #[test]
    fn round_trips_through_the_schema_with_hashes_only() {
        let event = Event {
            identifiers: vec![
                Identifier::new(IdentifierKind::CookieId, "c1").unwrap(),
                Identifier::new(IdentifierKind::Email, "Ann@Example.com").unwrap(),
            ],
            channel: Channel::parse("web"),
            event_type: EventType::parse("purchase"),
            item_id: Some("i1".into()),
            timestamp: 1_700_000_000,
            value: Some(2.0),
            event_id: Some("e1".into()),
        };
        let record = StoredEvent::new(&event, "e1".into(), None, Some("s1".into()), 5);
        // Priority order: the email before the cookie; the address itself is never kept.
        assert!(record.identifiers[0].starts_with("email:") && !record.identifiers[0].contains('@'));
        let mut back = record.to_event();
        back.identifiers.sort();
        let mut expected = event.clone();
        expected.identifiers.sort();
        assert_eq!(back, expected);
        let retry = StoredEvent { received_at: 99, ..record.clone() };
        assert!(record.same_content(&retry));
        assert!(!record.same_content(&StoredEvent { value: Some(3.0), ..retry }));
    }
}
