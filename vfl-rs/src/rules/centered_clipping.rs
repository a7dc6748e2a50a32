//! Centered clipping.
//!
//! Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021:
//! v ← v + Σ_i α_i · clip_τ(x_i − v), repeated `iters` times, where clip_τ(u) = u·min(1, τ/‖u‖)
//! and v starts from the previous round's aggregate (zero in the first round).

use crate::matrix::{row_dists_to, weighted_sum, Matrix};

pub fn centered_clipping(x: Matrix, w: &[f64], center: &mut [f32], tau: f64, iters: usize) {
    let total: f64 = w.iter().sum();
    for _ in 0..iters {
        let dists = row_dists_to(x, center);
        // v + Σ c_i (x_i − v) = (1 − Σ c_i)·v + Σ c_i x_i, with c_i = α_i·min(1, τ/‖x_i − v‖)
        let coef: Vec<f64> = w.iter().zip(&dists).map(|(wi, &d)| wi / total * if d > tau { tau / d } else { 1.0 }).collect();
        let keep = 1.0 - coef.iter().sum::<f64>();
        let s = weighted_sum(x, &coef);
        for (v, si) in center.iter_mut().zip(&s) {
            *v = (keep * *v as f64 + *si as f64) as f32;
        }
    }
}
