//! Geometric median by the smoothed Weiszfeld algorithm.
//!
//! Pillutla, Kakade, Harchaoui, "Robust Aggregation for Federated Learning", IEEE Transactions on
//! Signal Processing 2022 (RFA). Each iteration re-weights the points by α_i / max(ν, ‖z − x_i‖)
//! and takes their weighted mean. ν = 1e-6 by default as in RFA's code; ByzFL uses ν = 0.1 and only
//! 3 iterations, which behaves like the mean when updates are smaller than ν.

use crate::matrix::{row_dists_to, sq_dist_par, sq_norm_par, weighted_mean, Matrix};

/// Returns the estimate and the number of iterations run.
pub fn geometric_median(x: Matrix, w: &[f64], nu: f64, tol: f64, max_iter: usize) -> (Vec<f32>, usize) {
    let total: f64 = w.iter().sum();
    let alpha: Vec<f64> = w.iter().map(|v| v / total).collect();
    let mut z = weighted_mean(x, &alpha);
    let mut dists = row_dists_to(x, &z);
    let mut obj = smoothed_objective(&alpha, &dists, nu);
    let mut iters = 0;
    while iters < max_iter {
        iters += 1;
        let beta: Vec<f64> = alpha.iter().zip(&dists).map(|(a, d)| a / d.max(nu)).collect();
        let next = weighted_mean(x, &beta);
        let moved = sq_dist_par(&next, &z).sqrt();
        z = next;
        dists = row_dists_to(x, &z);
        let new_obj = smoothed_objective(&alpha, &dists, nu);
        // RFA's stop (relative change of the objective), and also a small step relative to the
        // nearest point: one huge outlier dominates the objective, whose relative change then
        // looks converged while z is still far from the honest points.
        let nearest = dists.iter().copied().fold(f64::INFINITY, f64::min);
        let scale = nearest.max(sq_norm_par(&z).sqrt()).max(nu);
        let converged = (obj - new_obj).abs() <= tol * new_obj.abs().max(f64::MIN_POSITIVE) && moved <= tol.sqrt() * scale;
        obj = new_obj;
        if converged {
            break;
        }
    }
    (z, iters)
}

/// Σ α_i g_ν(‖z − x_i‖) with the Huber-like smoothing g_ν(d) = d if d ≥ ν, else d²/(2ν) + ν/2.
fn smoothed_objective(alpha: &[f64], dists: &[f64], nu: f64) -> f64 {
    alpha
        .iter()
        .zip(dists)
        .map(|(a, &d)| a * if d >= nu { d } else { d * d / (2.0 * nu) + nu / 2.0 })
        .sum()
}
