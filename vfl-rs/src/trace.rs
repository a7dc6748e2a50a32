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

/// A coordinate-wise rule and, in the same pass, each row's share of it: `f` gets a column as
/// (value, row) pairs and returns the output and the positions `lo..hi` of the pairs (as `f` left
/// them) whose values the output averages; each of those rows gets 1/(hi − lo) of that column, and
/// a row's share is its part averaged over the columns. Columns are gathered block by block into a
/// transposed buffer, so every row is read sequentially, once; the shares are summed in block
/// order, so they are bit-identical whatever the thread count.
pub fn map_columns_traced<F>(x: Matrix, f: F) -> (Vec<f32>, Vec<f64>)
where
    F: Fn(&mut [(f32, u32)]) -> (f32, usize, usize) + Sync,
{
    let (n, d) = (x.n(), x.d());
    const BLOCK: usize = 256;
    let mut out = vec![0f32; d];
    let parts: Vec<Vec<f64>> = out
        .par_chunks_mut(BLOCK)
        .enumerate()
        .map(|(b, out_blk)| {
            let c0 = b * BLOCK;
            let len = out_blk.len();
            let mut buf = vec![(0f32, 0u32); len * n];
            for i in 0..n {
                let row = &x.row(i)[c0..c0 + len];
                for (j, &v) in row.iter().enumerate() {
                    buf[j * n + i] = (v, i as u32);
                }
            }
            let mut acc = vec![0f64; n];
            for (j, o) in out_blk.iter_mut().enumerate() {
                let col = &mut buf[j * n..(j + 1) * n];
                let (value, lo, hi) = f(col);
                *o = value;
                let each = 1.0 / (hi - lo).max(1) as f64;
                for p in &col[lo..hi] {
                    acc[p.1 as usize] += each;
                }
            }
            acc
        })
        .collect();
    let mut share = vec![0f64; n];
    for acc in &parts {
        share.iter_mut().zip(acc).for_each(|(s, a)| *s += a);
    }
    (out, share.into_iter().map(|s| s / d as f64).collect())
}

/// The total order of (value, row) pairs the traced kernels select by: IEEE total order on the
/// values (NaN above +inf), ties by row index.
pub fn by_value_then_row(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
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
