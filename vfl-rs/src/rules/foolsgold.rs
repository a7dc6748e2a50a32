//! FoolsGold (Fung, Yoon, Beschastnikh, "The Limitations of Federated Learning in Sybil
//! Settings", RAID 2020): clients whose update histories point the same way are sybils.

use std::collections::HashMap;

use crate::matrix::{finite_rows, gram, weighted_mean, Matrix, OwnedMatrix};

/// Each client's summed updates so far, keyed by client id: the state FoolsGold keeps across
/// rounds (in the orchestrator's strategy).
pub type History = HashMap<usize, Vec<f32>>;

/// One round of FoolsGold, as the authors' code computes it: add each update to its client's
/// history; the cosine similarities of the round's histories, pardoned (a client's similarity
/// to a more suspicious one is scaled down by the ratio of their largest similarities), give
/// α_i = 1 − max_j cs_ij, rescaled so the largest is 1 (then 0.99), passed through the logit
/// κ·(ln(α/(1 − α)) + 0.5) and clipped to [0, 1]. The aggregate is the updates' mean weighted by
/// α_i·w_i (the authors sum the α-weighted updates and let the learning rate absorb the scale; a
/// mean keeps FedAvg's step when no client looks like a sybil). When every α is 0 (every client
/// has a twin) the aggregate is 0: nobody is trusted. Updates with NaN/Inf get α = 0 and are not
/// remembered. Returns the aggregate and each row's weight α_i·w_i (not normalised).
pub fn foolsgold(x: Matrix, w: &[f64], ids: &[usize], kappa: f64, history: &mut History) -> (Vec<f32>, Vec<f64>) {
    let (n, d) = (x.n(), x.d());
    let finite = finite_rows(x);
    for &r in &finite {
        let h = history.entry(ids[r]).or_insert_with(|| vec![0.0; d]);
        if h.len() != d {
            *h = vec![0.0; d]; // a model of another size: start again
        }
        h.iter_mut().zip(x.row(r)).for_each(|(a, &b)| *a += b);
    }
    let mut hist = OwnedMatrix::zeros(n, d);
    for &r in &finite {
        hist.row_mut(r).copy_from_slice(&history[&ids[r]]);
    }
    let g = gram(hist.view(), &finite);
    let norm = |i: usize| g[i * n + i].sqrt();
    // cosine similarities, 0 on the diagonal (the authors subtract the identity)
    let k = finite.len();
    let mut cs = vec![0.0f64; k * k];
    for (a, &i) in finite.iter().enumerate() {
        for (b, &j) in finite.iter().enumerate() {
            if a != b {
                let denom = norm(i) * norm(j);
                cs[a * k + b] = if denom > 0.0 { g[i * n + j] / denom } else { 0.0 };
            }
        }
    }
    // the largest similarity of a row, its own 0 on the diagonal included (as the authors' max)
    let row_max = |cs: &[f64], a: usize| (0..k).map(|b| cs[a * k + b]).fold(f64::NEG_INFINITY, f64::max);
    let most: Vec<f64> = (0..k).map(|a| row_max(&cs, a)).collect();
    for a in 0..k {
        for b in 0..k {
            if a != b && most[a] < most[b] {
                cs[a * k + b] *= most[a] / most[b];
            }
        }
    }
    // (a similarity within 1e-9 of 1 is the same direction: computed cosines of equal vectors
    // round to 1 − 2e-16, which would otherwise leave a twin a sliver of weight)
    let dissimilar = |c: f64| if c > 1.0 - 1e-9 { 0.0 } else { (1.0 - c).clamp(0.0, 1.0) };
    let mut alpha: Vec<f64> = (0..k).map(|a| dissimilar(row_max(&cs, a))).collect();
    let top = alpha.iter().copied().fold(0.0, f64::max);
    let mut weight = vec![0.0; n];
    if top > 0.0 {
        for a in alpha.iter_mut() {
            *a /= top;
            if *a == 1.0 {
                *a = 0.99;
            }
            let logit = kappa * ((*a / (1.0 - *a)).ln() + 0.5);
            *a = if logit.is_nan() || logit < 0.0 { 0.0 } else { logit.min(1.0) };
        }
        for (a, &r) in finite.iter().enumerate() {
            weight[r] = alpha[a] * w[r];
        }
    }
    let out = if weight.iter().sum::<f64>() > 0.0 { weighted_mean(x, &weight) } else { vec![0.0; d] };
    (out, weight)
}
