//! The scale run's output: a progress line every 10 s on stderr, and the Markdown tables for
//! docs/benchmarks.md on stdout, labelled as partial when the run stopped before every pod ran.

use std::time::Duration;

use super::{End, Pace, Report};

/// Where the pods are, for the progress line.
pub(super) struct Counts {
    pub total: usize,
    pub requested: usize,
    pub created: usize,
    pub bound: usize,
    pub running: usize,
}

pub(super) fn progress_line(
    elapsed: Duration,
    c: &Counts,
    rss_mib: Option<u64>,
    cpu: Option<f64>,
) -> String {
    format!(
        "{:>5.0} s: pods requested {}, created {}, bound {}, Running {} of {}; server RSS {}, CPU {}",
        elapsed.as_secs_f64(),
        thousands(c.requested),
        thousands(c.created),
        thousands(c.bound),
        thousands(c.running),
        thousands(c.total),
        rss_mib.map_or("-".into(), |m| format!("{} MiB", thousands(m as usize))),
        cpu.map_or("-".into(), |c| format!("{c:.2} cores")),
    )
}

/// `30000` as `30,000`, as the docs write figures.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn mode(r: &Report) -> String {
    match r.pace {
        Pace::AllAtOnce => format!(
            "mode: unpaced ({} Deployments of {} replicas created at once, all {} pods asked for together)",
            r.deployments,
            thousands(r.replicas),
            thousands(r.pods)
        ),
        Pace::PerSecond(rate) => format!(
            "mode: paced at {rate} pods/s ({} Deployments created with 0 replicas, then scaled up \
             through the scale subresource to {} each)",
            r.deployments,
            thousands(r.replicas)
        ),
    }
}

/// The first line after the mode: all Running, or what stopped the run short and where it was.
fn outcome(r: &Report) -> String {
    let secs = r.elapsed.as_secs_f64();
    let why = match r.ended {
        End::AllRunning => {
            return format!(
                "pods running: {} of {} (all after {secs:.1} s)",
                thousands(r.running),
                thousands(r.pods)
            );
        }
        End::Deadline => format!("deadline of {} s reached", r.deadline.as_secs()),
        End::Interrupted => "SIGINT".to_owned(),
        End::Terminated => "SIGTERM".to_owned(),
    };
    let mut line = format!(
        "PARTIAL ({why}): {} of {} pods Running after {secs:.0} s (requested {}, created {}, bound {})",
        thousands(r.running),
        thousands(r.pods),
        thousands(r.requested),
        thousands(r.created),
        thousands(r.bound),
    );
    if let Some(waited) = r.oldest_pending {
        line.push_str(&format!(
            "; the {} created but not Running, waiting up to {:.1} s so far, are not in the pod \
             startup figures",
            thousands(r.created - r.running.min(r.created)),
            waited.as_secs_f64()
        ));
    }
    line
}

pub fn print(r: &Report) {
    let partial = r.ended != End::AllRunning;
    let tag = if partial { " (PARTIAL)" } else { "" };
    println!("{}", mode(r));
    println!("{}", outcome(r));
    println!(
        "scheduler throughput: {:.0} pods/s overall, {:.0} pods/s in the busiest 10 s",
        r.scheduled_per_second, r.scheduled_peak_per_second
    );
    println!(
        "control plane: peak RSS {}, CPU {} cores on average, {} in the busiest 5 s",
        r.peak_rss_mib.map_or("-".into(), |m| format!("{m} MiB")),
        r.cpu_average.map_or("-".into(), |c| format!("{c:.2}")),
        r.cpu_peak.map_or("-".into(), |c| format!("{c:.2}")),
    );
    if r.failed_patches > 0 {
        println!(
            "({} scale PATCHes failed and were retried)",
            r.failed_patches
        );
    }
    if r.relists > 0 {
        println!("(the bench's pod watch had to relist {} times)", r.relists);
    }
    println!();
    println!("| pod startup (to Running, seen by a watch){tag} | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    let [a, b, c] = r.startup_from_timestamp;
    println!(
        "| from creationTimestamp (whole seconds: up to 1 s high) | {a:.0} | {b:.0} | {c:.0} |"
    );
    let [a, b, c] = r.startup_from_seen;
    println!("| from the watch's first sight of the pod | {a:.0} | {b:.0} | {c:.0} |");
    println!();
    let until = r.server_until.map_or(String::new(), |d| {
        format!(
            ", up to {:.0} s: the server did not answer at the end",
            d.as_secs_f64()
        )
    });
    println!("| API calls (server histogram{until}){tag} | calls | p99 s (bucket bound) |");
    println!("|---|---|---|");
    match &r.server {
        Some(kinds) => {
            for (kind, calls, p99) in kinds {
                println!(
                    "| {kind:?} | {calls} | {} |",
                    p99.map_or("-".into(), |p| format!("{p}"))
                );
            }
        }
        None => println!("| (the server's /metrics did not answer after the start) | - | - |"),
    }
    println!();
    println!("| API calls (client probes){tag} | calls | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (what, calls, p50, p99, max) in &r.probes {
        println!("| {what} | {calls} | {p50:.1} | {p99:.1} | {max:.1} |");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_get_thousands_separators() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (14_416, "14,416"),
            (150_000, "150,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want);
        }
    }

    fn report(ended: End) -> Report {
        Report {
            pace: Pace::PerSecond(20.0),
            deployments: 30,
            replicas: 1_000,
            ended,
            elapsed: Duration::from_millis(645_400),
            deadline: Duration::from_secs(645),
            pods: 30_000,
            requested: 12_900,
            created: 12_880,
            bound: 12_000,
            running: 11_500,
            failed_patches: 0,
            oldest_pending: Some(Duration::from_millis(12_340)),
            startup_from_timestamp: [f64::NAN; 3],
            startup_from_seen: [f64::NAN; 3],
            scheduled_per_second: f64::NAN,
            scheduled_peak_per_second: 0.0,
            server: None,
            server_until: None,
            probes: Vec::new(),
            peak_rss_mib: None,
            cpu_average: None,
            cpu_peak: None,
            relists: 0,
        }
    }

    #[test]
    fn a_run_cut_short_says_so_and_why() {
        assert_eq!(
            outcome(&report(End::Deadline)),
            "PARTIAL (deadline of 645 s reached): 11,500 of 30,000 pods Running after 645 s \
             (requested 12,900, created 12,880, bound 12,000); the 1,380 created but not Running, \
             waiting up to 12.3 s so far, are not in the pod startup figures"
        );
        assert!(outcome(&report(End::Terminated)).starts_with("PARTIAL (SIGTERM): 11,500 of"));
        let mut done = report(End::AllRunning);
        done.running = 30_000;
        assert_eq!(
            outcome(&done),
            "pods running: 30,000 of 30,000 (all after 645.4 s)"
        );
        assert!(mode(&done).starts_with("mode: paced at 20 pods/s (30 Deployments"));
        done.pace = Pace::AllAtOnce;
        assert!(mode(&done).starts_with("mode: unpaced (30 Deployments of 1,000 replicas"));
    }

    #[test]
    fn the_progress_line_has_every_count() {
        let c = Counts {
            total: 30_000,
            requested: 2_000,
            created: 1_990,
            bound: 1_900,
            running: 1_500,
        };
        assert_eq!(
            progress_line(Duration::from_secs(100), &c, Some(1_234), Some(1.5)),
            "  100 s: pods requested 2,000, created 1,990, bound 1,900, Running 1,500 of 30,000; \
             server RSS 1,234 MiB, CPU 1.50 cores"
        );
        assert!(progress_line(Duration::ZERO, &c, None, None).ends_with("server RSS -, CPU -"));
    }
}
