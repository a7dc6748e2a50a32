//! Geometric median by the smoothed Weiszfeld algorithm.
//!
//! Pillutla, Kakade, Harchaoui, "Robust Aggregation for Federated Learning", IEEE Transactions on
//! Signal Processing 2022 (RFA). Each iteration re-weights the points by α_i / max(ν, ‖z − x_i‖)
//! and takes their weighted mean. ν = 1e-6 by default as in RFA's code; ByzFL uses ν = 0.1 and only
//! 3 iterations, which behaves like the mean when updates are smaller than ν.
//!
//! Weiszfeld's iteration crawls when the median is one of the points (a point, or several equal
//! points, holding much of the weight): each step shrinks the distance by a factor close to 1, so
//! the stop rule fires (or `max_iter` ends the loop) while the estimate is still visibly off. The
//! final estimate is therefore checked against the optimality condition of its nearest point
//! (Vardi & Zhang, "The multivariate L1-median and associated data depth", PNAS 2000): x_k is the
//! geometric median when ‖Σ_{x_i ≠ x_k} α_i (x_i − x_k)/‖x_i − x_k‖‖ ≤ Σ_{x_i = x_k} α_i (the
//! unique one when the inequality is strict), and is then returned exactly. Otherwise the last iterate is returned.

use rayon::prelude::*;

use crate::matrix::{mean_coefficients, sq_dist_f64_widest, sq_dist_par, sq_norm_par, weighted_step, Matrix, COL_BLOCK};

/// Returns the estimate, the number of iterations run and each row's share of the estimate
/// (its Weiszfeld weight α_i / max(ν, ‖x_i − z‖), normalised; all of it on a data point that is
/// the median).
///
/// With `stop_at_non_finite`, returns `None` when a row's distance to the weighted mean (the first
/// pass) is not finite, which is when some row holds a NaN or an infinity (the mean of finite rows
/// is finite, and distances that overflow float32 are measured again in float64): the caller who
/// must refuse such rows looks for them then, instead of reading the matrix once more before.
pub fn geometric_median(
    x: Matrix,
    w: &[f64],
    nu: f64,
    tol: f64,
    max_iter: usize,
    stop_at_non_finite: bool,
) -> Option<(Vec<f32>, usize, Vec<f64>)> {
    let alpha = mean_coefficients(w);
    // each mean and the rows' distances to it in one pass (and to one row, when asked)
    let step = |weights: &[f64], also_to: Option<usize>| {
        let step = weighted_step(x, &mean_coefficients(weights), None, true, also_to.map(|k| x.row(k)));
        (step.z, step.dists.unwrap_or_default(), also_to.zip(step.also))
    };
    let (mut z, mut dists, _) = step(&alpha, None);
    if stop_at_non_finite && !dists.iter().all(|d| d.is_finite()) {
        return None;
    }
    let mut obj = smoothed_objective(&alpha, &dists, nu);
    let mut iters = 0;
    // Each step also measures the rows against the row nearest the estimate before it: most often
    // still the nearest after the last step, whose objective the final check needs (a read less).
    let mut to_nearest = None;
    while iters < max_iter {
        iters += 1;
        let beta: Vec<f64> = alpha.iter().zip(&dists).map(|(a, d)| a / d.max(nu)).collect();
        let (next, next_dists, measured) = step(&beta, nearest(&dists));
        to_nearest = measured;
        let moved = sq_dist_par(&next, &z).sqrt();
        (z, dists) = (next, next_dists);
        let new_obj = smoothed_objective(&alpha, &dists, nu);
        // RFA's stop (relative change of the objective), and also a small step relative to the
        // nearest point: one huge outlier dominates the objective, whose relative change then
        // looks converged while z is still far from the honest points.
        let nearest_dist = dists.iter().copied().fold(f64::INFINITY, f64::min);
        let scale = nearest_dist.max(sq_norm_par(&z).sqrt()).max(nu);
        let converged = (obj - new_obj).abs() <= tol * new_obj.abs().max(f64::MIN_POSITIVE) && moved <= tol.sqrt() * scale;
        obj = new_obj;
        if converged {
            break;
        }
    }
    // A crawl towards a heavy point looks converged, or runs out of iterations: if the nearest
    // point is optimal, it is the answer.
    let closest = nearest(&dists);
    let at_iterate: f64 = alpha.iter().zip(&dists).map(|(a, d)| a * d).sum();
    let measured = to_nearest.filter(|(k, _)| Some(*k) == closest).map(|(_, d)| d);
    if let Some(k) = closest.filter(|&k| is_geometric_median(x, &alpha, k, nu, at_iterate, measured.as_deref())) {
        z = x.row(k).to_vec();
        let mut share = vec![0.0; x.n()];
        share[k] = 1.0;
        return Some((z, iters, share));
    }
    let beta: Vec<f64> = alpha.iter().zip(&dists).map(|(a, d)| if d.is_finite() { a / d.max(nu) } else { 0.0 }).collect();
    let share = crate::trace::normalised(&beta).unwrap_or(alpha);
    Some((z, iters, share))
}

/// Vardi & Zhang's condition: is row `k` a minimiser of Σ α_i ‖z − x_i‖? Only asked when every
/// other distinct row is at least ν away, so that the smoothed objective's minimiser is within ν
/// of row `k` too (it sits at ν·‖pull‖/weight from it). `at_iterate` is the objective at the last
/// iterate (from `row_dists_to`'s float32 lanes, through `weighted_step`); `measured`, when known,
/// every row's distance to row `k` measured the same way.
fn is_geometric_median(x: Matrix, alpha: &[f64], k: usize, nu: f64, at_iterate: f64, measured: Option<&[f64]>) -> bool {
    // "Clearly" below: row_dists_to sums a squared distance per block of COL_BLOCK columns in 8
    // float32 lanes of m = ⌈min(d, COL_BLOCK)/8⌉ terms each, which miscounts a block by at most
    // (m + 4)·2^-24 of itself (each add's rounding, and the term's own); the blocks' float64 sum
    // adds less than one more 2^-24 (for d < 10^12), and the square root no more.
    let error = (x.d().min(COL_BLOCK).div_ceil(8) + 5) as f64 * f64::from(f32::EPSILON / 2.0);
    // A minimiser's objective is at most the iterate's (at most at_iterate / (1 − error)), so a
    // row whose objective is clearly above it is not one: ruled out from the distances measured
    // in the last step when they are at hand, else from the float64 ones below (the common case:
    // the median lies inside the cloud), without the pull's pass.
    if let Some(measured) = measured {
        let objective_k: f64 = alpha.iter().zip(measured).map(|(a, d)| a * d).sum();
        if objective_k * (1.0 - error) * (1.0 - error) > at_iterate {
            return false;
        }
    }
    let xk = x.row(k);
    // In float64 throughout: at equality the two sides must compare exactly.
    let dists: Vec<f64> = (0..x.n()).into_par_iter().map(|i| sq_dist_f64_widest(x.row(i), xk).sqrt()).collect();
    if dists.iter().any(|&d| d > 0.0 && d < nu) {
        return false;
    }
    let objective_k: f64 = alpha.iter().zip(&dists).map(|(a, d)| a * d).sum();
    if objective_k * (1.0 - error) > at_iterate {
        return false;
    }
    let at_k: f64 = alpha.iter().zip(&dists).filter(|(_, &d)| d == 0.0).map(|(a, _)| a).sum();
    let pull: Vec<f64> = alpha.iter().zip(&dists).map(|(a, &d)| if d > 0.0 { a / d } else { 0.0 }).collect();
    // ‖Σ pull_i (x_i − x_k)‖ in float64, per column block in a fixed order (thread-count invariant).
    let d = x.d();
    let blocks: Vec<f64> = (0..d.div_ceil(COL_BLOCK))
        .into_par_iter()
        .map(|b| {
            let (c0, c1) = (b * COL_BLOCK, ((b + 1) * COL_BLOCK).min(d));
            let mut acc = vec![0f64; c1 - c0];
            for (i, &p) in pull.iter().enumerate() {
                if p == 0.0 {
                    continue;
                }
                for ((a, &v), &vk) in acc.iter_mut().zip(&x.row(i)[c0..c1]).zip(&xk[c0..c1]) {
                    *a += p * (v as f64 - vk as f64);
                }
            }
            acc.iter().map(|a| a * a).sum()
        })
        .collect();
    // Strictly: at equality (two equal halves) every point between them is a median and the
    // iterate is one; picking an end would turn float rounding into a jump.
    blocks.iter().sum::<f64>().sqrt() < at_k * (1.0 - 1e-9)
}

/// The row nearest the estimate, by its distances to it.
fn nearest(dists: &[f64]) -> Option<usize> {
    (0..dists.len()).min_by(|&a, &b| dists[a].total_cmp(&dists[b]))
}

/// Σ α_i g_ν(‖z − x_i‖) with the Huber-like smoothing g_ν(d) = d if d ≥ ν, else d²/(2ν) + ν/2.
fn smoothed_objective(alpha: &[f64], dists: &[f64], nu: f64) -> f64 {
    alpha.iter().zip(dists).map(|(a, &d)| a * if d >= nu { d } else { d * d / (2.0 * nu) + nu / 2.0 }).sum()
}
