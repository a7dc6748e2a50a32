//! What a defence did in one aggregation: the rows it selected, how many it clipped and at which
//! radius, and how much of the aggregate each of its input rows carries.
//!
//! The row shares make one influence measure for every rule: FedAvg gives row i its weight share
//! w_i/Σw, Krum gives the selected row all of it, the median and the trimmed mean give each row
//! the fraction of coordinates (and of each coordinate's window) it supplies, the geometric median
//! its final Weiszfeld weight, centered clipping its clipped coefficient. The orchestrator sums
//! the malicious rows' shares: a defence that acted holds them below their weight share.

use rayon::prelude::*;

use crate::matrix::{gather_columns, gather_columns_summed, total_order_key, Matrix, GATHER_BLOCK};

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
    /// What the caller asked for in `RoundInputs::summed`, computed in the rule's own read of
    /// its input (`None` where the rule does not read it that way: the caller's own pass then).
    pub summed: Option<Summed>,
}

/// A weighted sum of the input rows, `Σ_i c_i x_i` (float64 per column, rows in order: the bits
/// of `matrix::sums_and_norms`), and every row's L2 norm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summed {
    pub sum: Vec<f32>,
    pub norms: Vec<f64>,
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
    let (out, share, _) = map_columns_traced_summed(x, None, f);
    (out, share)
}

/// `map_columns_traced`, and with `summed` (coefficients, one per row) also their weighted sum
/// of the rows and every row's norm, in the same read of the matrix.
pub fn map_columns_traced_summed<F>(x: Matrix, summed: Option<&[f64]>, f: F) -> (Vec<f32>, Vec<f64>, Option<Summed>)
where
    F: Fn(&[f32], &mut [f32]) -> Window + Sync,
{
    let n = x.n();
    traced_blocks(x, summed, |buf, out_blk| {
        let mut scratch = vec![0f32; n];
        let mut counter = ShareCounter::new(n);
        for (j, o) in out_blk.iter_mut().enumerate() {
            let col = &buf[j * n..(j + 1) * n];
            scratch.copy_from_slice(col);
            let w = f(col, &mut scratch);
            *o = w.value;
            counter.add(col, &w);
        }
        counter
    })
}

/// The coordinate-wise median of more rows than the sorting networks take, and each row's share
/// of it, in one read (with the books of `summed`). Each column becomes 64-bit keys, the value's
/// total-order key above its row index, so one selection on integers finds the middle rows
/// themselves, ties by row index as `Window` orders them: no copy of the column and no counting
/// pass. The values are the untraced kernel's to the bit (the same order, the same average).
pub(crate) fn median_columns_traced(x: Matrix, summed: Option<&[f64]>) -> (Vec<f32>, Vec<f64>, Option<Summed>) {
    let n = x.n();
    debug_assert!(n as u64 <= 1 << 32, "row indices fit below the keys");
    let k = n / 2;
    traced_blocks(x, summed, |buf, out_blk| {
        let mut keys = vec![0u64; n];
        let mut counter = ShareCounter::new(n);
        counter.claim(if n % 2 == 1 { 1 } else { 2 });
        let counts = counter.counts();
        for (j, o) in out_blk.iter_mut().enumerate() {
            for (key, (i, &v)) in keys.iter_mut().zip(buf[j * n..(j + 1) * n].iter().enumerate()) {
                *key = row_key(v, i);
            }
            let (below, mid, _) = keys.select_nth_unstable(k);
            let mid = *mid;
            let m = key_value(mid);
            counts[key_row(mid)] += 1;
            *o = if n % 2 == 1 {
                m
            } else {
                let below = *below.iter().max().expect("n > 1 rows");
                counts[key_row(below)] += 1;
                ((key_value(below) as f64 + m as f64) / 2.0) as f32
            };
        }
        counter
    })
}

/// The frame of a traced coordinate-wise kernel: the columns gathered block by block (with the
/// books of `summed` kept in the same read), `block` filling each block's outputs from its
/// transposed buffer and counting the rows' shares, and the blocks' parts joined in order.
fn traced_blocks<F>(x: Matrix, summed: Option<&[f64]>, block: F) -> (Vec<f32>, Vec<f64>, Option<Summed>)
where
    F: Fn(&[f32], &mut [f32]) -> ShareCounter + Sync,
{
    let (n, d) = (x.n(), x.d());
    let mut out = vec![0f32; d];
    // per block: the shares' parts, and the sum's columns with each row's squares over them
    let parts: Vec<(Vec<f64>, Option<Summed>)> = out
        .par_chunks_mut(GATHER_BLOCK)
        .enumerate()
        .map(|(b, out_blk)| {
            let c0 = b * GATHER_BLOCK;
            let (buf, block_sum) = match summed {
                Some(c) => {
                    let (buf, sum, squares) = gather_columns_summed(x, c0, out_blk.len(), c);
                    (buf, Some(Summed { sum, norms: squares }))
                }
                None => (gather_columns(x, c0, out_blk.len()), None),
            };
            (block(&buf, out_blk).finish(), block_sum)
        })
        .collect();
    let (share, summed) = join_blocks(parts, n, d, summed.is_some());
    (out, share, summed)
}

/// A value and its row as one integer ordered as `f32::total_cmp`, ties by row index.
#[inline(always)]
fn row_key(v: f32, row: usize) -> u64 {
    // the total-order key with its sign bit flipped orders as an unsigned integer
    ((order_key(v) as u32 ^ 0x8000_0000) as u64) << 32 | row as u64
}

#[inline(always)]
fn key_value(key: u64) -> f32 {
    f32::from_bits(total_order_key(((key >> 32) as u32 ^ 0x8000_0000) as i32) as u32)
}

#[inline(always)]
fn key_row(key: u64) -> usize {
    (key & 0xFFFF_FFFF) as usize
}

/// The blocks' parts joined in block order (bit-identical whatever the thread count): each
/// row's share averaged over the `d` columns, and the sum's columns with each row's norm.
pub(crate) fn join_blocks(parts: Vec<(Vec<f64>, Option<Summed>)>, n: usize, d: usize, summed: bool) -> (Vec<f64>, Option<Summed>) {
    let mut share = vec![0f64; n];
    let mut total = summed.then(|| Summed { sum: Vec::with_capacity(d), norms: vec![0f64; n] });
    for (acc, block_sum) in parts {
        share.iter_mut().zip(&acc).for_each(|(s, a)| *s += a);
        if let (Some(t), Some(block)) = (total.as_mut(), block_sum) {
            t.sum.extend(block.sum);
            t.norms.iter_mut().zip(&block.norms).for_each(|(t, s)| *t += s);
        }
    }
    if let Some(t) = total.as_mut() {
        t.norms.iter_mut().for_each(|v| *v = v.sqrt());
    }
    (share.into_iter().map(|s| s / d as f64).collect(), total)
}

/// Each row's part of a block of columns' windows: a row in a column's window of `size` values
/// gets 1/size of that column. The windows of a block mostly have one size (the median's, the
/// trimmed mean's), so their rows are counted in integers (exact, and 16 to a vector) and
/// scaled once at the end; a window of another size adds its part in float64 directly.
pub(crate) struct ShareCounter {
    counts: Vec<u32>,
    size: usize,
    other: Vec<f64>,
}

impl ShareCounter {
    pub(crate) fn new(n: usize) -> Self {
        ShareCounter { counts: vec![0; n], size: 0, other: vec![0.0; n] }
    }

    /// Count the rows of `col` whose sorted position (total order, ties by row index) is in the
    /// window: the rows strictly between its end values, and those equal to an end value whose
    /// position, counted in row order, falls inside.
    pub(crate) fn add(&mut self, col: &[f32], w: &Window) {
        let size = (w.hi - w.lo).max(1);
        if !self.claim(size) {
            let mark = &mut |i: usize| self.other[i] += 1.0 / size as f64;
            return mark_window(col, w, mark);
        }
        if w.lo == 0 && w.hi == col.len() {
            self.counts.iter_mut().for_each(|c| *c += 1);
            return;
        }
        let (k_lo, k_hi) = (order_key(w.at_lo), order_key(w.at_hi));
        // in one pass: the values between the ends counted in, and the values below the low end
        // and up to the high end, which say whether that was right
        let (below_lo, up_to_hi) = count_between_widest(&mut self.counts, col, k_lo, k_hi);
        if below_lo == w.lo && up_to_hi == w.hi {
            return; // no tie straddles an end of the window (always so for distinct values)
        }
        // a tie straddles an end: take the count back (exact in integers) and count by position
        for (c, &v) in self.counts.iter_mut().zip(col) {
            let k = order_key(v);
            *c -= u32::from(k >= k_lo && k <= k_hi);
        }
        let counts = &mut self.counts;
        mark_window(col, w, &mut |i| counts[i] += 1);
    }

    /// Whether windows of `size` values are counted in integers: the first size seen is.
    pub(crate) fn claim(&mut self, size: usize) -> bool {
        if self.size == 0 {
            self.size = size;
        }
        size == self.size
    }

    /// Each row's count of the windows of the claimed size that hold it (for callers that count
    /// several columns at once).
    pub(crate) fn counts(&mut self) -> &mut [u32] {
        &mut self.counts
    }

    /// Each row's part, summed over the columns added.
    pub(crate) fn finish(self) -> Vec<f64> {
        let each = 1.0 / self.size.max(1) as f64;
        self.counts.iter().zip(&self.other).map(|(&c, &o)| c as f64 * each + o).collect()
    }
}

/// `counts[i] += 1` for each value of `col` between the keys `k_lo..=k_hi`; returns how many
/// values are below `k_lo` and how many are at most `k_hi`.
#[inline(always)]
fn count_between(counts: &mut [u32], col: &[f32], k_lo: i32, k_hi: i32) -> (usize, usize) {
    let (mut below_lo, mut up_to_hi) = (0u32, 0u32);
    for (c, &v) in counts.iter_mut().zip(col) {
        let k = order_key(v);
        below_lo += u32::from(k < k_lo);
        up_to_hi += u32::from(k <= k_hi);
        *c += u32::from(k >= k_lo && k <= k_hi);
    }
    (below_lo as usize, up_to_hi as usize)
}

widest_vectors!(
    fn count_between_widest(counts: &mut [u32], col: &[f32], k_lo: i32, k_hi: i32) -> (usize, usize)
        = count_between, avx512 = count_between_avx512, avx2 = count_between_avx2
);

/// Call `mark(i)` for each row of `col` in the window, placing the values equal to an end value
/// by their position counted in row order.
fn mark_window(col: &[f32], w: &Window, mark: &mut dyn FnMut(usize)) {
    if w.lo == 0 && w.hi == col.len() {
        (0..col.len()).for_each(mark);
        return;
    }
    let (k_lo, k_hi) = (order_key(w.at_lo), order_key(w.at_hi));
    let below_lo = col.iter().filter(|&&v| order_key(v) < k_lo).count();
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
            mark(i);
        }
    }
}

/// An integer whose order is `f32::total_cmp`'s.
#[inline(always)]
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
