//! One person's live events: what the channels sent since training, under any of the
//! person's identifiers.
//!
//! Starting from the identifiers a request names, [`person`] walks the log: the events
//! filed under an identifier name further identifiers (a login carries the cookie and the
//! email; a till receipt the card and the email), and the trained model names those it
//! already linked. The events found are then resolved into persons by
//! [`datasets::identity::resolve`], the trainer's own union-find with the same merge limits
//! (the links the model knows come first, as a seed event), so a kiosk's device seen with
//! several loyalty cards bridges nobody here either. The person is the one the asking
//! identifier of highest priority belongs to.
//!
//! The walk is bounded ([`Walk`]): a person is rebuilt per request, and an identifier seen
//! with thousands of others (a shared device) must not make every request slow.

use std::collections::{BTreeSet, VecDeque};

use datasets::identity::{IdentityRules, resolve};
use datasets::schema::{Channel, Event, EventType, Identifier};

use crate::EventLog;
use crate::error::Result;

/// Bounds of one walk through the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Most identifiers visited.
    pub max_identifiers: usize,
    /// Most events read per identifier (its newest).
    pub max_events_per_identifier: usize,
}

impl Default for Walk {
    fn default() -> Self {
        Walk { max_identifiers: 64, max_events_per_identifier: 500 }
    }
}

/// What the log knows of one person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LivePerson {
    /// Every identifier of the person found, in priority order.
    pub identifiers: Vec<Identifier>,
    /// Their live events, oldest first.
    pub events: Vec<Event>,
}

/// The person behind `asked` as the log and the trained model know them. `known` gives the
/// identifiers the trained model links to an identifier (empty when it knows none).
pub fn person(
    log: &dyn EventLog,
    asked: &[Identifier],
    known: impl Fn(&Identifier) -> Vec<Identifier>,
    limits: &IdentityRules,
    walk: Walk,
) -> Result<LivePerson> {
    let mut queue: VecDeque<Identifier> = asked.iter().cloned().collect();
    let mut visited: BTreeSet<Identifier> = BTreeSet::new();
    let mut seen_events: BTreeSet<u64> = BTreeSet::new();
    // The trained model's links, as events older than any live one.
    let mut events: Vec<Event> = Vec::new();
    let mut live: Vec<Event> = Vec::new();
    while let Some(identifier) = queue.pop_front() {
        if visited.len() >= walk.max_identifiers || !visited.insert(identifier.clone()) {
            continue;
        }
        let links = known(&identifier);
        if links.len() > 1 {
            queue.extend(links.iter().filter(|l| !visited.contains(l)).cloned());
            events.push(seed(links));
        }
        for (seq, stored) in log.events_of(&identifier.key(), walk.max_events_per_identifier)? {
            if seen_events.insert(seq) {
                let event = stored.to_event();
                queue.extend(event.identifiers.iter().filter(|i| !visited.contains(i)).cloned());
                live.push(event);
            }
        }
    }
    if live.is_empty() {
        return Ok(LivePerson::default());
    }
    live.sort_by_key(|e| e.timestamp);
    let n_seeds = events.len();
    events.extend(live);
    let resolution = resolve(&events, limits);
    let mut by_priority: Vec<&Identifier> = asked.iter().collect();
    by_priority.sort();
    let Some(person) = by_priority.iter().find_map(|i| resolution.aliases.get(&i.key()).copied()) else {
        return Ok(LivePerson::default());
    };
    let mut identifiers: Vec<Identifier> =
        visited.into_iter().filter(|i| resolution.aliases.get(&i.key()) == Some(&person)).collect();
    identifiers.sort();
    let events = events
        .into_iter()
        .zip(resolution.person_of_event)
        .skip(n_seeds)
        .filter(|(_, p)| *p == Some(person))
        .map(|(event, _)| event)
        .collect();
    Ok(LivePerson { identifiers, events })
}

/// An event standing for the links the trained model already made between `identifiers`.
fn seed(identifiers: Vec<Identifier>) -> Event {
    Event {
        identifiers,
        channel: Channel::parse("model"),
        event_type: EventType::parse("link"),
        item_id: None,
        timestamp: i64::MIN,
        value: None,
        event_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StoredEvent;
    use crate::{GroupCommit, RedbLog};
    use datasets::schema::IdentifierKind;
    use std::sync::Arc;

    fn id(kind: IdentifierKind, value: &str) -> Identifier {
        Identifier::new(kind, value).unwrap()
    }

    fn stored(event_id: &str, ts: i64, ids: &[&Identifier], kind: &str, item: &str) -> StoredEvent {
        let event = Event {
            identifiers: ids.iter().map(|i| (*i).clone()).collect(),
            channel: Channel::parse("web"),
            event_type: EventType::parse(kind),
            item_id: Some(item.into()),
            timestamp: ts,
            value: None,
            event_id: None,
        };
        StoredEvent::new(&event, event_id.into(), None, None, ts)
    }

    #[test]
    fn a_login_and_a_till_receipt_join_cookie_email_and_card_but_a_kiosk_joins_nobody() {
        use IdentifierKind::*;
        let dir = tempfile::tempdir().unwrap();
        let group = GroupCommit::start(Arc::new(RedbLog::open_in(dir.path()).unwrap()));
        let (cookie, email, card) = (id(CookieId, "c1"), id(Email, "ann@example.com"), id(LoyaltyId, "L1"));
        let (kiosk, other_card) = (id(DeviceId, "kiosk"), id(LoyaltyId, "L2"));
        group
            .append(vec![
                stored("1", 10, &[&cookie], "view", "shoe"),
                stored("2", 20, &[&cookie, &email], "login", "-"),
                stored("3", 30, &[&card, &email], "purchase", "shoe"),
                stored("4", 40, &[&kiosk, &card], "view", "hat"),
                stored("5", 50, &[&kiosk, &other_card], "purchase", "bag"),
            ])
            .unwrap();
        let none = |_: &Identifier| Vec::new();
        let limits = IdentityRules::default();
        // Asked by email on another channel: the cookie's views and the store purchase are hers.
        let ann = person(group.log(), std::slice::from_ref(&email), none, &limits, Walk::default()).unwrap();
        let items: Vec<&str> = ann.events.iter().filter_map(|e| e.item_id.as_deref()).collect();
        assert_eq!(items, ["shoe", "-", "shoe", "hat"]);
        assert!(ann.identifiers.contains(&cookie) && ann.identifiers.contains(&card));
        assert!(!ann.identifiers.contains(&other_card) && !ann.identifiers.contains(&kiosk));
        // The other card's purchase at the kiosk is not hers, and hers is not theirs.
        let other = person(group.log(), &[other_card], none, &limits, Walk::default()).unwrap();
        let items: Vec<&str> = other.events.iter().filter_map(|e| e.item_id.as_deref()).collect();
        assert_eq!(items, ["bag"]);
        // Nothing stored: nobody.
        let nobody = person(group.log(), &[id(CookieId, "zz")], none, &limits, Walk::default()).unwrap();
        assert_eq!(nobody, LivePerson::default());
    }

    #[test]
    fn identifiers_the_model_linked_reach_their_live_events() {
        use IdentifierKind::*;
        let dir = tempfile::tempdir().unwrap();
        let group = GroupCommit::start(Arc::new(RedbLog::open_in(dir.path()).unwrap()));
        let (user, phone) = (id(UserId, "u1"), id(Phone, "+44 1234"));
        group.append(vec![stored("1", 10, &[&phone], "purchase", "kettle")]).unwrap();
        // The model knows u1 and the phone as one person; the call centre's event is under the phone.
        let known = |i: &Identifier| if *i == user { vec![user.clone(), phone.clone()] } else { Vec::new() };
        let limits = IdentityRules::default();
        let found =
            person(group.log(), std::slice::from_ref(&user), known, &limits, Walk::default()).unwrap();
        assert_eq!(found.events.len(), 1);
        assert_eq!(found.identifiers, [user.clone(), phone]);
        let unlinked =
            person(group.log(), &[user], |_: &Identifier| Vec::new(), &limits, Walk::default()).unwrap();
        assert!(unlinked.events.is_empty());
    }
}
