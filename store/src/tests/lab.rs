//! Experiments, exposures, assignments and the model registry in the store.

use super::*;

fn served(id: &str, person: &str, channel: &str, at: i64) -> Impression {
    Impression {
        id: id.into(),
        person: person.into(),
        channel: channel.into(),
        placement: Some("home".into()),
        items: vec!["i1".into(), "i2".into()],
        at,
    }
}

/// An email send of experiment `x1`'s variant `blend`, as a sender reports it.
fn reported(id: &str, person: &str, at: i64) -> Exposure {
    Exposure {
        id: id.into(),
        tag: ExposureTag { experiment: "x1".into(), variant: "blend".into() },
        person: person.into(),
        channel: "email".into(),
        placement: None,
        items: vec!["i9".into()],
        at,
    }
}

fn tag(variant: &str) -> Option<ExposureTag> {
    Some(ExposureTag { experiment: "x1".into(), variant: variant.into() })
}

#[test]
fn served_exposures_are_seen_at_once_kept_and_assign_on_first_exposure() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.record_served(served("r1", "cookie_id:c1", "web", 10), tag("control"));
        store.record_served(served("r2", "cookie_id:c1", "web", 11), tag("blend"));
        store.record_served(served("r3", "user_id:u1", "app", 12), tag("blend"));
        store.record_served(served("r4", "user_id:u2", "app", 12), None);
        // Before any commit: read-your-writes.
        let (first, disagree) = store.assignment("x1", &["cookie_id:c1".into()]).unwrap().unwrap();
        assert_eq!((first.variant.as_str(), first.at), ("control", 10));
        assert!(disagree, "two variants under one key");
        assert_eq!(store.exposures("x1").unwrap().len(), 3);
    }
    // Dropping the store flushed what waited: it is on disk after a restart.
    let store = open(dir.path());
    let exposures = store.exposures("x1").unwrap();
    let ids: Vec<&str> = exposures.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3"]);
    assert_eq!(exposures[2].channel, "app");
    assert_eq!(exposures[2].items, ["i1", "i2"]);
    assert!(store.exposures("other").unwrap().is_empty());
    // The first exposure under a key assigns it; later ones do not change it.
    let (cookie, _) = store.assignment("x1", &["cookie_id:c1".into()]).unwrap().unwrap();
    assert_eq!((cookie.variant.as_str(), cookie.exposure_id.as_str()), ("control", "r1"));
    // A merged person: the earliest of their keys' assignments, and the disagreement shown.
    let keys = ["user_id:u1".to_string(), "cookie_id:c1".to_string()];
    let (merged, disagree) = store.assignment("x1", &keys).unwrap().unwrap();
    assert_eq!(merged.variant, "control");
    assert!(disagree);
    let (alone, disagree) = store.assignment("x1", &keys[..1]).unwrap().unwrap();
    assert_eq!((alone.variant.as_str(), disagree), ("blend", false));
    assert!(store.assignment("x1", &["user_id:u2".into()]).unwrap().is_none());
}

#[test]
fn reported_exposures_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let exposure = reported("batch-1", "email:abc", 100);
    let second = Exposure { id: "batch-2".into(), at: 101, ..exposure.clone() };
    assert_eq!(store.record_exposures(vec![exposure.clone(), second]).unwrap(), [true, true]);
    assert_eq!(store.record_exposures(vec![exposure.clone()]).unwrap(), [false]);
    // A retry reported a second later (its time taken on arrival) is the same exposure.
    let retried = Exposure { at: 102, ..exposure };
    assert_eq!(store.record_exposures(vec![retried]).unwrap(), [false]);
    assert_eq!(store.exposures("x1").unwrap().len(), 2);
    let (assignment, _) = store.assignment("x1", &["email:abc".into()]).unwrap().unwrap();
    assert_eq!(assignment.exposure_id, "batch-1");
}

#[test]
fn erasure_deletes_the_person_s_exposures_and_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let user = id(UserId, "u1");
    let cookie = id(CookieId, "c1");
    store.ingest(vec![event("1", &[&user, &cookie], "web", "view", Some("i1"), 5)], 6).unwrap();
    store.record_served(served("r1", &user.key(), "web", 10), tag("blend"));
    store.record_served(served("r2", &cookie.key(), "web", 11), tag("blend"));
    store.record_served(served("r3", "user_id:other", "web", 12), tag("control"));
    // Committed with the next durable write.
    store
        .put_experiment(ExperimentRecord {
            name: "x1".into(),
            definition: "{}".into(),
            created_at: 1,
            updated_at: 1,
        })
        .unwrap();
    let receipt = store.erase(user.clone(), Vec::new(), "privacy", 20).unwrap().unwrap();
    assert_eq!(receipt.exposures, 2);
    let left: Vec<String> = store.exposures("x1").unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(left, ["r3"]);
    assert!(store.assignment("x1", &[user.key(), cookie.key()]).unwrap().is_none());
    assert!(store.assignment("x1", &["user_id:other".into()]).unwrap().is_some());
}

#[test]
fn erasing_someone_known_only_by_what_was_served_to_them_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // An anonymous visitor who never sent an event: answers served to their cookie, one of
    // them an experiment's exposure, and an account only an exposure report names.
    store.record_served(served("r1", "cookie_id:c1", "web", 10), tag("blend"));
    store.record_served(served("r2", "cookie_id:c1", "web", 11), None);
    assert_eq!(store.record_exposures(vec![reported("mail-1", "user_id:u9", 12)]).unwrap(), [true]);
    store
        .put_experiment(ExperimentRecord {
            name: "x1".into(),
            definition: "{}".into(),
            created_at: 1,
            updated_at: 1,
        })
        .unwrap();
    let cookie = id(CookieId, "c1");
    let receipt =
        store.erase(cookie.clone(), Vec::new(), "privacy", 20).unwrap().expect("the cookie is erased");
    assert_eq!((receipt.impressions, receipt.exposures), (2, 1));
    assert!(store.assignment("x1", &[cookie.key()]).unwrap().is_none());
    let account = id(UserId, "u9");
    let receipt = store.erase(account, Vec::new(), "privacy", 21).unwrap().expect("the account is erased");
    assert_eq!(receipt.exposures, 1);
    let left: Vec<String> = store.exposures("x1").unwrap().into_iter().map(|e| e.id).collect();
    assert!(left.is_empty(), "{left:?}");
    // Someone of whom nothing is kept is still nobody known.
    assert!(store.erase(id(CookieId, "never-seen"), Vec::new(), "privacy", 22).unwrap().is_none());
}

#[test]
fn experiments_and_the_model_registry_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let model = ModelRecord {
        version: "v1".into(),
        path: "/models/v1.omr".into(),
        state: ModelState::Production,
        registered_at: 3,
        changed_at: 3,
    };
    {
        let store = open(dir.path());
        let experiment = ExperimentRecord {
            name: "x1".into(),
            definition: r#"{"a":1}"#.into(),
            created_at: 1,
            updated_at: 2,
        };
        store.put_experiment(experiment).unwrap();
        store.put_model(model.clone()).unwrap();
        store
            .put_model(ModelRecord { version: "v0".into(), state: ModelState::Retired, ..model.clone() })
            .unwrap();
    }
    let store = open(dir.path());
    let experiments = store.experiments().unwrap();
    assert_eq!(experiments.len(), 1);
    assert_eq!(experiments[0].definition, r#"{"a":1}"#);
    let models = store.models().unwrap();
    let states: Vec<(&str, ModelState)> = models.iter().map(|m| (m.version.as_str(), m.state)).collect();
    assert_eq!(states, [("v0", ModelState::Retired), ("v1", ModelState::Production)]);
}

#[test]
fn a_read_that_meets_an_erasure_of_waiting_answers_is_done_again_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.record_served(served("r1", "cookie_id:c1", "web", 10), tag("control"));
    let erased = BTreeSet::from(["cookie_id:c1".to_string()]);
    let mut passes = 0;
    let copy = |pending: &[Pending]| pending.iter().filter(|p| p.shown.person == "cookie_id:c1").count();
    let seen = store
        .shared
        .read_with_pending(copy, |waiting| {
            passes += 1;
            if passes == 1 {
                // The erasure takes the waiting answer after it was copied.
                store.shared.forget_pending(&erased);
            }
            Ok(waiting)
        })
        .unwrap();
    assert_eq!((passes, seen), (2, 0));
}
