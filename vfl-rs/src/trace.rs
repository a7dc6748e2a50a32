//! What a defence did in one aggregation: the rows it selected, how many it clipped and at which
//! radius, and how much of the aggregate each of its input rows carries.
//!
//! The row shares make one influence measure for every rule: FedAvg gives row i its weight share
//! w_i/Σw, Krum gives the selected row all of it, the median and the trimmed mean give each row
//! the fraction of coordinates (and of each coordinate's window) it supplies, the geometric median
//! its final Weiszfeld weight, centered clipping its clipped coefficient. The orchestrator sums
//! the malicious rows' shares: a defence that acted holds them below their weight share.

use rayon::prelude::*;

use crate::matrix::Matrix;

/// One aggregation's trace; `None` where the component has nothing to say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Each input row's share of the aggregate (non-negative, summing to 1).
    pub share: Option<Vec<f64>>,
    /// The rows a selection rule kept (Krum, MultiKrum, Bulyan), in the order chosen.
    pub selected: Option<Vec<usize>>,
    /// How many rows were clipped.
    pub clipped: Option<usize>,
    /// The clipping radius used.
    pub radius: Option<f64>,
}

/// Each row's share of a coordinate-wise rule whose output, per column, is the mean of the
/// values at sorted positions `window(sorted column)` = `lo..hi`: every column gives each of its
/// window's rows 1/(hi − lo), and the result is averaged over the columns (ties by row index).
pub fn window_shares<F>(x: Matrix, window: F) -> Vec<f64>
where
    F: Fn(&[f32]) -> (usize, usize) + Sync,
{
    let (n, d) = (x.n(), x.d());
    const BLOCK: usize = 256;
    let blocks = d.div_ceil(BLOCK);
    let sum = (0..blocks)
        .into_par_iter()
        .map(|b| {
            let c0 = b * BLOCK;
            let len = BLOCK.min(d - c0);
            let mut acc = vec![0f64; n];
            let mut pairs: Vec<(f32, usize)> = Vec::with_capacity(n);
            let mut sorted = vec![0f32; n];
            for j in c0..c0 + len {
                pairs.clear();
                pairs.extend((0..n).map(|i| (x.row(i)[j], i)));
                pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for (s, p) in sorted.iter_mut().zip(&pairs) {
                    *s = p.0;
                }
                let (lo, hi) = window(&sorted);
                let each = 1.0 / (hi - lo).max(1) as f64;
                for p in &pairs[lo..hi] {
                    acc[p.1] += each;
                }
            }
            acc
        })
        .reduce(
            || vec![0f64; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sum.into_iter().map(|s| s / d as f64).collect()
}

/// `w` scaled to sum to 1 (`None` when it sums to nothing).
pub fn normalised(w: &[f64]) -> Option<Vec<f64>> {
    let total: f64 = w.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| w.iter().map(|v| v / total).collect())
}

/// The share of `n` rows when only the rows `chosen` carry the weights `w` (of all n rows).
pub fn selection_share(n: usize, chosen: &[usize], w: &[f64]) -> Option<Vec<f64>> {
    let mut s = vec![0.0; n];
    for &i in chosen {
        s[i] = w[i];
    }
    if s.iter().sum::<f64>() <= 0.0 {
        chosen.iter().for_each(|&i| s[i] = 1.0); // zero-weight rows only: averaged equally
    }
    normalised(&s)
}

/// Shares of a pre-aggregator's output rows traced back to its input rows: output row g is
/// Σ c·x_j over the (j, c) of `groups[g]`, with the c of each group summing to 1.
pub fn share_through(groups: &[Vec<(usize, f64)>], out_share: &[f64], n_in: usize) -> Vec<f64> {
    let mut s = vec![0.0; n_in];
    for (g, group) in groups.iter().enumerate() {
        for &(j, c) in group {
            s[j] += out_share[g] * c;
        }
    }
    s
}
