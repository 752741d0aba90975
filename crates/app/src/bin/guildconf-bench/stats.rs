//! Statistics over timed samples.

use std::time::Duration;

/// guildconf's rate over a baseline's, as the median over rounds of the
/// baseline's time ÷ ours (each round runs every contender once, the same
/// number of writes, interleaved), so one noisy round cannot swing it.
pub fn median_ratio(rounds: &[Vec<Duration>], ours: usize, base: usize) -> f64 {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|t| Some(t.get(base)?.as_secs_f64() / t.get(ours)?.as_secs_f64().max(1e-9)))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => ratios[n / 2],
        _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    }
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(i).copied().unwrap_or(f64::NAN)
}
