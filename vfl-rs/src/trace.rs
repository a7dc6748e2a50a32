//! What a defence did in one aggregation: the rows it selected, how many it clipped and at which
//! radius, and how much of the aggregate each of its input rows carries.
//!
//! The row shares make one influence measure for every rule: FedAvg gives row i its weight share
//! w_i/Σw, Krum gives the selected row all of it, the median and the trimmed mean give each row
//! the fraction of coordinates (and of each coordinate's window) it supplies, the geometric median
//! its final Weiszfeld weight, centered clipping its clipped coefficient. The orchestrator sums
//! the malicious rows' shares: a defence that acted holds them below their weight share.

use rayon::prelude::*;

use crate::matrix::{gather_columns, total_order_key, Matrix, GATHER_BLOCK};

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

/// What a traced coordinate-wise kernel says about one column: its output, and the window of
/// sorted positions `lo..hi` (IEEE total order, ties by row index) whose values it averages, with
/// the values at its two ends (`at_lo` at position lo, `at_hi` at position hi − 1).
pub struct Window {
    pub value: f32,
    pub lo: usize,
    pub hi: usize,
    pub at_lo: f32,
    pub at_hi: f32,
}

/// A coordinate-wise rule and, in the same pass, each row's share of it: `f` gets a column (in
/// row order, to read) and a scratch copy of it (to select or sort in place, as the untraced
/// kernel does, so the outputs agree to the bit) and says its `Window`; each row in the window
/// gets 1/(hi − lo) of that column, and a row's share is its part averaged over the columns.
/// Columns are gathered block by block into a transposed buffer, so every row is read
/// sequentially, once; the shares are summed in block order, so they are bit-identical whatever
/// the thread count.
pub fn map_columns_traced<F>(x: Matrix, f: F) -> (Vec<f32>, Vec<f64>)
where
    F: Fn(&[f32], &mut [f32]) -> Window + Sync,
{
    let (n, d) = (x.n(), x.d());
    let mut out = vec![0f32; d];
    let parts: Vec<Vec<f64>> = out
        .par_chunks_mut(GATHER_BLOCK)
        .enumerate()
        .map(|(b, out_blk)| {
            let buf = gather_columns(x, b * GATHER_BLOCK, out_blk.len());
            let mut scratch = vec![0f32; n];
            let mut acc = vec![0f64; n];
            for (j, o) in out_blk.iter_mut().enumerate() {
                let col = &buf[j * n..(j + 1) * n];
                scratch.copy_from_slice(col);
                let w = f(col, &mut scratch);
                *o = w.value;
                add_window(col, &w, &mut acc);
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

/// Add 1/(hi − lo) to each row of `col` whose sorted position (total order, ties by row index)
/// is in the window: the rows strictly between its end values, and those equal to an end value
/// whose position, counted in row order, falls inside. Values are compared by their total-order
/// integer keys (`f32::total_cmp`'s order), so the counting loops vectorise.
pub(crate) fn add_window(col: &[f32], w: &Window, acc: &mut [f64]) {
    let each = 1.0 / (w.hi - w.lo).max(1) as f64;
    if w.lo == 0 && w.hi == col.len() {
        acc.iter_mut().for_each(|a| *a += each);
        return;
    }
    let (k_lo, k_hi) = (order_key(w.at_lo), order_key(w.at_hi));
    let (mut below_lo, mut up_to_hi) = (0usize, 0usize); // values < the low end, values <= the high end
    for &v in col {
        let k = order_key(v);
        below_lo += usize::from(k < k_lo);
        up_to_hi += usize::from(k <= k_hi);
    }
    if below_lo == w.lo && up_to_hi == w.hi {
        // no tie straddles an end of the window (always so for distinct values): it holds exactly
        // the values from the low end to the high end
        for (a, &v) in acc.iter_mut().zip(col) {
            let k = order_key(v);
            *a += if k >= k_lo && k <= k_hi { each } else { 0.0 };
        }
        return;
    }
    // ties at an end: a value equal to it is inside by its position, counted in row order
    let (mut at_lo, mut at_hi) = (below_lo, col.iter().filter(|&&v| order_key(v) < k_hi).count());
    for (i, &v) in col.iter().enumerate() {
        let k = order_key(v);
        let inside = if k > k_lo && k < k_hi {
            true
        } else if k == k_lo {
            at_lo += 1;
            (w.lo..w.hi).contains(&(at_lo - 1))
        } else if k == k_hi {
            at_hi += 1;
            (w.lo..w.hi).contains(&(at_hi - 1))
        } else {
            false
        };
        if inside {
            acc[i] += each;
        }
    }
}

/// An integer whose order is `f32::total_cmp`'s.
#[inline]
fn order_key(v: f32) -> i32 {
    total_order_key(v.to_bits() as i32)
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
