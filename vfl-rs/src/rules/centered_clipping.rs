//! Centered clipping.
//!
//! Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021:
//! v ← v + Σ_i α_i · clip_τ(x_i − v), repeated `iters` times, where clip_τ(u) = u·min(1, τ/‖u‖)
//! and v starts from the previous round's aggregate (zero in the first round).
//!
//! The paper's τ (10, with τ/(1 − β) for momentum) is for stochastic gradients. Our updates are
//! model deltas, orders of magnitude smaller, so that τ clips nothing and the rule is the mean.
//! Without a τ, each round uses the median distance of its updates from the centre: half the
//! updates are clipped, and with f < n/2 that radius is set by honest updates.

use crate::matrix::{median_finite, row_dists_to, weighted_step, Matrix};
use crate::trace::{normalised, Trace};

/// Run the iterations in place on `center`; the trace holds the radius, the rows clipped in the
/// first iteration and each row's share of the movement (its coefficients summed over iterations).
///
/// With `stop_at_non_finite`, returns `None` and leaves `center` as it was when a row's first
/// distance is not finite, which is when the row or the centre holds a NaN or an infinity
/// (distances that overflow float32 are measured again in float64): the caller who must refuse
/// such rows looks for them then, instead of reading the matrix once more before the rule.
pub fn centered_clipping(
    x: Matrix,
    w: &[f64],
    center: &mut [f32],
    tau: Option<f64>,
    iters: usize,
    stop_at_non_finite: bool,
) -> Option<Trace> {
    let total: f64 = w.iter().sum();
    let mut radius = tau;
    let mut clipped = None;
    let mut moved = vec![0.0; x.n()];
    let mut dists = if iters > 0 || stop_at_non_finite { row_dists_to(x, center) } else { Vec::new() };
    if stop_at_non_finite && !dists.iter().all(|d| d.is_finite()) {
        return None;
    }
    for it in 0..iters {
        let tau = *radius.get_or_insert_with(|| median_finite(&dists));
        clipped.get_or_insert_with(|| dists.iter().filter(|&&d| d > tau).count());
        // v + Σ c_i (x_i − v) = (1 − Σ c_i)·v + Σ c_i x_i, with c_i = α_i·min(1, τ/‖x_i − v‖)
        let coef: Vec<f64> = w.iter().zip(&dists).map(|(wi, &d)| wi / total * if d > tau { tau / d } else { 1.0 }).collect();
        moved.iter_mut().zip(&coef).for_each(|(m, c)| *m += c);
        let keep = 1.0 - coef.iter().sum::<f64>();
        // the next iteration's distances in the same pass
        let step = weighted_step(x, &coef, Some((center, keep)), it + 1 < iters, None);
        center.copy_from_slice(&step.z);
        dists = step.dists.unwrap_or_default();
    }
    Some(Trace { share: normalised(&moved), clipped, radius, ..Trace::default() })
}
