//! The HPA's `behavior`: stabilization windows (act on the most conservative recommendation of
//! the recent past) and scaling policies (at most N pods or P percent per period), applied to
//! the metrics' raw recommendation as upstream does. Pure: the history lives in [`History`],
//! owned by the controller per HPA.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// One scaling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub percent: bool,
    pub value: i32,
    pub period_secs: i64,
}

/// How policies combine (`selectPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the biggest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// The rules of one direction, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub window_secs: i64,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// Upstream's defaults when `behavior` (or one direction of it) is not given: scale up at once
/// by up to 4 pods or 100% per 15 s, scale down by up to 100% per 15 s after a 5 minute window.
pub fn rules(behavior: Option<&HorizontalPodAutoscalerBehavior>) -> (Rules, Rules) {
    let up = behavior.and_then(|b| b.scale_up.as_ref());
    let down = behavior.and_then(|b| b.scale_down.as_ref());
    (
        fill(
            up,
            0,
            &[
                Policy {
                    percent: false,
                    value: 4,
                    period_secs: 15,
                },
                Policy {
                    percent: true,
                    value: 100,
                    period_secs: 15,
                },
            ],
        ),
        fill(
            down,
            300,
            &[Policy {
                percent: true,
                value: 100,
                period_secs: 15,
            }],
        ),
    )
}

fn fill(given: Option<&HPAScalingRules>, window: i64, policies: &[Policy]) -> Rules {
    let select = match given.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let given_policies: Vec<Policy> = given
        .and_then(|r| r.policies.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| Policy {
                    percent: p.type_ == "Percent",
                    value: p.value,
                    period_secs: i64::from(p.period_seconds),
                })
                .collect()
        })
        .unwrap_or_default();
    Rules {
        window_secs: given
            .and_then(|r| r.stabilization_window_seconds)
            .map_or(window, i64::from),
        select,
        policies: if given_policies.is_empty() {
            policies.to_vec()
        } else {
            given_policies
        },
    }
}

/// What the controller remembers about one HPA between syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Raw recommendations `(time, replicas)`.
    recommendations: Vec<(i64, i32)>,
    /// Performed scale-ups `(time, pods added)`.
    ups: Vec<(i64, i32)>,
    /// Performed scale-downs `(time, pods removed)`.
    downs: Vec<(i64, i32)>,
}

impl History {
    /// Records a performed rescale, forgetting events older than any policy period.
    pub fn record_scale(&mut self, now: i64, from: i32, to: i32, up: &Rules, down: &Rules) {
        let longest = up
            .policies
            .iter()
            .chain(&down.policies)
            .map(|p| p.period_secs)
            .max()
            .unwrap_or(0);
        self.ups.retain(|(t, _)| *t > now - longest);
        self.downs.retain(|(t, _)| *t > now - longest);
        if to > from {
            self.ups.push((now, to - from));
        } else if to < from {
            self.downs.push((now, from - to));
        }
    }
}

/// Why the count differs from the metrics' recommendation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub replicas: i32,
    /// `AbleToScale` reason and message: stabilized or ready.
    pub stabilization: (&'static str, &'static str),
    /// `ScalingLimited` reason and message (`DesiredWithinRange` when not limited).
    pub limit: (&'static str, &'static str),
}

impl Outcome {
    /// Whether `ScalingLimited` is true.
    pub fn limited(&self) -> bool {
        self.limit.0 != "DesiredWithinRange"
    }
}

/// Stabilizes `desired` against recent recommendations, then bounds it by the scaling policies
/// and `limits` (`minReplicas..=maxReplicas`). Records `desired` in the history.
pub fn normalize(
    history: &mut History,
    now: i64,
    current: i32,
    desired: i32,
    limits: std::ops::RangeInclusive<i32>,
    up: &Rules,
    down: &Rules,
) -> Outcome {
    let (min, max) = (*limits.start(), *limits.end());
    let up_cutoff = now - up.window_secs;
    let down_cutoff = now - down.window_secs;
    let mut up_rec = desired;
    let mut down_rec = desired;
    for (t, r) in &history.recommendations {
        if *t > up_cutoff {
            up_rec = up_rec.min(*r);
        }
        if *t > down_cutoff {
            down_rec = down_rec.max(*r);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    let oldest_needed = up_cutoff.min(down_cutoff);
    history.recommendations.retain(|(t, _)| *t >= oldest_needed);
    history.recommendations.push((now, desired));

    let stabilization = if stabilized == desired {
        ("ReadyForNewScale", "recommended size matches current size")
    } else if desired >= current {
        (
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    };

    let within = (
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    );
    let (replicas, limit) = if stabilized > current {
        let rate = up_limit(current, history, now, up).max(current);
        let (allowed, reason) = if max > rate {
            (
                rate,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                max,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        if stabilized > allowed {
            (allowed, reason)
        } else {
            (stabilized, within)
        }
    } else if stabilized < current {
        let rate = down_limit(current, history, now, down).min(current);
        let (allowed, reason) = if min < rate {
            (
                rate,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                min,
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        };
        if stabilized < allowed {
            (allowed, reason)
        } else {
            (stabilized, within)
        }
    } else {
        (stabilized, within)
    };
    Outcome {
        replicas,
        stabilization,
        limit,
    }
}

fn changed_within(events: &[(i64, i32)], now: i64, period: i64) -> i32 {
    events
        .iter()
        .filter(|(t, _)| *t > now - period)
        .map(|(_, n)| *n)
        .sum()
}

fn up_limit(current: i32, h: &History, now: i64, rules: &Rules) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MAX, std::cmp::min),
        Select::Max => (i32::MIN, std::cmp::max),
    };
    for p in &rules.policies {
        let start = current - changed_within(&h.ups, now, p.period_secs)
            + changed_within(&h.downs, now, p.period_secs);
        let proposed = if p.percent {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        } else {
            start.saturating_add(p.value)
        };
        result = pick(result, proposed);
    }
    if rules.policies.is_empty() {
        current
    } else {
        result
    }
}

fn down_limit(current: i32, h: &History, now: i64, rules: &Rules) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MIN, std::cmp::max),
        Select::Max => (i32::MAX, std::cmp::min),
    };
    for p in &rules.policies {
        let start = current - changed_within(&h.ups, now, p.period_secs)
            + changed_within(&h.downs, now, p.period_secs);
        let proposed = if p.percent {
            // Truncation, as upstream: never remove more than the percentage allows.
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        } else {
            start.saturating_sub(p.value)
        };
        result = pick(result, proposed);
    }
    if rules.policies.is_empty() {
        current
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    fn behavior(
        up: Option<HPAScalingRules>,
        down: Option<HPAScalingRules>,
    ) -> HorizontalPodAutoscalerBehavior {
        HorizontalPodAutoscalerBehavior {
            scale_up: up,
            scale_down: down,
        }
    }

    fn policy(kind: &str, value: i32, period: i32) -> HPAScalingPolicy {
        HPAScalingPolicy {
            type_: kind.into(),
            value,
            period_seconds: period,
        }
    }

    #[test]
    fn defaults_match_upstream() {
        let (up, down) = rules(None);
        assert_eq!(up.window_secs, 0);
        assert_eq!(down.window_secs, 300);
        assert_eq!(up.select, Select::Max);
        assert_eq!(up.policies.len(), 2);
        let b = behavior(
            None,
            Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                select_policy: Some("Disabled".into()),
                ..Default::default()
            }),
        );
        let (_, down) = rules(Some(&b));
        assert_eq!(down.window_secs, 0);
        assert_eq!(down.select, Select::Disabled);
        assert_eq!(
            down.policies.len(),
            1,
            "default policies kept when none given"
        );
    }

    #[test]
    fn normalize_table() {
        let (def_up, def_down) = rules(None);
        let no_window_down = rules(Some(&behavior(
            None,
            Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                ..Default::default()
            }),
        )))
        .1;
        let slow_up = rules(Some(&behavior(
            Some(HPAScalingRules {
                policies: Some(vec![policy("Pods", 1, 60)]),
                ..Default::default()
            }),
            None,
        )))
        .0;
        let min_select_down = rules(Some(&behavior(
            None,
            Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                select_policy: Some("Min".into()),
                policies: Some(vec![policy("Pods", 5, 60), policy("Percent", 10, 60)]),
                ..Default::default()
            }),
        )))
        .1;
        // (up, down, current, desired, min, max, want, want limit reason)
        let cases = [
            (
                &def_up,
                &no_window_down,
                2,
                4,
                1,
                10,
                4,
                "DesiredWithinRange",
            ),
            // Default up: max(2+4, 2*2) = 6 per period.
            (&def_up, &no_window_down, 2, 20, 1, 10, 6, "ScaleUpLimit"),
            (
                &def_up,
                &no_window_down,
                8,
                20,
                1,
                10,
                10,
                "TooManyReplicas",
            ),
            (&def_up, &no_window_down, 5, 0, 2, 10, 2, "TooFewReplicas"),
            (&slow_up, &no_window_down, 3, 9, 1, 10, 4, "ScaleUpLimit"),
            // Min of (20-5, 20*0.9=18) chooses the smaller change: 18.
            (
                &def_up,
                &min_select_down,
                20,
                1,
                1,
                30,
                18,
                "ScaleDownLimit",
            ),
            // Default down waits out its window: no recorded history yet → immediate (the
            // window only holds back once there are higher recent recommendations).
            (&def_up, &def_down, 4, 2, 1, 10, 2, "DesiredWithinRange"),
        ];
        for (i, (up, down, current, desired, min, max, want, reason)) in
            cases.into_iter().enumerate()
        {
            let mut h = History::default();
            let got = normalize(&mut h, 1000, current, desired, min..=max, up, down);
            assert_eq!((got.replicas, got.limit.0), (want, reason), "case {i}");
        }
    }

    #[test]
    fn down_stabilization_window_holds_the_highest_recent_recommendation() {
        let (up, down) = rules(None);
        let mut h = History::default();
        // At t=0 the metrics asked for 5; at t=60 only for 1.
        let first = normalize(&mut h, 0, 5, 5, 1..=10, &up, &down);
        assert_eq!(first.replicas, 5);
        let later = normalize(&mut h, 60, 5, 1, 1..=10, &up, &down);
        assert_eq!(later.replicas, 5);
        assert_eq!(later.stabilization.0, "ScaleDownStabilized");
        // Once t=0 is out of the 300 s window, the low recommendations win.
        let after = normalize(&mut h, 301, 5, 1, 1..=10, &up, &down);
        assert_eq!(after.replicas, 1);
    }

    #[test]
    fn rate_counts_recent_scale_events() {
        let (up, down) = rules(Some(&behavior(
            Some(HPAScalingRules {
                policies: Some(vec![policy("Pods", 2, 60)]),
                ..Default::default()
            }),
            None,
        )));
        let mut h = History::default();
        let first = normalize(&mut h, 0, 2, 10, 1..=20, &up, &down);
        assert_eq!(first.replicas, 4);
        h.record_scale(0, 2, 4, &up, &down);
        // Within the same 60 s period the budget of 2 pods is spent.
        let second = normalize(&mut h, 30, 4, 10, 1..=20, &up, &down);
        assert_eq!(second.replicas, 4);
        assert_eq!(second.limit.0, "ScaleUpLimit");
        // After the period the next 2 pods may come.
        let third = normalize(&mut h, 61, 4, 10, 1..=20, &up, &down);
        assert_eq!(third.replicas, 6);
    }

    #[test]
    fn disabled_direction_never_moves() {
        let (up, down) = rules(Some(&behavior(
            Some(HPAScalingRules {
                select_policy: Some("Disabled".into()),
                ..Default::default()
            }),
            None,
        )));
        let mut h = History::default();
        let got = normalize(&mut h, 0, 3, 9, 1..=10, &up, &down);
        assert_eq!(got.replicas, 3);
        assert!(got.limited());
    }
}
