//! Deciding whether a step was sustainable.

/// What the lag samples of a step say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub growth_per_sec: f64,
    pub mean_lag: f64,
    pub max_lag: i64,
    pub sustainable: bool,
}

/// Lag growth (messages per second) below which a step counts as flat at any rate: batching
/// makes the lag of a few hundred messages a second saw-tooth by about this much.
pub(super) const LAG_GROWTH_FLOOR: f64 = 25.0;
/// The same for orders in flight (orders per second).
pub(super) const IN_FLIGHT_GROWTH_FLOOR: f64 = 3.0;

/// Whether a backlog sampled over a step stayed flat: over the step's second half it grows by
/// less than 5% of the offered rate (or `floor`) and holds less than two seconds of traffic on
/// average.
///
/// A step is sustainable when two backlogs stay flat: the consumer lag the broker sees, and
/// the orders in flight (scheduled, not yet ended). The second catches what the first cannot:
/// events waiting in an outbox, or a sender falling behind its schedule.
pub fn verdict(samples: &[(f64, i64)], offered_per_sec: f64, floor: f64) -> Verdict {
    let end = samples.last().map_or(0.0, |s| s.0);
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= end / 2.0)
        .map(|(t, l)| (*t, *l as f64))
        .collect();
    let n = half.len() as f64;
    let max_lag = samples.iter().map(|s| s.1).max().unwrap_or(0);
    if half.len() < 2 {
        return Verdict {
            growth_per_sec: 0.0,
            mean_lag: half.first().map_or(0.0, |s| s.1),
            max_lag,
            sustainable: false,
        };
    }
    let mean_t = half.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_lag = half.iter().map(|s| s.1).sum::<f64>() / n;
    let covariance: f64 = half.iter().map(|s| (s.0 - mean_t) * (s.1 - mean_lag)).sum();
    let variance: f64 = half.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    let growth_per_sec = if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    };
    Verdict {
        growth_per_sec,
        mean_lag,
        max_lag,
        sustainable: growth_per_sec <= (0.05 * offered_per_sec).max(floor)
            && mean_lag <= 2.0 * offered_per_sec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn samples(f: impl Fn(f64) -> i64) -> Vec<(f64, i64)> {
        (0..40)
            .map(|i| (i as f64 * 0.5, f(i as f64 * 0.5)))
            .collect()
    }

    #[test]
    pub(super) fn a_flat_noisy_lag_is_sustainable() {
        let v = verdict(
            &samples(|t| 200 + ((t * 7.0) as i64 % 5) * 40),
            1000.0,
            LAG_GROWTH_FLOOR,
        );
        assert!(v.sustainable, "{v:?}");
        assert!(v.growth_per_sec.abs() < 50.0, "{v:?}");
    }

    #[test]
    pub(super) fn a_growing_lag_is_not() {
        // 300 msgs/s of growth against 1000 offered: falling behind by 30%.
        let v = verdict(&samples(|t| (t * 300.0) as i64), 1000.0, LAG_GROWTH_FLOOR);
        assert!(!v.sustainable, "{v:?}");
        assert!((v.growth_per_sec - 300.0).abs() < 1.0, "{v:?}");
    }

    #[test]
    pub(super) fn a_flat_but_deep_backlog_is_not() {
        // Flat at five seconds' worth of traffic: the step started behind and never caught up.
        let v = verdict(&samples(|_| 5000), 1000.0, LAG_GROWTH_FLOOR);
        assert!(!v.sustainable, "{v:?}");
    }

    #[test]
    pub(super) fn too_few_samples_decide_nothing_good() {
        assert!(!verdict(&[(0.0, 0)], 1000.0, LAG_GROWTH_FLOOR).sustainable);
        assert!(!verdict(&[], 1000.0, LAG_GROWTH_FLOOR).sustainable);
    }
}
