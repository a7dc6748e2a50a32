//! FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
//! Bootstrapping", NDSS 2021): the server trains on a small clean root data set each round and
//! trusts a client as far as its update points the same way as the server's.

use crate::matrix::{gram, row_norms, weighted_mean, Matrix, OwnedMatrix};

/// One round: trust TS_i = ReLU(cos(g_i, g_0)) against the server's update g_0; each update is
/// rescaled to g_0's norm; the aggregate is Σ TS_i·(‖g_0‖/‖g_i‖)·g_i / Σ TS_i (the paper's
/// unweighted form: the rescaling already equalises the clients). A zero or non-finite update
/// gets no trust. When no client is trusted the aggregate is 0. Returns the aggregate and the
/// trust scores.
pub fn fltrust(x: Matrix, server: &[f32]) -> (Vec<f32>, Vec<f64>) {
    let (n, d) = (x.n(), x.d());
    // the updates and g_0 as one matrix (row n is g_0): one blocked pass for every inner product
    let mut all = OwnedMatrix::zeros(n + 1, d);
    for i in 0..n {
        all.row_mut(i).copy_from_slice(x.row(i));
    }
    all.row_mut(n).copy_from_slice(server);
    let norms = row_norms(all.view());
    let rows: Vec<usize> = (0..=n).filter(|&i| norms[i].is_finite() && norms[i] > 0.0).collect();
    let g = gram(all.view(), &rows);
    let reference = norms[n];
    let trust: Vec<f64> = (0..n)
        .map(|i| {
            if !rows.contains(&i) || !rows.contains(&n) {
                return 0.0;
            }
            (g[i * (n + 1) + n] / (norms[i] * reference)).max(0.0)
        })
        .collect();
    let total: f64 = trust.iter().sum();
    if total <= 0.0 {
        return (vec![0.0; d], trust);
    }
    // Σ TS_i·(‖g_0‖/‖g_i‖)·g_i / Σ TS_i as a weighted sum of the rows
    let coeff: Vec<f64> = (0..n).map(|i| if trust[i] > 0.0 { trust[i] * reference / norms[i] } else { 0.0 }).collect();
    let scale: f64 = coeff.iter().sum::<f64>() / total;
    let mut out = weighted_mean(x, &coeff);
    out.iter_mut().for_each(|v| *v = (f64::from(*v) * scale) as f32);
    (out, trust)
}
