//! Attribution and the report on hand-made rows.

use super::*;

fn experiment(shares: &[f64]) -> Experiment {
    let variants: Vec<serde_json::Value> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({ "name": if i == 0 { "control".to_string() } else { format!("v{i}") }, "share": s }))
        .collect();
    serde_json::from_value(serde_json::json!({
        "name": "x", "placements": ["home"], "variants": variants, "start": 0,
        "guardrails": ["click_through_rate", "revenue_per_person"]
    }))
    .unwrap()
}

fn exposure(id: &str, person: &str, variant: usize, channel: &str, items: &[&str], at: i64) -> ExposureRow {
    ExposureRow {
        id: id.into(),
        person: person.into(),
        variant,
        channel: channel.into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        at,
    }
}

fn outcome(person: &str, kind: OutcomeKind, item: &str, value: f64, channel: &str, at: i64) -> OutcomeRow {
    OutcomeRow {
        person: person.into(),
        kind,
        item: Some(item.into()),
        value,
        channel: channel.into(),
        at,
        recommendation_id: None,
    }
}

const DAY: i64 = 86_400;

#[test]
fn outcomes_count_for_the_named_exposure_else_the_latest_showing_the_item_within_the_window() {
    let exposures = [
        exposure("r1", "p1", 0, "email", &["a", "b"], 100),
        exposure("r2", "p1", 0, "web", &["a"], 200),
        exposure("r3", "p2", 1, "app", &["c"], 100),
    ];
    let named = OutcomeRow {
        recommendation_id: Some("r1".into()),
        ..outcome("p1", OutcomeKind::Click, "a", 0.0, "email", 300)
    };
    let outcomes = [
        // Named: counts for r1 even though r2 is more recent.
        named.clone(),
        // Not named: the latest exposure of the item before it, r2 (web); bought in store.
        outcome("p1", OutcomeKind::Purchase, "a", 20.0, "store", 400),
        // `b` only r1 showed: r1, from email, cross-channel.
        outcome("p1", OutcomeKind::Purchase, "b", 5.0, "store", 500),
        // Outside the 7-day window.
        outcome("p2", OutcomeKind::Purchase, "c", 9.0, "app", 100 + 8 * DAY),
        // An item never shown.
        outcome("p2", OutcomeKind::Purchase, "z", 9.0, "app", 150),
        // Before the exposure by more than the clock skew.
        outcome("p2", OutcomeKind::Purchase, "c", 9.0, "app", 100 - CLOCK_SKEW - 1),
        // Naming an answer that did not show the item: found through the window instead.
        OutcomeRow {
            recommendation_id: Some("r2".into()),
            ..outcome("p1", OutcomeKind::Click, "b", 0.0, "web", 600)
        },
    ];
    let found = attribute(&exposures, &outcomes, 7 * DAY);
    let expect = |exposure, direct, cross_channel| Some(Attribution { exposure, direct, cross_channel });
    assert_eq!(
        found,
        [
            expect(0, true, false),
            expect(1, false, true),
            expect(0, false, true),
            None,
            None,
            None,
            expect(0, false, true)
        ]
    );
}

#[test]
fn the_report_counts_persons_channels_and_cross_channel_purchases_and_leaves_mixed_persons_out() {
    let e = experiment(&[1.0, 1.0]);
    let exposures = [
        exposure("r1", "p1", 0, "email", &["a"], 10),
        exposure("r2", "p1", 0, "web", &["b"], 20),
        exposure("r3", "p2", 1, "web", &["a"], 10),
        // p3 was in both (a merge of two assigned persons).
        exposure("r4", "p3", 0, "web", &["a"], 10),
        exposure("r5", "p3", 1, "app", &["a"], 30),
    ];
    let outcomes = [
        outcome("p1", OutcomeKind::Purchase, "a", 30.0, "store", 40),
        outcome("p1", OutcomeKind::Click, "b", 0.0, "web", 41),
        outcome("p2", OutcomeKind::Purchase, "a", 10.0, "web", 42),
        outcome("p3", OutcomeKind::Purchase, "a", 99.0, "web", 43),
    ];
    let r = report(&e, &exposures, &outcomes, &HashMap::new());
    assert_eq!(r.mixed_persons, 1);
    let [control, v1] = &r.variants[..] else { panic!() };
    assert_eq!((control.persons, control.exposures, control.converted, control.purchases), (1, 2, 1, 1));
    assert_eq!((control.clicks, control.revenue, control.cross_channel_purchases), (1, 30.0, 1));
    assert_eq!(
        control.channels["email"],
        ChannelCounts { persons: 1, exposures: 1, purchases: 1, revenue: 30.0 }
    );
    assert_eq!(control.channels["web"].purchases, 0);
    assert_eq!((v1.persons, v1.converted, v1.revenue, v1.cross_channel_purchases), (1, 1, 10.0, 0));
    assert_eq!(control.click_through_rate, 0.5);
    assert_eq!((r.attributed, r.cross_channel), (3, 1));
    assert!(r.notes.iter().any(|n| n.contains("more than one variant")));
    // With mixed persons included, p3 counts under its first variant.
    let mut with_mixed = e.clone();
    with_mixed.analysis.include_mixed = true;
    let r = report(&with_mixed, &exposures, &outcomes, &HashMap::new());
    assert_eq!((r.variants[0].persons, r.variants[1].persons), (2, 1));
    // Everything of theirs counts there: exposures, purchases, revenue (the outcome was
    // attributed to their later exposure in v1).
    let [control, v1] = &r.variants[..] else { panic!() };
    assert_eq!((control.exposures, control.converted, control.purchases, control.revenue), (4, 2, 2, 129.0));
    assert_eq!((v1.exposures, v1.converted, v1.purchases, v1.revenue), (1, 1, 1, 10.0));
}

#[test]
fn a_return_takes_back_the_purchase_it_returns() {
    let e = experiment(&[1.0, 1.0]);
    let exposures =
        [exposure("r1", "p1", 0, "web", &["a", "b"], 10), exposure("r2", "p2", 1, "email", &["a"], 10)];
    let outcomes = [
        outcome("p1", OutcomeKind::Purchase, "a", 30.0, "web", 40),
        outcome("p1", OutcomeKind::Purchase, "b", 5.0, "web", 41),
        // A refund sent without the amount: the purchase's revenue goes.
        outcome("p1", OutcomeKind::Return, "a", 0.0, "store", 50),
        outcome("p2", OutcomeKind::Purchase, "a", 10.0, "store", 42),
        outcome("p2", OutcomeKind::Return, "a", 10.0, "store", 60),
        // A return of what was never counted takes nothing.
        outcome("p2", OutcomeKind::Return, "z", 10.0, "store", 61),
        // A till's purchase logged after its return (sent late): taken back all the same.
        outcome("p1", OutcomeKind::Return, "c", 0.0, "store", 45),
        outcome("p1", OutcomeKind::Purchase, "c", 7.0, "store", 44),
    ];
    let r = report(&e, &exposures, &outcomes, &HashMap::new());
    let [control, v1] = &r.variants[..] else { panic!() };
    assert_eq!((control.converted, control.purchases, control.revenue), (1, 1, 5.0));
    assert_eq!(control.channels["web"].purchases, 1);
    assert_eq!((v1.converted, v1.purchases, v1.revenue, v1.cross_channel_purchases), (0, 0, 0.0, 0));
    assert_eq!(v1.channels["email"].revenue, 0.0);
    // Of the four purchases attributed (two of them in store, another channel than their
    // exposure's), the one kept is on the web.
    assert_eq!((r.attributed, r.cross_channel), (1, 0));
}

/// `n` persons per arm; a person of arm `v` buys with probability `rates[v]` (deterministic:
/// every k-th person), revenue 10, pre-experiment activity correlated with buying.
fn simulated(
    rates: &[f64],
    n: usize,
    channel_of: impl Fn(usize, usize) -> &'static str,
) -> (Vec<ExposureRow>, Vec<OutcomeRow>, HashMap<String, f64>) {
    let (mut exposures, mut outcomes, mut pre) = (Vec::new(), Vec::new(), HashMap::new());
    for (v, rate) in rates.iter().enumerate() {
        let mut owed = 0.0;
        for i in 0..n {
            let person = format!("v{v}p{i}");
            exposures.push(exposure(&format!("r{v}-{i}"), &person, v, channel_of(v, i), &["a"], 10));
            owed += rate;
            let buys = owed >= 1.0;
            if buys {
                owed -= 1.0;
                outcomes.push(outcome(
                    &person,
                    OutcomeKind::Purchase,
                    "a",
                    10.0 + (i % 7) as f64,
                    "store",
                    20,
                ));
            }
            pre.insert(person, if buys { 3.0 } else { 1.0 } + (i % 3) as f64);
        }
    }
    (exposures, outcomes, pre)
}

#[test]
fn a_better_variant_wins_significantly_without_sample_ratio_mismatch() {
    let e = experiment(&[1.0, 1.0]);
    let (exposures, outcomes, pre) =
        simulated(&[0.05, 0.10], 2_000, |_, i| if i % 2 == 0 { "web" } else { "email" });
    let r = report(&e, &exposures, &outcomes, &pre);
    assert!(!r.srm.warns(), "{:?}", r.srm);
    let primary = r.comparisons.iter().find(|c| c.primary).unwrap();
    assert_eq!(primary.metric, Metric::ConversionRate);
    assert!((primary.control_value - 0.05).abs() < 1e-3 && (primary.variant_value - 0.10).abs() < 1e-3);
    let c = primary.comparison.as_ref().unwrap();
    assert!(c.relative.effect > 0.5 && c.relative.lower > 0.0 && c.relative.p_value < 0.001, "{c:?}");
    assert!(primary.p_adjusted.unwrap() >= c.relative.p_value);
    // CUPED ran and narrowed the interval against the unadjusted test.
    assert!(r.cuped.iter().any(|&(_, m, _)| m == Metric::ConversionRate));
    let mut plain = e.clone();
    plain.analysis.cuped = false;
    let unadjusted = report(&plain, &exposures, &outcomes, &pre);
    let width = |r: &Report| {
        let c = r.comparisons.iter().find(|c| c.primary).unwrap().comparison.unwrap();
        c.absolute.upper - c.absolute.lower
    };
    assert!(width(&r) < width(&unadjusted));
    // Anytime-valid intervals are wider still, and still exclude no lift here.
    let mut sequential = e.clone();
    sequential.analysis.sequential = true;
    let s = report(&sequential, &exposures, &outcomes, &pre);
    assert!(width(&s) > width(&r));
    // Equal arms: no significant difference, no SRM.
    let (exposures, outcomes, pre) = simulated(&[0.05, 0.05], 2_000, |_, _| "web");
    let r = report(&e, &exposures, &outcomes, &pre);
    let c = r.comparisons.iter().find(|c| c.primary).unwrap().comparison.unwrap();
    assert!(c.relative.p_value > 0.05);
    assert!(r.notes.iter().any(|n| n.starts_with("underpowered")), "{:?}", r.notes);
}

#[test]
fn a_skewed_split_or_a_channel_that_drops_a_variant_raises_the_warning() {
    let e = experiment(&[1.0, 1.0]);
    // 2,000 against 1,700 persons at 50/50.
    let (mut exposures, outcomes, pre) = simulated(&[0.05, 0.05], 2_000, |_, _| "web");
    exposures
        .retain(|x| !(x.variant == 1 && x.id.trim_start_matches("r1-").parse::<usize>().unwrap() >= 1_700));
    let r = report(&e, &exposures, &outcomes, &pre);
    assert!(r.srm.overall.as_ref().unwrap().p_value < 0.001);
    assert!(r.srm.warns() && r.notes[0].starts_with("sample-ratio mismatch"));
    // Balanced overall, but the app shows only the control: the per-channel check warns.
    let (exposures, outcomes, pre) =
        simulated(&[0.05, 0.05], 2_000, |v, i| if v == 0 && i % 4 == 0 { "app" } else { "web" });
    let r = report(&e, &exposures, &outcomes, &pre);
    assert!(r.srm.overall.as_ref().unwrap().p_value > 0.001);
    assert!(r.srm.by_channel["app"].as_ref().unwrap().p_value < 0.001);
    assert!(r.srm.warns());
}

#[test]
fn revenue_is_capped_at_a_quantile_of_the_positive_revenues() {
    let e = experiment(&[1.0, 1.0]);
    let (exposures, mut outcomes, pre) = simulated(&[0.5, 0.5], 200, |_, _| "web");
    // One huge order in the variant.
    outcomes.push(outcome("v1p0", OutcomeKind::Purchase, "a", 1e6, "web", 30));
    let r = report(&e, &exposures, &outcomes, &pre);
    let cap = r.revenue_cap.unwrap();
    assert!(cap < 1_000.0, "cap {cap}");
    let revenue = r.comparisons.iter().find(|c| c.metric == Metric::RevenuePerPerson).unwrap();
    // The variant's summary shows the order; the comparison runs on capped values, so its
    // interval does not explode with it.
    assert!(r.variants[1].revenue_per_person > 1_000.0);
    assert!(revenue.variant_value < 1_000.0);
    let c = revenue.comparison.as_ref().unwrap();
    assert!(c.absolute.upper - c.absolute.lower < 100.0, "{c:?}");
}

#[test]
fn the_timeline_is_cumulative() {
    let e = experiment(&[1.0, 1.0]);
    let exposures = [exposure("r1", "p1", 0, "web", &["a"], 10), exposure("r2", "p2", 1, "web", &["a"], 100)];
    let outcomes = [outcome("p1", OutcomeKind::Purchase, "a", 1.0, "web", 50)];
    let series = timeline(&e, &exposures, &outcomes, &[20, 60, 200]);
    let control: Vec<(u64, f64)> = series[0].iter().map(|p| (p.persons, p.rate)).collect();
    assert_eq!(control, [(1, 0.0), (1, 1.0), (1, 1.0)]);
    let variant: Vec<u64> = series[1].iter().map(|p| p.persons).collect();
    assert_eq!(variant, [0, 0, 1]);
}
