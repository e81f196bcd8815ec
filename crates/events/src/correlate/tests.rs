//! Tables for event correlation: dedup, combining similar events, the spam filter, names.

use super::*;

fn draft(object: &str, reason: &str, message: &str) -> Draft {
    Draft {
        involved: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some(object.into()),
            uid: Some(format!("uid-{object}")),
            ..ObjectReference::default()
        },
        type_: "Warning".into(),
        reason: reason.into(),
        message: message.into(),
        component: "default-scheduler".into(),
        instance: "rudder-1".into(),
        host: None,
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
}

#[test]
fn repeats_bump_the_first_event() {
    let mut c = Correlator::new();
    let d = draft("web", "FailedScheduling", "0/3 nodes are available");
    let first = c.observe(&d, at(0)).expect("allowed");
    assert!(first.is_new());
    let second = c.observe(&d, at(5)).expect("allowed");
    assert_eq!(
        (
            second.name.as_str(),
            second.count,
            second.first,
            second.last
        ),
        (first.name.as_str(), 2, at(0), at(5))
    );
    // Another message, reason or object is another event.
    for other in [
        draft("web", "FailedScheduling", "0/4 nodes are available"),
        draft("web", "Scheduled", "0/3 nodes are available"),
        draft("db", "FailedScheduling", "0/3 nodes are available"),
    ] {
        let w = c.observe(&other, at(6)).expect("allowed");
        assert!(w.is_new(), "{other:?}");
        assert_ne!(w.name, first.name);
    }
}

#[test]
fn similar_events_are_combined_after_ten_messages() {
    let mut c = Correlator::new();
    let mut names = Vec::new();
    for i in 0..MAX_SIMILAR {
        let w = c
            .observe(&draft("web", "BackOff", &format!("message {i}")), at(0))
            .expect("allowed");
        assert!(w.is_new());
        assert_eq!(w.message, format!("message {i}"));
        names.push(w.name);
    }
    let combined = c
        .observe(&draft("web", "BackOff", "message 10"), at(1))
        .expect("allowed");
    assert!(combined.is_new());
    assert_eq!(combined.message, format!("{COMBINED_PREFIX}message 10"));
    assert!(!names.contains(&combined.name));
    let again = c
        .observe(&draft("web", "BackOff", "message 11"), at(2))
        .expect("allowed");
    assert_eq!((again.name, again.count), (combined.name, 2));
    assert_eq!(again.message, format!("{COMBINED_PREFIX}message 11"));
    // A message already seen is still its own event.
    let old = c
        .observe(&draft("web", "BackOff", "message 3"), at(3))
        .expect("allowed");
    assert!(old.message.starts_with(COMBINED_PREFIX));
}

#[test]
fn the_similar_window_starts_again_after_ten_minutes() {
    let mut c = Correlator::new();
    for i in 0..=MAX_SIMILAR {
        c.observe(&draft("web", "BackOff", &format!("m{i}")), at(0));
    }
    let later = c
        .observe(&draft("web", "BackOff", "fresh"), at(601))
        .expect("allowed");
    assert_eq!(later.message, "fresh");
}

#[test]
fn spam_filter_allows_a_burst_then_one_per_five_minutes() {
    let mut c = Correlator::new();
    let allowed = (0..40)
        .filter(|i| {
            c.observe(&draft("web", "Reason", &format!("{i}")), at(0))
                .is_some()
        })
        .count();
    assert_eq!(allowed, 25);
    assert!(c.observe(&draft("web", "Reason", "x"), at(299)).is_none());
    assert!(c.observe(&draft("web", "Reason", "y"), at(300)).is_some());
    assert!(c.observe(&draft("web", "Reason", "z"), at(301)).is_none());
    // Another object has its own budget.
    assert!(c.observe(&draft("db", "Reason", "x"), at(0)).is_some());
}

#[test]
fn names_are_unique_within_a_nanosecond() {
    let mut c = Correlator::new();
    let a = c.observe(&draft("web", "A", "a"), at(0)).expect("allowed");
    let b = c.observe(&draft("web", "B", "b"), at(0)).expect("allowed");
    assert_ne!(a.name, b.name);
    assert!(a.name.starts_with("web."));
}

#[test]
fn caches_forget_the_oldest_entries() {
    let mut c = Correlator::new();
    let first = c
        .observe(&draft("pod-0", "R", "m"), at(0))
        .expect("allowed");
    for i in 1..=CACHE_SIZE {
        c.observe(&draft(&format!("pod-{i}"), "R", "m"), at(0));
    }
    let again = c
        .observe(&draft("pod-0", "R", "m"), at(1))
        .expect("allowed");
    assert!(again.is_new(), "forgotten, so written anew");
    assert_ne!(again.name, first.name);
}

#[test]
fn event_objects_carry_the_correlation() {
    let d = draft("web", "Scheduled", "assigned");
    let w = Write {
        name: "web.1".into(),
        message: "assigned".into(),
        count: 3,
        first: at(0),
        last: at(9),
    };
    let e = event(&d, &w);
    assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(e.count, Some(3));
    assert_eq!(e.first_timestamp, Some(Time(at(0))));
    assert_eq!(e.last_timestamp, Some(Time(at(9))));
    assert_eq!(
        e.source.and_then(|s| s.component),
        Some("default-scheduler".into())
    );
    let mut node = d.clone();
    node.involved.namespace = None;
    assert_eq!(namespace(&node), "default");
}
