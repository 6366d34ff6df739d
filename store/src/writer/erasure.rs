//! An erasure inside the writer's transaction: the person's events (others' events keep
//! theirs, without the erased identifiers), ledgers, consent, impressions, exposures and
//! identity log entries; the suppression hashes that keep them out of every later export.

use super::*;

/// Erases the person of `identifier` (and the identifiers `also` names), as of `at`;
/// `None` when nothing is known or kept of them.
pub(super) fn erase(
    shared: &Shared,
    w: &mut dyn Writer,
    identifier: &Identifier,
    also: &[Identifier],
    source: &str,
    at: i64,
) -> Result<Option<Erasure>> {
    let person =
        shared.graph.read().unwrap_or_else(PoisonError::into_inner).person(std::slice::from_ref(identifier));
    let Some(person) = person else { return Ok(None) };
    if !person.known
        && also.is_empty()
        && w.events_with(&identifier.key())?.is_empty()
        && !holds_anything(w, &identifier.key())?
    {
        return Ok(None);
    }
    let mut identifiers: BTreeSet<Identifier> = person.identifiers.iter().cloned().collect();
    identifiers.insert(identifier.clone());
    identifiers.extend(also.iter().cloned());
    let keys: BTreeSet<String> = identifiers.iter().map(Identifier::key).collect();
    let mut erasure = Erasure {
        person: person.key.clone(),
        identifiers: keys.len(),
        erased_at: at,
        requested_by: source.to_string(),
        ..Erasure::default()
    };
    let mut seqs: BTreeSet<u64> = BTreeSet::new();
    for key in &keys {
        seqs.extend(w.events_with(key)?);
    }
    for seq in seqs {
        let Some(event) = w.event(seq)? else { continue };
        w.delete_event(&event)?;
        if keys.contains(&event.anchor) {
            erasure.events += 1;
        } else {
            // Someone else's event that also carried one of the person's identifiers (a
            // shared device's): it stays theirs, without the erased identifiers.
            let kept = EventRecord {
                identifiers: event.identifiers.iter().filter(|k| !keys.contains(*k)).cloned().collect(),
                ..event
            };
            w.put_event(&kept)?;
            erasure.events_redacted += 1;
        }
    }
    // What was served to them and waits in memory goes too.
    shared.forget_pending(&keys);
    for key in &keys {
        w.delete_consumed(key)?;
        if w.consent(key)?.is_some() {
            w.delete_consent(key)?;
            erasure.consent_records += 1;
        }
        erasure.impressions += w.delete_impressions(key)?;
        erasure.exposures += w.delete_exposures(key)?;
        w.put_erased(&suppression_hash(key), Erased { at })?;
    }
    let mut touched = Vec::new();
    w.scan_links(&mut |link| {
        if link.identifiers.iter().any(|k| keys.contains(k)) {
            touched.push(link);
        }
        Ok(())
    })?;
    for link in touched {
        let kept: Vec<String> = link.identifiers.iter().filter(|k| !keys.contains(*k)).cloned().collect();
        // An entry that also joined others (a shared device's event: a loyalty card and a
        // cookie beside the erased person's device) keeps joining them, without the erased
        // identifiers (left with one, it keeps that identifier known); an unlink of the
        // person goes.
        if link.kind != LinkKind::Unlink && !kept.is_empty() {
            w.put_link(&LinkRecord { identifiers: kept, ..link })?;
            erasure.links_redacted += 1;
        } else {
            w.delete_link(link.seq)?;
            erasure.links += 1;
        }
    }
    Ok(Some(erasure))
}

/// Whether anything is kept under identifier key `key` besides events: what was shown or
/// served under it (an anonymous visitor's answers), assignments (and so exposures) of
/// experiments, consent, a consumed ledger.
fn holds_anything(w: &dyn Writer, key: &str) -> Result<bool> {
    if !w.impressions(key, i64::MIN, 1)?.is_empty()
        || w.consent(key)?.is_some()
        || !w.consumed(key)?.is_empty()
    {
        return Ok(true);
    }
    let mut experiments = Vec::new();
    w.scan_experiments(&mut |experiment| {
        experiments.push(experiment.name);
        Ok(())
    })?;
    for experiment in experiments {
        // Every exposure stored under a key records the key's assignment with it.
        if w.assignment(key, &experiment)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
