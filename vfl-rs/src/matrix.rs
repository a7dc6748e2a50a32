//! The `n × d` update matrix and the kernels every rule shares.
//!
//! Determinism: every parallel reduction splits the work along fixed column blocks (sizes that
//! depend on `d` only, never on the thread count) and combines the partial results in block order,
//! so results are bit-identical whatever the size of the rayon pool.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::error::{Result, VflError};

/// Columns per parallel block for column-wise kernels (mean, median, trimmed mean).
pub const COL_BLOCK: usize = 2048;
/// Columns per block for pairwise-distance kernels: `n` row slices of this width stay in cache.
const DIST_BLOCK: usize = 1024;
/// Distance blocks summed sequentially inside one parallel task.
const DIST_GROUP: usize = 16;

/// A borrowed, row-major `n × d` matrix of float32 updates (one row per client).
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    data: &'a [f32],
    n: usize,
    d: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(data: &'a [f32], n: usize, d: usize) -> Result<Self> {
        if n == 0 {
            return Err(VflError::expected("the update matrix", "at least one row (client)", "0 rows"));
        }
        if d == 0 {
            return Err(VflError::expected("the update matrix", "at least one column (parameter)", "0 columns"));
        }
        if data.len() != n * d {
            return Err(VflError::expected("the update matrix buffer", format!("{} values ({n} × {d})", n * d), data.len()));
        }
        Ok(Matrix { data, n, d })
    }

    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    #[inline]
    pub fn d(&self) -> usize {
        self.d
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    pub fn to_owned(&self) -> OwnedMatrix {
        OwnedMatrix { data: self.data.to_vec(), n: self.n, d: self.d }
    }

    /// The rows listed in `idx`, copied in that order.
    /// The listed rows restricted to the listed columns.
    pub fn select_columns(&self, rows: &[usize], cols: &[usize]) -> OwnedMatrix {
        let mut data = Vec::with_capacity(rows.len() * cols.len());
        for &i in rows {
            let row = self.row(i);
            data.extend(cols.iter().map(|&j| row[j]));
        }
        OwnedMatrix { data, n: rows.len(), d: cols.len() }
    }

    pub fn select_rows(&self, idx: &[usize]) -> OwnedMatrix {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        OwnedMatrix { data, n: idx.len(), d: self.d }
    }

    /// The first non-finite value as `(row, column, value)`, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        // Scan in large chunks with a branch-free test (it vectorises; a per-element parallel
        // search does not), then find the exact position inside the first bad chunk.
        const CHUNK: usize = 1 << 16;
        let bad = |c: &[f32]| c.iter().fold(false, |acc, v| acc | !v.is_finite());
        let chunk = self.data.par_chunks(CHUNK).position_first(bad)?;
        let start = chunk * CHUNK;
        let pos = start + self.data[start..].iter().position(|v| !v.is_finite())?;
        Some((pos / self.d, pos % self.d, self.data[pos]))
    }
}

/// An owned `n × d` matrix, for rules and attacks that build new rows.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedMatrix {
    pub data: Vec<f32>,
    pub n: usize,
    pub d: usize,
}

impl OwnedMatrix {
    pub fn zeros(n: usize, d: usize) -> Self {
        OwnedMatrix { data: vec![0.0; n * d], n, d }
    }

    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        if rows.is_empty() {
            return Err(VflError::expected("the update matrix", "at least one row (client)", "0 rows"));
        }
        let d = rows.first().map_or(0, |r| r.len());
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(VflError::expected(format!("row {i}"), format!("{d} values"), r.len()));
        }
        Ok(OwnedMatrix { data: rows.concat(), n: rows.len(), d })
    }

    pub fn view(&self) -> Matrix<'_> {
        Matrix { data: &self.data, n: self.n, d: self.d }
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.d..(i + 1) * self.d]
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}

/// Sum of squared differences of two equal-length slices, 8 lanes wide so it vectorises.
#[inline(always)]
pub fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f32; 8];
    let full = a.len() - a.len() % 8;
    for (xa, xb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for k in 0..8 {
            let t = xa[k] - xb[k];
            lanes[k] += t * t;
        }
    }
    finish_sq_dist(&lanes, a, b, full)
}

/// `sq_dist` of [`DIST_ROWS`] rows to one vector `b`, to the bit: the rows' lane sums are
/// independent chains of additions, so the adds of one overlap the others' instead of waiting.
#[inline(always)]
fn sq_dists_to(a: [&[f32]; DIST_ROWS], b: &[f32]) -> [f64; DIST_ROWS] {
    let full = b.len() - b.len() % 8;
    // named accumulators (not an array of them), so that they stay in registers
    let (mut l0, mut l1, mut l2, mut l3) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
    let chunks = a[0][..full]
        .chunks_exact(8)
        .zip(a[1][..full].chunks_exact(8))
        .zip(a[2][..full].chunks_exact(8).zip(a[3][..full].chunks_exact(8)))
        .zip(b[..full].chunks_exact(8));
    for (((a0, a1), (a2, a3)), xb) in chunks {
        for k in 0..8 {
            let (t0, t1, t2, t3) = (a0[k] - xb[k], a1[k] - xb[k], a2[k] - xb[k], a3[k] - xb[k]);
            l0[k] += t0 * t0;
            l1[k] += t1 * t1;
            l2[k] += t2 * t2;
            l3[k] += t3 * t3;
        }
    }
    let lanes = [l0, l1, l2, l3];
    std::array::from_fn(|t| finish_sq_dist(&lanes[t], a[t], b, full))
}

/// Rows measured at once by `sq_dists_to`.
const DIST_ROWS: usize = 4;

/// `sq_dist` of each of `rows` (slices of equal length) to `b`, added to `acc`.
#[inline(always)]
fn add_sq_dists_to<'a>(rows: impl ExactSizeIterator<Item = &'a [f32]>, b: &[f32], acc: &mut [f64]) {
    let rows: Vec<&[f32]> = rows.collect();
    let mut tiles = rows.chunks_exact(DIST_ROWS);
    let mut out = acc.chunks_exact_mut(DIST_ROWS);
    for (tile, o) in (&mut tiles).zip(&mut out) {
        let s = sq_dists_to(std::array::from_fn(|t| tile[t]), b);
        o.iter_mut().zip(s).for_each(|(o, s)| *o += s);
    }
    for (row, o) in tiles.remainder().iter().zip(out.into_remainder()) {
        *o += sq_dist(row, b);
    }
}

/// Squared L2 distance in float64 throughout (each difference exact, each square rounded once),
/// for comparisons that must not carry float32's rounding. 16 lanes, added in a fixed order: it
/// vectorises, and every vector width gives the same bits.
#[inline(always)]
pub fn sq_dist_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f64; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let full = a.len() - ca.remainder().len();
    for (xa, xb) in ca.zip(cb) {
        for k in 0..16 {
            let t = xa[k] as f64 - xb[k] as f64;
            lanes[k] += t * t;
        }
    }
    let mut s: f64 = lanes.iter().sum();
    for (&x, &y) in a[full..].iter().zip(&b[full..]) {
        let t = x as f64 - y as f64;
        s += t * t;
    }
    s
}

widest_vectors!(pub fn sq_dist_f64_widest(a: &[f32], b: &[f32]) -> f64 = sq_dist_f64, avx512 = sq_dist_f64_avx512, avx2 = sq_dist_f64_avx2);

/// Sum of squares of a slice, [`SQ_LANES`] lanes wide: four independent vector accumulators keep
/// the adds' latency out of the way, so it runs at the speed of the loads.
#[inline(always)]
pub fn sq_norm(a: &[f32]) -> f64 {
    let mut lanes = [0f32; SQ_LANES];
    add_squares(&mut lanes, a);
    finish_sq_norm(&lanes, a)
}

/// Lanes of `sq_norm`: lane `k` sums the squares of the elements `k, k + 32, …` of the whole
/// chunks.
const SQ_LANES: usize = 32;

/// The squares of `a`'s whole chunks added to `sq_norm`'s lanes: a slice can go in parts, each a
/// whole number of chunks but the last, with the bits of going at once.
#[inline(always)]
fn add_squares(lanes: &mut [f32; SQ_LANES], a: &[f32]) {
    let mut l = *lanes; // in registers, not through memory the compiler must assume `a` aliases
    for chunk in a.chunks_exact(SQ_LANES) {
        for k in 0..SQ_LANES {
            l[k] += chunk[k] * chunk[k];
        }
    }
    *lanes = l;
}

/// `sq_norm` of `a` from its lanes (the squares of `a`'s whole chunks).
#[inline(always)]
fn finish_sq_norm(lanes: &[f32; SQ_LANES], a: &[f32]) -> f64 {
    let mut s: f64 = lanes.iter().map(|&v| v as f64).sum();
    if !s.is_finite() {
        return a.iter().map(|&x| (x as f64).powi(2)).sum(); // f32 lanes overflowed: redo in f64
    }
    for &x in a.chunks_exact(SQ_LANES).remainder() {
        s += (x as f64) * (x as f64);
    }
    s
}

/// Squared L2 norm of a long vector, computed blockwise in parallel (deterministic; on the
/// calling thread below `PARALLEL_MIN_ELEMENTS`, with the same blocks).
pub fn sq_norm_par(a: &[f32]) -> f64 {
    let step = DIST_BLOCK * DIST_GROUP;
    let partial: Vec<f64> =
        if a.len() < PARALLEL_MIN_ELEMENTS { a.chunks(step).map(sq_norm).collect() } else { a.par_chunks(step).map(sq_norm).collect() };
    partial.iter().sum()
}

/// Squared L2 distance of two long vectors, blockwise in parallel (deterministic; on the calling
/// thread below `PARALLEL_MIN_ELEMENTS`, with the same blocks).
pub fn sq_dist_par(a: &[f32], b: &[f32]) -> f64 {
    let step = DIST_BLOCK * DIST_GROUP;
    let partial: Vec<f64> = if a.len() < PARALLEL_MIN_ELEMENTS {
        a.chunks(step).zip(b.chunks(step)).map(|(x, y)| sq_dist(x, y)).collect()
    } else {
        a.par_chunks(step).zip(b.par_chunks(step)).map(|(x, y)| sq_dist(x, y)).collect()
    };
    partial.iter().sum()
}

/// The rows whose values are all finite.
pub fn finite_rows(x: Matrix) -> Vec<usize> {
    (0..x.n()).filter(|&i| x.row(i).iter().all(|v| v.is_finite())).collect()
}

/// L2 norm of every row (parallel over rows; each row summed in a fixed order).
pub fn row_norms(x: Matrix) -> Vec<f64> {
    (0..x.n()).into_par_iter().map(|i| sq_norm(x.row(i)).sqrt()).collect()
}

/// Squared L2 distance of a row to a vector as the iterative rules measure it (`row_dists_to`,
/// `weighted_step`): `sq_dist` of each block of [`COL_BLOCK`] columns, the blocks added in float64
/// in order. The blocks are fixed so that the pass that computes a vector can also measure every
/// row against it, block by block while the block is in cache, with the bits of measuring it alone,
/// at any thread count.
pub fn blocked_sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.chunks(COL_BLOCK).zip(b.chunks(COL_BLOCK)).fold(0.0, |s, (x, y)| s + sq_dist(x, y))
}

/// L2 distance of every row to the vector `z` (`blocked_sq_dist`, in code compiled for the widest
/// vectors the CPU has: the same float32 lanes, so the same bits).
///
/// Each thread takes a group of rows and walks their columns block by block, so that a block of
/// `z` is read from memory once for the whole group rather than once per row.
pub fn row_dists_to(x: Matrix, z: &[f32]) -> Vec<f64> {
    let rows: Vec<usize> = (0..x.n()).collect();
    let group = x.n().div_ceil(rayon::current_num_threads()).max(1);
    rows.par_chunks(group).flat_map_iter(|group| group_dists_widest(x, group, z)).collect()
}

#[inline(always)]
fn group_dists(x: Matrix, rows: &[usize], z: &[f32]) -> Vec<f64> {
    // A tile of rows walks DIST_SPAN blocks before the next tile starts: each row's part is one
    // run of 32 KiB, which the prefetchers follow better than 8 KiB ones, while z's span (32 KiB)
    // stays in cache for the group. Each row's blocks are still added one by one, in order.
    const SPAN: usize = DIST_SPAN * COL_BLOCK;
    let mut sq = vec![0f64; rows.len()];
    for s0 in (0..x.d()).step_by(SPAN) {
        let s1 = (s0 + SPAN).min(x.d());
        for (tile, acc) in rows.chunks(DIST_ROWS).zip(sq.chunks_mut(DIST_ROWS)) {
            for c0 in (s0..s1).step_by(COL_BLOCK) {
                let c1 = (c0 + COL_BLOCK).min(s1);
                add_sq_dists_to(tile.iter().map(|&i| &x.row(i)[c0..c1]), &z[c0..c1], acc);
            }
        }
    }
    sq.into_iter().map(f64::sqrt).collect()
}

/// Blocks of `COL_BLOCK` columns per run of `row_dists_to`.
const DIST_SPAN: usize = 4;

widest_vectors!(
    fn group_dists_widest(x: Matrix, rows: &[usize], z: &[f32]) -> Vec<f64> = group_dists, avx512 = group_dists_avx512, avx2 = group_dists_avx2
);

/// One step of an iterative rule in one pass over the matrix: `z = keep·prev + Σ_i c_i x_i` (just
/// the sum without `prev`; the sum as `weighted_sum` computes it, the step in float64 rounded once)
/// and, with `dists`, every row's L2 distance to the new `z` (`row_dists_to`'s bits). Each block of
/// `z` is final once its columns are summed, so the rows' slices are measured against it while they
/// are still in cache: one read of the matrix from memory instead of two. With `also_to`, the rows
/// are measured against that vector too in the same read (`row_dists_to`'s bits again).
pub fn weighted_step(x: Matrix, c: &[f64], prev: Option<(&[f32], f64)>, dists: bool, also_to: Option<&[f32]>) -> Step {
    let rows: Vec<usize> = (0..x.n().min(c.len())).collect();
    let mut z = vec![0f32; x.d()];
    let measure = Measure { to_z: dists, also_to };
    let blocks: Vec<(Vec<f64>, Vec<f64>)> = z
        .par_chunks_mut(COL_BLOCK)
        .enumerate()
        .map(|(b, z_blk)| step_block_widest(x, &rows, c, prev, b * COL_BLOCK, z_blk, measure))
        .collect();
    let dists = dists.then(|| block_distances(x.n(), blocks.iter().map(|b| &b.0)));
    let also = also_to.map(|_| block_distances(x.n(), blocks.iter().map(|b| &b.1)));
    Step { z, dists, also }
}

/// Each row's squared distances per block, added in block order (the bits of `blocked_sq_dist`),
/// and the root taken.
fn block_distances<'a>(n: usize, blocks: impl Iterator<Item = &'a Vec<f64>>) -> Vec<f64> {
    let mut sq = vec![0f64; n];
    for block in blocks {
        sq.iter_mut().zip(block).for_each(|(s, b)| *s += b);
    }
    sq.into_iter().map(f64::sqrt).collect()
}

/// What a block of `weighted_step` measures the rows against: the new `z` and another vector.
#[derive(Clone, Copy)]
struct Measure<'a> {
    to_z: bool,
    also_to: Option<&'a [f32]>,
}

/// What `weighted_step` computes.
pub struct Step {
    /// The step's result.
    pub z: Vec<f32>,
    /// Each row's distance to `z`, when asked for.
    pub dists: Option<Vec<f64>>,
    /// Each row's distance to the `also_to` vector, when one was given.
    pub also: Option<Vec<f64>>,
}

/// One column block of `weighted_step`: the block of `z`, then each row's squared distance over
/// the block to it and to the other vector, as far as `measure` asks (empty otherwise).
#[inline(always)]
fn step_block(
    x: Matrix,
    rows: &[usize],
    c: &[f64],
    prev: Option<(&[f32], f64)>,
    c0: usize,
    z_blk: &mut [f32],
    measure: Measure,
) -> (Vec<f64>, Vec<f64>) {
    // SAFETY: `weighted_block` writes only initialised values.
    weighted_block(x, rows, c, c0, unsafe { as_uninit(z_blk) });
    let c1 = c0 + z_blk.len();
    if let Some((prev, keep)) = prev {
        for (z, &p) in z_blk.iter_mut().zip(&prev[c0..c1]) {
            *z = (keep * p as f64 + *z as f64) as f32;
        }
    }
    let to_z = if measure.to_z { rows_sq_dists_to(x, c0, z_blk) } else { Vec::new() };
    let to_also = match measure.also_to {
        Some(t) => rows_sq_dists_to(x, c0, &t[c0..c1]),
        None => Vec::new(),
    };
    (to_z, to_also)
}

/// Each row's squared distance to `to` over the columns `c0..c0 + to.len()`.
#[inline(always)]
fn rows_sq_dists_to(x: Matrix, c0: usize, to: &[f32]) -> Vec<f64> {
    let mut sq = vec![0f64; x.n()];
    add_sq_dists_to((0..x.n()).map(|i| &x.row(i)[c0..c0 + to.len()]), to, &mut sq);
    sq
}

widest_vectors!(
    fn step_block_widest(x: Matrix, rows: &[usize], c: &[f64], prev: Option<(&[f32], f64)>, c0: usize, z_blk: &mut [f32], measure: Measure) -> (Vec<f64>, Vec<f64>)
        = step_block, avx512 = step_block_avx512, avx2 = step_block_avx2
);

/// Symmetric `n × n` matrix of squared L2 distances between rows (row-major, zero diagonal).
///
/// The matrix is read once: for a block of columns, every pair is accumulated while the `n` row
/// slices sit in cache. Non-finite distances (rows with NaN/Inf) become `+inf`, so selection rules
/// treat such rows as infinitely far from everything. Each pair's block sum is `sq_dist`'s with
/// each square added to its lane in one fused multiply-add (one rounding instead of two; the adds,
/// which bound this kernel, halved: 38 → 31 ms at 50 × 1M on two threads). The pairs are taken
/// `TILE_A` × `TILE_B` rows at a time, in code compiled for the widest vectors the CPU has: the
/// same bits at every width (the baseline code, for a CPU without AVX2 and FMA, gets them from a
/// slow software fused multiply-add).
pub fn pairwise_sq_dists(x: Matrix) -> Vec<f64> {
    let (n, d) = (x.n(), x.d());
    let pairs = n * (n - 1) / 2;
    let nblocks = d.div_ceil(DIST_BLOCK);
    let groups: Vec<usize> = (0..nblocks.div_ceil(DIST_GROUP)).collect();
    let partial: Vec<Vec<f64>> = groups
        .par_iter()
        .map(|&g| {
            let mut acc = vec![0f64; pairs];
            let b0 = g * DIST_GROUP;
            let b1 = (b0 + DIST_GROUP).min(nblocks);
            for b in b0..b1 {
                let c0 = b * DIST_BLOCK;
                let c1 = (c0 + DIST_BLOCK).min(d);
                block_sq_dists(x, c0, c1, &mut acc);
            }
            acc
        })
        .collect();
    let mut out = vec![0f64; n * n];
    let mut p = 0;
    for i in 0..n {
        for j in (i + 1)..n {
            let mut s: f64 = partial.iter().map(|acc| acc[p]).sum();
            if !s.is_finite() {
                s = f64::INFINITY;
            }
            out[i * n + j] = s;
            out[j * n + i] = s;
            p += 1;
        }
    }
    out
}

/// A tile of pairs in `pairwise_sq_dists` is `TILE_A` rows by `TILE_B` rows: eight sums, which
/// fit AVX2's sixteen registers with the six vectors they read (4 × 4 measured no faster).
const TILE_A: usize = 4;
const TILE_B: usize = 2;

widest_vectors!(
    /// Add the fused `sq_dist` of columns `c0..c1` of every pair i < j to `acc` (upper triangle,
    /// row-major).
    fn block_sq_dists(x: Matrix, c0: usize, c1: usize, acc: &mut [f64])
        = block_sq_dists_tiled, avx512 = block_sq_dists_avx512, avx2 = block_sq_dists_avx2
);

/// The tiles of pairs: for rows `i0..i0 + TILE_A` and `j0..j0 + TILE_B`, the 8-lane float32
/// sums of the fused `sq_dist` for the eight pairs at once (each loaded vector serves two or four
/// pairs, and eight independent sums keep the adders busy: 2 × 2 tiles were bound by the adds'
/// latency), then each pair i < j finished as `sq_dist` finishes it. A pair's lanes add the same
/// terms in the same order whatever the tile, so the tile does not change the bits.
#[inline(always)]
fn block_sq_dists_tiled(x: Matrix, c0: usize, c1: usize, acc: &mut [f64]) {
    const TA: usize = TILE_A;
    const TB: usize = TILE_B;
    let n = x.n();
    let len = c1 - c0;
    let full = len - len % 8;
    let slice = |i: usize| &x.row(i.min(n - 1))[c0..c1]; // rows past n repeat the last (never finished)
    let pair_index = |i: usize, j: usize| i * n - i * (i + 1) / 2 + (j - i - 1);
    for i0 in (0..n).step_by(TA) {
        // from the tile holding row i0 + 1, the first with a pair i < j
        for j0 in ((i0 + 1) / TB * TB..n).step_by(TB) {
            let a: [&[f32]; TA] = std::array::from_fn(|t| slice(i0 + t));
            let b: [&[f32]; TB] = std::array::from_fn(|t| slice(j0 + t));
            // named accumulators (not an array of them), so that they stay in registers
            let (mut l00, mut l01, mut l10, mut l11) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
            let (mut l20, mut l21, mut l30, mut l31) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
            let chunks = (a[0][..full].chunks_exact(8).zip(a[1][..full].chunks_exact(8)))
                .zip(a[2][..full].chunks_exact(8).zip(a[3][..full].chunks_exact(8)))
                .zip(b[0][..full].chunks_exact(8).zip(b[1][..full].chunks_exact(8)));
            for (((a0, a1), (a2, a3)), (b0, b1)) in chunks {
                for k in 0..8 {
                    let (t00, t01, t10, t11) = (a0[k] - b0[k], a0[k] - b1[k], a1[k] - b0[k], a1[k] - b1[k]);
                    let (t20, t21, t30, t31) = (a2[k] - b0[k], a2[k] - b1[k], a3[k] - b0[k], a3[k] - b1[k]);
                    l00[k] = t00.mul_add(t00, l00[k]);
                    l01[k] = t01.mul_add(t01, l01[k]);
                    l10[k] = t10.mul_add(t10, l10[k]);
                    l11[k] = t11.mul_add(t11, l11[k]);
                    l20[k] = t20.mul_add(t20, l20[k]);
                    l21[k] = t21.mul_add(t21, l21[k]);
                    l30[k] = t30.mul_add(t30, l30[k]);
                    l31[k] = t31.mul_add(t31, l31[k]);
                }
            }
            let l = [[l00, l01], [l10, l11], [l20, l21], [l30, l31]];
            for (ti, lane_row) in l.iter().enumerate() {
                for (tj, lanes) in lane_row.iter().enumerate() {
                    let (i, j) = (i0 + ti, j0 + tj);
                    if i >= j || j >= n {
                        continue;
                    }
                    acc[pair_index(i, j)] += finish_sq_dist(lanes, a[ti], b[tj], full);
                }
            }
        }
    }
}

/// `sq_dist`'s end, given its eight float32 lane sums over the first `full` values of `a` and `b`:
/// the lanes summed in float64, the remainder added; redone in float64 when the lanes overflowed
/// (or the input is not finite), which tells a huge finite row (finite result) from an infinite one.
#[inline(always)]
fn finish_sq_dist(lanes: &[f32; 8], a: &[f32], b: &[f32], full: usize) -> f64 {
    let mut s: f64 = lanes.iter().map(|&v| v as f64).sum();
    if !s.is_finite() {
        return a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    }
    for (x, y) in a[full..].iter().zip(&b[full..]) {
        let t = (x - y) as f64;
        s += t * t;
    }
    s
}

/// Inner products of the listed rows, as an `n × n` row-major matrix (entries of other rows are
/// 0), accumulated in float64 over column blocks like `pairwise_sq_dists`.
pub fn gram(x: Matrix, rows: &[usize]) -> Vec<f64> {
    let (n, d, k) = (x.n(), x.d(), rows.len());
    let nblocks = d.div_ceil(DIST_BLOCK);
    let groups: Vec<usize> = (0..nblocks.div_ceil(DIST_GROUP)).collect();
    let partial: Vec<Vec<f64>> = groups
        .par_iter()
        .map(|&g| {
            let mut acc = vec![0f64; k * (k + 1) / 2];
            for b in g * DIST_GROUP..((g + 1) * DIST_GROUP).min(nblocks) {
                let (c0, c1) = (b * DIST_BLOCK, ((b + 1) * DIST_BLOCK).min(d));
                let mut p = 0;
                for (s, &i) in rows.iter().enumerate() {
                    let ri = &x.row(i)[c0..c1];
                    for &j in &rows[s..] {
                        acc[p] += ri.iter().zip(&x.row(j)[c0..c1]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>();
                        p += 1;
                    }
                }
            }
            acc
        })
        .collect();
    let mut out = vec![0f64; n * n];
    let mut p = 0;
    for (s, &i) in rows.iter().enumerate() {
        for &j in &rows[s..] {
            let v: f64 = partial.iter().map(|acc| acc[p]).sum();
            out[i * n + j] = v;
            out[j * n + i] = v;
            p += 1;
        }
    }
    out
}

/// Weighted mean of the rows: `Σ w_i x_i / Σ w_i`, accumulated in float64 per column block.
pub fn weighted_mean(x: Matrix, w: &[f64]) -> Vec<f32> {
    let rows: Vec<usize> = (0..x.n()).collect();
    weighted_mean_rows(x, &rows, w)
}

/// One pass over the matrix for a round: `Σ_i c_i x_i` for each coefficient vector in `coeffs`
/// (accumulated as `weighted_sum` does, so each equals its `weighted_sum` to the bit) and every
/// row's L2 norm (summed over the column blocks in block order: bit-identical whatever the
/// thread count).
pub fn sums_and_norms(x: Matrix, coeffs: &[&[f64]]) -> (Vec<Vec<f32>>, Vec<f64>) {
    // A norm's bits follow the width, its parts added in block order; the sums' do not (each
    // column sums in row order).
    const BLOCK: usize = SUM_BLOCK;
    let (n, d) = (x.n(), x.d());
    let block = |b: usize| {
        let (c0, len) = (b * BLOCK, BLOCK.min(d - b * BLOCK));
        sums_and_norms_block_widest(x, coeffs, c0, len)
    };
    let blocks: Vec<(Vec<Vec<f32>>, Vec<f64>)> = if n * d < PARALLEL_MIN_ELEMENTS {
        (0..d.div_ceil(BLOCK)).map(block).collect()
    } else {
        (0..d.div_ceil(BLOCK)).into_par_iter().map(block).collect()
    };
    let mut sums = vec![Vec::with_capacity(d); coeffs.len()];
    let mut norms = vec![0f64; n];
    for (block_sums, sq) in blocks {
        for (out, part) in sums.iter_mut().zip(block_sums) {
            out.extend(part);
        }
        norms.iter_mut().zip(&sq).for_each(|(t, s)| *t += s);
    }
    (sums, norms.into_iter().map(f64::sqrt).collect())
}

/// Columns `c0..c0 + len` of `sums_and_norms`: each sum's block and each row's squared norm over
/// it (lane-wise, so the code compiled for each vector width gives the same bits). The rows go
/// in even groups of at most [`PASS_ROWS`]: read from memory once, by the first sum, and from
/// cache after.
#[inline(always)]
fn sums_and_norms_block(x: Matrix, coeffs: &[&[f64]], c0: usize, len: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    let mut acc = vec![vec![0f64; len]; coeffs.len()];
    let mut sq = vec![0f64; x.n()];
    let mut terms = Vec::with_capacity(PASS_ROWS);
    let mut rows = Vec::with_capacity(PASS_ROWS);
    let per_group = even_tile(x.n(), PASS_ROWS);
    for g0 in (0..x.n()).step_by(per_group) {
        let group = g0..(g0 + per_group).min(x.n());
        for (k, (c, a)) in coeffs.iter().zip(acc.iter_mut()).enumerate() {
            rows.clear();
            rows.extend(group.clone().filter(|&i| c[i] != 0.0));
            terms.clear();
            terms.extend(rows.iter().map(|&i| (&x.row(i)[c0..c0 + len], c[i])));
            if k == 0 {
                let mut tile_sq = [0f64; PASS_ROWS];
                add_tile_and_squares(a, &terms, &mut tile_sq);
                rows.iter().zip(tile_sq).for_each(|(&i, s)| sq[i] = s);
            } else {
                add_terms(a, &terms);
            }
        }
        // the rows the first sum skips (coefficient 0), on their own
        for i in group.filter(|&i| coeffs.first().is_none_or(|c| c[i] == 0.0)) {
            sq[i] = sq_norm(&x.row(i)[c0..c0 + len]);
        }
    }
    (acc.into_iter().map(|a| a.into_iter().map(|v| v as f32).collect()).collect(), sq)
}

widest_vectors!(
    fn sums_and_norms_block_widest(x: Matrix, coeffs: &[&[f64]], c0: usize, len: usize) -> (Vec<Vec<f32>>, Vec<f64>)
        = sums_and_norms_block, avx512 = sums_and_norms_block_avx512, avx2 = sums_and_norms_block_avx2
);

/// `Σ c_i x_i` over the rows, in float64 per column block.
pub fn weighted_sum(x: Matrix, c: &[f64]) -> Vec<f32> {
    let rows: Vec<usize> = (0..x.n().min(c.len())).collect();
    weighted_sum_rows(x, &rows, c)
}

/// `weighted_mean` of the listed rows (in that order), read in place: the bits of
/// `weighted_mean(x.select_rows(rows).view(), w)` without the copy.
pub fn weighted_mean_rows(x: Matrix, rows: &[usize], w: &[f64]) -> Vec<f32> {
    weighted_sum_rows(x, rows, &mean_coefficients(w))
}

/// A weighted mean's coefficients `w_i / Σ w`.
pub fn mean_coefficients(w: &[f64]) -> Vec<f64> {
    let total: f64 = w.iter().sum();
    w.iter().map(|wi| wi / total).collect()
}

/// `Σ_k c_k x_{rows[k]}`, the rows added in the order listed, in float64 per column block; a row
/// with coefficient 0 is skipped (a NaN in it does not reach the sum).
pub fn weighted_sum_rows(x: Matrix, rows: &[usize], c: &[f64]) -> Vec<f32> {
    let d = x.d();
    // not zeroed first (10 × 1M on one thread: 1.55–1.60 → 1.43–1.54 ms)
    let mut out = Vec::with_capacity(d);
    let parallel = rows.len() * d >= PARALLEL_MIN_ELEMENTS;
    let width = if parallel { wide_block(d) } else { WIDE_SUM_BLOCK };
    let block = |(b, out_blk): (usize, &mut [MaybeUninit<f32>])| weighted_block(x, rows, c, b * width, out_blk);
    if parallel {
        out.spare_capacity_mut()[..d].par_chunks_mut(width).enumerate().for_each(block);
    } else {
        out.spare_capacity_mut()[..d].chunks_mut(width).enumerate().for_each(block);
    }
    // SAFETY: `weighted_block` writes every value of its block, and the blocks cover `0..d`.
    unsafe { out.set_len(d) };
    out
}

/// Columns per block of `weighted_sum_rows` at most. Each row's part of a block is one sequential
/// run, which the hardware prefetchers follow better the longer it is (a block's float64 sums, 256
/// KiB, stay in L2): on one thread, 50 × 1M read 10 % faster than in blocks of 8,192, 100 × 1M 14 %
/// (on two threads, from 7 % faster to 7 % slower). The width changes no result: each column adds
/// its rows in order.
const WIDE_SUM_BLOCK: usize = 4 * SUM_BLOCK;

/// Block width of a parallel `weighted_sum_rows`: at least four blocks per thread, for the pool to
/// even out, but no narrower than `SUM_BLOCK`.
fn wide_block(d: usize) -> usize {
    d.div_ceil(4 * rayon::current_num_threads()).next_multiple_of(ADD_LANES).clamp(SUM_BLOCK, WIDE_SUM_BLOCK)
}

/// Below this many elements read, a pass runs on the calling thread (same blocks, same bits):
/// waking the pool's idle workers cost 0.1–0.3 ms on a 2-vCPU virtual machine, as long as one
/// thread takes to read 4 MiB.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 20;

/// Columns per block of the round's pass (`sums_and_norms`), whose norms add their parts block by
/// block, and the narrowest of `weighted_sum_rows`. A group's rows over a block, 256 KiB, stay in
/// L2 for the pass's other sums: 10 × 1M on one thread, 9.0–10.2 GB/s in blocks of 2048
/// columns, 13.0–13.6 GB/s in 8192.
const SUM_BLOCK: usize = 8192;

/// One column block of `weighted_sum_rows`: float64 accumulators, rows added in order (lane-wise,
/// so the code compiled for each vector width gives the same bits). The first tile starts its sums
/// from zero in registers and the last one rounds them straight into `out_blk`: up to
/// [`SUM_ROWS`] rows never touch an accumulator array (10 × 1M on one thread: 2.29–2.38 → 1.55–1.60
/// ms in a Rust loop).
fn weighted_block(x: Matrix, rows: &[usize], c: &[f64], c0: usize, out_blk: &mut [MaybeUninit<f32>]) {
    weighted_block_at::<Widest>(x, rows, c, c0, out_blk)
}

/// [`weighted_block`] with its tiles summed at the vector width `W`.
#[inline(always)]
fn weighted_block_at<W: TileWidth>(x: Matrix, rows: &[usize], c: &[f64], c0: usize, out_blk: &mut [MaybeUninit<f32>]) {
    let len = out_blk.len();
    let terms: Vec<(&[f32], f64)> =
        rows.iter().zip(c).filter(|(_, &ci)| ci != 0.0).map(|(&i, &ci)| (&x.row(i)[c0..c0 + len], ci)).collect();
    let tiles: Vec<&[(&[f32], f64)]> = terms.chunks(even_tile(terms.len(), SUM_ROWS)).collect();
    match tiles.as_slice() {
        [] => out_blk.fill(MaybeUninit::new(0.0)),
        [only] => W::sum_tile::<OnlyTile>(&mut [], out_blk, only),
        [first, middle @ .., last] => {
            let mut acc = vec![0f64; len];
            W::sum_tile::<FirstTile>(&mut acc, &mut [], first);
            for tile in middle {
                W::sum_tile::<MiddleTile>(&mut acc, &mut [], tile);
            }
            W::sum_tile::<LastTile>(&mut acc, out_blk, last);
        }
    }
}

/// A vector width to sum tiles at.
trait TileWidth {
    /// [`sum_tile`] at this width.
    fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]);
}

/// The widest vectors this CPU has. Each kind of tile is its own function: inlined all together
/// into one block function, the tiles' rows came out loaded a whole vector at a time and split
/// (10 × 100k on one thread: 105 µs against 90).
struct Widest;

impl TileWidth for Widest {
    fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
        sum_tile_widest::<E>(acc, out, tile)
    }
}

/// Where a tile of [`add_tile`] starts its sums and where it leaves them.
trait TileEnds {
    /// The sums start from zero (else from `acc`).
    const START: bool;
    /// The sums go rounded to float32 into `out` (else back to `acc`).
    const FINISH: bool;
}

/// The tile whose sums start from zero (`START`) or from `acc`, and go into the output
/// (`FINISH`) or back to `acc`.
struct Ends<const START: bool, const FINISH: bool>;

impl<const S: bool, const F: bool> TileEnds for Ends<S, F> {
    const START: bool = S;
    const FINISH: bool = F;
}

/// A block's only tile: from zero straight into the output.
type OnlyTile = Ends<true, true>;
/// The first of several: from zero into `acc`.
type FirstTile = Ends<true, false>;
/// Neither first nor last, and every tile of `add_terms`: from `acc` back to `acc`.
type MiddleTile = Ends<false, false>;
/// The last of several: from `acc` into the output.
type LastTile = Ends<false, true>;

/// `acc += Σ_k c_k row_k` for the `(row, c_k)` terms, added in the order listed. The terms go in
/// tiles of at most [`SUM_ROWS`], as even as can be (10 terms: one tile; 20: two of 10): a
/// column's accumulator stays in a register while it adds a tile's terms one after the other — the
/// same additions in the same order as term by term, with one load and store of the accumulator
/// per tile instead of per term.
#[inline(always)]
fn add_terms(acc: &mut [f64], terms: &[(&[f32], f64)]) {
    for tile in terms.chunks(even_tile(terms.len(), SUM_ROWS)) {
        sum_tile::<MiddleTile>(acc, &mut [], tile);
    }
}

/// [`add_tile`] for a tile of any length up to [`SUM_ROWS`]. (Plain loops and a match, no
/// closures: a closure that is not inlined loses the caller's vector width.)
#[inline(always)]
fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
    match tile.len() {
        1 => add_tile::<1, E>(acc, out, tile),
        2 => add_tile::<2, E>(acc, out, tile),
        3 => add_tile::<3, E>(acc, out, tile),
        4 => add_tile::<4, E>(acc, out, tile),
        5 => add_tile::<5, E>(acc, out, tile),
        6 => add_tile::<6, E>(acc, out, tile),
        7 => add_tile::<7, E>(acc, out, tile),
        8 => add_tile::<8, E>(acc, out, tile),
        9 => add_tile::<9, E>(acc, out, tile),
        10 => add_tile::<10, E>(acc, out, tile),
        11 => add_tile::<11, E>(acc, out, tile),
        12 => add_tile::<12, E>(acc, out, tile),
        13 => add_tile::<13, E>(acc, out, tile),
        14 => add_tile::<14, E>(acc, out, tile),
        15 => add_tile::<15, E>(acc, out, tile),
        _ => add_tile::<SUM_ROWS, E>(acc, out, tile),
    }
}

widest_vectors!(
    fn sum_tile_widest<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)])
        = sum_tile, avx512 = sum_tile_avx512, avx2 = sum_tile_avx2
);

/// Terms per tile when `len` terms go in as few tiles of at most `most` as they can, as even as
/// can be: a small last tile would cost a whole pass over the accumulators for few rows.
fn even_tile(len: usize, most: usize) -> usize {
    len.div_ceil(len.div_ceil(most).max(1)).max(1)
}

/// One tile of `add_terms`, `ADD_LANES` columns at a time into a local array (summed in place, a
/// tile of 13 rows came out as scalar code; tiles of 8 were vectorised). The sums start and end
/// as `E` says; a tile that finishes writes every value of `out` and not `acc`, which may then be
/// empty if the tile also starts. Starting from 0.0 adds the same as adding to a zeroed `acc`,
/// -0.0 terms included.
#[inline(always)]
fn add_tile<const R: usize, E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
    let len = if E::FINISH { out.len() } else { acc.len() };
    debug_assert!(E::START && E::FINISH || acc.len() == len);
    let row: [&[f32]; R] = std::array::from_fn(|t| &tile[t].0[..len]);
    let coef: [f64; R] = std::array::from_fn(|t| tile[t].1);
    let full = len - len % ADD_LANES;
    for k in 0..len / ADD_LANES {
        let j = k * ADD_LANES;
        let mut s: [f64; ADD_LANES] = if E::START { [0.0; ADD_LANES] } else { lanes(acc, j) };
        for t in 0..R {
            let r = &row[t][j..j + ADD_LANES];
            for l in 0..ADD_LANES {
                s[l] += coef[t] * r[l] as f64;
            }
        }
        if E::FINISH {
            *lanes_mut(out, j) = s.map(|v| MaybeUninit::new(v as f32));
        } else {
            *lanes_mut(acc, j) = s;
        }
    }
    for j in full..len {
        let mut s = if E::START { 0.0 } else { acc[j] };
        for t in 0..R {
            s += coef[t] * row[t][j] as f64;
        }
        if E::FINISH {
            out[j] = MaybeUninit::new(s as f32);
        } else {
            acc[j] = s;
        }
    }
}

/// `v` to be overwritten by a kernel that writes `MaybeUninit` values.
///
/// # Safety
/// Every value written through the result must be initialised.
unsafe fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; the caller writes only initialised values.
    unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `ADD_LANES` values of `v` from `j` on, bounds checked once.
#[inline(always)]
fn lanes<T: Copy>(v: &[T], j: usize) -> [T; ADD_LANES] {
    v[j..j + ADD_LANES].try_into().expect("a whole chunk of lanes")
}

/// [`lanes`] to write.
#[inline(always)]
fn lanes_mut<T>(v: &mut [T], j: usize) -> &mut [T; ADD_LANES] {
    (&mut v[j..j + ADD_LANES]).try_into().expect("a whole chunk of lanes")
}

/// Columns at a time in `add_tile`: one float32 vector of the widest width, two of float64. (32
/// read 1000 × 109,386 on one thread 15 % slower.)
const ADD_LANES: usize = 16;

/// `add_terms` of at most [`PASS_ROWS`] terms that also gives each term's row's `sq_norm` in `sq`:
/// the columns go a strip at a time, summed from memory and then squared from the L1 cache, so
/// that the rows are read from memory once, side by side. (Squared as they were added, 32 columns
/// at a time, 1000 × 109,386 took longer on two threads.)
#[inline(always)]
fn add_tile_and_squares(acc: &mut [f64], terms: &[(&[f32], f64)], sq: &mut [f64; PASS_ROWS]) {
    debug_assert!(terms.len() <= PASS_ROWS);
    let len = acc.len();
    let mut lanes = [[0f32; SQ_LANES]; PASS_ROWS];
    let mut strip: [(&[f32], f64); PASS_ROWS] = [(&[], 0.0); PASS_ROWS];
    let mut c = 0;
    while c < len {
        // whole chunks of the squares' lanes in every strip but the last
        let end = (c + SQUARE_STRIP).min(len);
        for (s, &(r, k)) in strip.iter_mut().zip(terms) {
            *s = (&r[c..end], k);
        }
        let strip = &strip[..terms.len()];
        add_terms(&mut acc[c..end], strip);
        for (l, &(r, _)) in lanes.iter_mut().zip(strip) {
            add_squares(l, r);
        }
        c = end;
    }
    for ((s, l), &(r, _)) in sq.iter_mut().zip(&lanes).zip(terms) {
        *s = finish_sq_norm(l, &r[..len]);
    }
}

/// Columns per strip of `add_tile_and_squares` (a multiple of `SQ_LANES`): a tile's rows over
/// it, 4 KiB, stay in the L1 cache between their sum and their squares.
const SQUARE_STRIP: usize = 128;
const _: () = assert!(SQUARE_STRIP.is_multiple_of(SQ_LANES));

/// Rows per group of the round's pass (`sums_and_norms`): on two threads, 1000 × 109,386 took
/// 17.8–26.1 ms in groups of 16 rows against 17.1–19.7 in groups of 8 (four alternating runs),
/// though `weighted_sum_rows` gains from tiles of 16 ([`SUM_ROWS`]).
const PASS_ROWS: usize = 8;

/// Terms per tile of `add_terms`. Each term is a sequential run the hardware prefetchers follow:
/// 50 × 1M on one thread summed at 17–18 GB/s in tiles of 8 rows, 23–25 in tiles of 13 and
/// 14–20 in tiles of 17–25 (more runs than the prefetchers keep track of); on two threads,
/// 1000 × 109,386 at 20.5 GB/s in tiles of 8, 25.7 in tiles of 16.
const SUM_ROWS: usize = 16;

/// Columns per block of the column-wise kernels that gather (`map_columns` and the traced ones):
/// `n` rows of this width fit in cache while they are transposed.
pub(crate) const GATHER_BLOCK: usize = 256;

/// Columns `c0..c0 + len` of every row, transposed: column j's `n` values, in row order, at
/// `buf[j·n..(j + 1)·n]`. Every row is read sequentially.
pub(crate) fn gather_columns(x: Matrix, c0: usize, len: usize) -> Vec<f32> {
    let n = x.n();
    let mut buf = vec![0f32; len * n];
    for i in 0..n {
        for (j, &v) in x.row(i)[c0..c0 + len].iter().enumerate() {
            buf[j * n + i] = v;
        }
    }
    buf
}

/// `gather_columns`, and in the same read `Σ_i c_i x_i` over these columns (float64, rows in
/// order, skipping zero coefficients: the bits of `sums_and_norms`) and each row's sum of
/// squares over them.
pub(crate) fn gather_columns_summed(x: Matrix, c0: usize, len: usize, c: &[f64]) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    gather_columns_summed_widest(x, c0, len, c)
}

#[inline(always)]
fn gather_summed_block(x: Matrix, c0: usize, len: usize, c: &[f64]) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let n = x.n();
    let mut buf = vec![0f32; len * n];
    let mut acc = vec![0f64; len];
    let mut sq = vec![0f64; n];
    for (i, s) in sq.iter_mut().enumerate() {
        let row = &x.row(i)[c0..c0 + len];
        for (j, &v) in row.iter().enumerate() {
            buf[j * n + i] = v;
        }
        *s = add_to_books(row, c[i], &mut acc);
    }
    (buf, acc.into_iter().map(|a| a as f32).collect(), sq)
}

/// One row's part of a pass's books: `c · row` added to `acc` (skipped for c = 0, as
/// `sums_and_norms` does) and the row's sum of squares returned.
#[inline(always)]
pub(crate) fn add_to_books(row: &[f32], c: f64, acc: &mut [f64]) -> f64 {
    if c != 0.0 {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += c * v as f64;
        }
    }
    sq_norm(row)
}

widest_vectors!(
    fn gather_columns_summed_widest(x: Matrix, c0: usize, len: usize, c: &[f64]) -> (Vec<f32>, Vec<f32>, Vec<f64>)
        = gather_summed_block, avx512 = gather_summed_block_avx512, avx2 = gather_summed_block_avx2
);

/// Apply `f` to each column (given as the `n` values of that coordinate, in row order) and
/// collect one output per column. Columns are gathered block by block into a transposed buffer
/// so every row is read sequentially.
pub fn map_columns<F>(x: Matrix, f: F) -> Vec<f32>
where
    F: Fn(&mut [f32]) -> f32 + Sync,
{
    let n = x.n();
    let mut out = vec![0f32; x.d()];
    out.par_chunks_mut(GATHER_BLOCK).enumerate().for_each(|(b, out_blk)| {
        let mut buf = gather_columns(x, b * GATHER_BLOCK, out_blk.len());
        for (j, o) in out_blk.iter_mut().enumerate() {
            *o = f(&mut buf[j * n..(j + 1) * n]);
        }
    });
    out
}

/// The bits of an f32 (as i32) mapped to an integer whose order is `f32::total_cmp`'s (the bit
/// trick that function documents); the map is its own inverse.
#[inline]
pub(crate) fn total_order_key(bits: i32) -> i32 {
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// Sort the values in IEEE total order (NaN above +inf, −0 below +0), as
/// `sort_unstable_by(f32::total_cmp)` does, but on integer keys: about 1.6× faster.
pub fn sort_total_order(col: &mut [f32]) {
    let keys: &mut [i32] = bytemuck::cast_slice_mut(col);
    keys.iter_mut().for_each(|k| *k = total_order_key(*k));
    keys.sort_unstable();
    keys.iter_mut().for_each(|k| *k = total_order_key(*k));
}

/// The median of the finite values (the mean of the two middle ones for an even count); 0 if
/// there are none. Radii derived from a round's norms use it: NaN rows do not move it.
pub fn median_finite(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Indices `0..n` sorted by `key` ascending, ties broken by index (deterministic).
pub fn argsort_by_key(key: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..key.len()).collect();
    idx.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::widest::Capability;

    /// The tiles summed in the code compiled for no vector extension.
    struct Baseline;
    impl TileWidth for Baseline {
        fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
            sum_tile::<E>(acc, out, tile)
        }
    }

    /// The tiles summed in the AVX2 code: only where the test has checked that the CPU has it.
    #[cfg(target_arch = "x86_64")]
    struct Avx2;
    #[cfg(target_arch = "x86_64")]
    impl TileWidth for Avx2 {
        fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
            // SAFETY: used only where `Capability::detected()` is at least `Avx2`.
            unsafe { sum_tile_avx2::<E>(acc, out, tile) }
        }
    }

    /// The tiles summed in the AVX-512 code: only where the test has checked that the CPU has it.
    #[cfg(target_arch = "x86_64")]
    struct Avx512;
    #[cfg(target_arch = "x86_64")]
    impl TileWidth for Avx512 {
        fn sum_tile<E: TileEnds>(acc: &mut [f64], out: &mut [MaybeUninit<f32>], tile: &[(&[f32], f64)]) {
            // SAFETY: used only where `Capability::detected()` is `Avx512`.
            unsafe { sum_tile_avx512::<E>(acc, out, tile) }
        }
    }

    #[test]
    fn pairwise_matches_direct() {
        let rows = vec![vec![0.0, 0.0, 0.0], vec![1.0, 2.0, 2.0], vec![-1.0, 0.0, 0.0]];
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let dd = pairwise_sq_dists(m.view());
        assert_eq!(dd[1], 9.0);
        assert_eq!(dd[2], 1.0);
        assert_eq!(dd[3 + 2], 4.0 + 4.0 + 4.0); // row 1, column 2
        assert_eq!(dd[2 * 3 + 1], 12.0);
    }

    /// `sq_dist` with each square added to its lane in one fused multiply-add: the definition the
    /// tiled kernel keeps.
    fn fused_sq_dist(a: &[f32], b: &[f32]) -> f64 {
        let mut lanes = [0f32; 8];
        let full = a.len() - a.len() % 8;
        for (xa, xb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
            for k in 0..8 {
                let t = xa[k] - xb[k];
                lanes[k] = t.mul_add(t, lanes[k]);
            }
        }
        finish_sq_dist(&lanes, a, b, full)
    }

    /// The tiled kernel, at every vector width this CPU has, gives each pair the sum over the
    /// column blocks of `fused_sq_dist` to the bit (and not `sq_dist`'s: the test would see the
    /// fused rounding if it were lost): row counts that leave partial tiles (rows left over
    /// on either side of a 4 × 2 tile), a width that leaves a remainder, huge rows (float32 lanes
    /// overflow: redone in float64) and NaN rows.
    #[test]
    fn tiled_pairwise_distances_are_fused_sq_dists_bits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (n, d) in [(2usize, 5usize), (5, 1029), (7, 100), (9, 2 * DIST_BLOCK + 13), (14, 3000)] {
            let mut rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect()).collect();
            if n > 4 {
                rows[1].iter_mut().for_each(|v| *v *= 1e19); // squares overflow float32
                rows[3][d / 2] = f32::NAN;
            }
            let m = OwnedMatrix::from_rows(&rows).unwrap();
            let x = m.view();
            let mut expected = vec![0f64; n * (n - 1) / 2];
            let mut unfused_differ = false;
            for c0 in (0..d).step_by(DIST_BLOCK) {
                let c1 = (c0 + DIST_BLOCK).min(d);
                let mut p = 0;
                for i in 0..n {
                    for j in (i + 1)..n {
                        let (a, b) = (&x.row(i)[c0..c1], &x.row(j)[c0..c1]);
                        let fused = fused_sq_dist(a, b);
                        expected[p] += fused;
                        unfused_differ |= fused.to_bits() != sq_dist(a, b).to_bits();
                        p += 1;
                    }
                }
            }
            let bits = |v: &[f64]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            let mut widths: Vec<Vec<f64>> = Vec::new();
            for width in 0..3 {
                let mut acc = vec![0f64; expected.len()];
                for c0 in (0..d).step_by(DIST_BLOCK) {
                    let c1 = (c0 + DIST_BLOCK).min(d);
                    match width {
                        0 => block_sq_dists_tiled(x, c0, c1, &mut acc),
                        #[cfg(target_arch = "x86_64")]
                        1 if Capability::detected() >= Capability::Avx2 => unsafe { block_sq_dists_avx2(x, c0, c1, &mut acc) },
                        #[cfg(target_arch = "x86_64")]
                        2 if Capability::detected() >= Capability::Avx512 => unsafe { block_sq_dists_avx512(x, c0, c1, &mut acc) },
                        _ => continue,
                    }
                }
                widths.push(acc);
            }
            assert!(d < 8 || unfused_differ, "n = {n}, d = {d}: no pair tells the fused sums from the plain ones");
            for acc in &widths {
                assert_eq!(bits(acc), bits(&expected), "n = {n}, d = {d}");
            }
            // and the whole matrix, symmetric with non-finite distances as +inf
            let dd = pairwise_sq_dists(x);
            let mut p = 0;
            for i in 0..n {
                for j in (i + 1)..n {
                    let e = if expected[p].is_finite() { expected[p] } else { f64::INFINITY };
                    assert_eq!((dd[i * n + j].to_bits(), dd[j * n + i].to_bits()), (e.to_bits(), e.to_bits()));
                    p += 1;
                }
            }
        }
    }

    /// The weighted sums and the round's one pass give the same bits in the code compiled for
    /// every vector width this CPU has.
    #[test]
    fn weighted_sums_and_norms_are_the_same_at_every_width() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let (n, len) = (SUM_ROWS + 3, 1009usize); // two tiles (of 9 rows each, row 2 left out)
        let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect();
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let x = m.view();
        let all: Vec<usize> = (0..n).collect();
        let c: Vec<f64> = (0..n).map(|i| if i == 2 { 0.0 } else { rng.random::<f64>() }).collect();
        let e: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let coeffs: [&[f64]; 2] = [&c, &e];
        // the weighted block's kinds of tiles: none, one, first and last, and one in the middle
        let many: Vec<usize> = (0..2 * SUM_ROWS + 5).map(|k| k % n).collect();
        let lists: [(&[usize], Vec<f64>); 4] = [
            (&all[..2], vec![0.0; 2]),
            (&all[..5], c[..5].to_vec()),
            (&all, c.clone()),
            (&many, many.iter().map(|_| rng.random::<f64>()).collect()),
        ];
        fn blocks_at<W: TileWidth>(x: Matrix, lists: &[(&[usize], Vec<f64>)]) -> Vec<f32> {
            let block = |(rows, c): &(&[usize], Vec<f64>)| {
                let mut out = vec![0f32; x.d()];
                // SAFETY: the block writes only initialised values.
                weighted_block_at::<W>(x, rows, c, 0, unsafe { as_uninit(&mut out) });
                out
            };
            lists.iter().flat_map(block).collect()
        }
        type Bits = (Vec<u32>, Vec<Vec<u32>>, Vec<u64>); // the blocks, the sums, the squared norms and distances
        let run = |width: usize| -> Option<Bits> {
            let out: Vec<f32>;
            let z = &rows[3];
            let both = Measure { to_z: true, also_to: Some(x.row(1)) };
            let ((sums, sq), dist) = match width {
                0 => {
                    out = blocks_at::<Baseline>(x, &lists);
                    let (to_z, to_row) = step_block(x, &all, &c, Some((z, 0.5)), 0, &mut vec![0f32; len], both);
                    let step = [to_z, to_row].concat();
                    (sums_and_norms_block(x, &coeffs, 0, len), [group_dists(x, &all, z), vec![sq_dist_f64(x.row(0), z)], step].concat())
                }
                #[cfg(target_arch = "x86_64")]
                1 if Capability::detected() >= Capability::Avx2 => unsafe {
                    out = blocks_at::<Avx2>(x, &lists);
                    let (to_z, to_row) = step_block_avx2(x, &all, &c, Some((z, 0.5)), 0, &mut vec![0f32; len], both);
                    let step = [to_z, to_row].concat();
                    (
                        sums_and_norms_block_avx2(x, &coeffs, 0, len),
                        [group_dists_avx2(x, &all, z), vec![sq_dist_f64_avx2(x.row(0), z)], step].concat(),
                    )
                },
                #[cfg(target_arch = "x86_64")]
                2 if Capability::detected() >= Capability::Avx512 => unsafe {
                    out = blocks_at::<Avx512>(x, &lists);
                    let (to_z, to_row) = step_block_avx512(x, &all, &c, Some((z, 0.5)), 0, &mut vec![0f32; len], both);
                    let step = [to_z, to_row].concat();
                    (
                        sums_and_norms_block_avx512(x, &coeffs, 0, len),
                        [group_dists_avx512(x, &all, z), vec![sq_dist_f64_avx512(x.row(0), z)], step].concat(),
                    )
                },
                _ => return None,
            };
            let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            Some((bits32(&out), sums.iter().map(|s| bits32(s)).collect(), sq.iter().chain(&dist).map(|v| v.to_bits()).collect()))
        };
        let widths: Vec<_> = (0..3).filter_map(run).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{} widths disagree", widths.len());
    }

    #[test]
    fn row_distances_have_blocked_sq_dists_bits_whatever_the_grouping() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let d = 4 * COL_BLOCK + 13; // several column blocks and a remainder
        let mut rows: Vec<Vec<f32>> = (0..7).map(|_| (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect();
        rows[4][100] = 3e20; // its square overflows float32's lanes: the float64 fallback
        let z: Vec<f32> = (0..d).map(|_| rng.random::<f32>()).collect();
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let want: Vec<u64> = rows.iter().map(|r| blocked_sq_dist(r, &z).sqrt().to_bits()).collect();
        assert!(f64::from_bits(want[4]) > 1e20);
        // the blocks are not one sequential sum (else this test would not tell them apart)
        assert!(rows.iter().any(|r| blocked_sq_dist(r, &z) != sq_dist(r, &z)));
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got: Vec<u64> = pool.install(|| row_dists_to(m.view(), &z)).iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{threads} threads");
        }
    }

    /// The round's pass squares the rows of its first sum as it adds them, strip by strip, and the
    /// rows that sum skips on their own: each norm has the bits of `sq_norm` block by block
    /// (summed in block order), each sum those of adding the rows one by one, at any thread
    /// count and on either side of `PARALLEL_MIN_ELEMENTS` (on the calling thread below it).
    #[test]
    fn the_rounds_norms_are_sq_norm_block_by_block() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let n = 11;
        // blocks and a part, which ends in a strip of a few chunks and a remainder of 9
        let part = 3 * SQUARE_STRIP + 2 * SQ_LANES + 9;
        for (d, parallel) in [(2 * SUM_BLOCK + part, false), ((PARALLEL_MIN_ELEMENTS / n / SUM_BLOCK + 1) * SUM_BLOCK + part, true)] {
            let mut rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect();
            rows[4][SUM_BLOCK + 100] = 3e20; // its square overflows float32's lanes: the float64 fallback
            rows[9][d - 1] = 7.0; // in the remainder
            let m = OwnedMatrix::from_rows(&rows).unwrap();
            assert_eq!(n * d >= PARALLEL_MIN_ELEMENTS, parallel);
            let c: Vec<f64> = (0..n).map(|i| if i == 2 || i == 9 { 0.0 } else { rng.random::<f64>() }).collect();
            let want: Vec<u64> = rows.iter().map(|r| r.chunks(SUM_BLOCK).map(sq_norm).fold(0f64, |a, s| a + s).sqrt().to_bits()).collect();
            let row_by_row: Vec<u32> = (0..d)
                .map(|j| rows.iter().zip(&c).filter(|(_, &ci)| ci != 0.0).fold(0f64, |a, (r, &ci)| a + ci * r[j] as f64) as f32)
                .map(f32::to_bits)
                .collect();
            // the lanes matter: a plain sum of squares gives other bits
            assert!(rows.iter().any(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt().to_bits() != want[0]));
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                for coeffs in [vec![&c[..]], vec![], vec![&c[..], &c[..]]] {
                    let (sums, norms) = pool.install(|| sums_and_norms(m.view(), &coeffs));
                    let norms: Vec<u64> = norms.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(norms, want, "{threads} threads, {} sums, parallel: {parallel}", coeffs.len());
                    for sum in &sums {
                        assert!(sum.iter().map(|v| v.to_bits()).eq(row_by_row.iter().copied()), "{threads} threads");
                    }
                }
                let sum = pool.install(|| weighted_sum(m.view(), &c));
                assert!(sum.iter().map(|v| v.to_bits()).eq(row_by_row.iter().copied()), "{threads} threads");
            }
        }
    }

    /// A long vector's norm and distance add their blocks' parts in order, on the calling thread
    /// below `PARALLEL_MIN_ELEMENTS` and in parallel above it: the same bits at any thread count.
    #[test]
    fn long_norms_and_distances_add_their_blocks_in_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
        let step = DIST_BLOCK * DIST_GROUP;
        for len in [3 * step + 5, PARALLEL_MIN_ELEMENTS + 5] {
            let a: Vec<f32> = (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let b: Vec<f32> = (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let norm = a.chunks(step).map(sq_norm).fold(0f64, |t, s| t + s).to_bits();
            let dist = a.chunks(step).zip(b.chunks(step)).map(|(x, y)| sq_dist(x, y)).fold(0f64, |t, s| t + s).to_bits();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                assert_eq!(
                    pool.install(|| (sq_norm_par(&a).to_bits(), sq_dist_par(&a, &b).to_bits())),
                    (norm, dist),
                    "{len}, {threads} threads"
                );
            }
        }
    }

    /// `weighted_sum` adds each column's rows in order, in float64, whatever the block width (wide
    /// on the calling thread, from the column count and the pool's size in parallel), the tiles
    /// and the thread count.
    #[test]
    fn weighted_sums_are_row_by_row_in_blocks_of_any_width() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        // one tile (summed straight into the output), two, and three (one in the middle)
        for (n, d) in [(3usize, WIDE_SUM_BLOCK + 37), (SUM_ROWS + 3, 2 * WIDE_SUM_BLOCK + 37), (2 * SUM_ROWS + 5, 1000)] {
            let mut rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect();
            // the first and the last rows cancel: a different order of additions shows in float32
            rows[0] = (0..d).map(|_| rng.random::<f32>() * 1e13).collect();
            rows[n - 1] = rows[0].iter().map(|v| -v).collect();
            // a column of -0.0 sums to 0.0, as it does when added to zeroed accumulators
            rows.iter_mut().for_each(|r| r[d - 1] = -0.0);
            let mut c: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            c[n - 1] = c[0];
            let m = OwnedMatrix::from_rows(&rows).unwrap();
            let want: Vec<u32> =
                (0..d).map(|j| rows.iter().zip(&c).fold(0f64, |a, (r, &ci)| a + ci * r[j] as f64) as f32).map(f32::to_bits).collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| weighted_sum(m.view(), &c));
                assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "n = {n}, {threads} threads");
            }
        }
        let none = weighted_sum(OwnedMatrix::from_rows(&[vec![f32::NAN; 5]]).unwrap().view(), &[0.0]);
        assert_eq!(none.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [0; 5], "no rows: zeros");
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let widths = two.install(|| [1_000_000, 100_000, 10_000].map(wide_block));
        assert_eq!(widths, [WIDE_SUM_BLOCK, 12_512, SUM_BLOCK]);
    }

    /// The fused step is the weighted sum, the step on it rounded once, and `row_dists_to` of the
    /// result (and of the vector it is also asked to measure), to the bit, at any thread count;
    /// without `prev` it is the weighted sum itself.
    #[test]
    fn a_weighted_step_is_its_sum_and_the_distances_to_it() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let (n, d) = (SUM_ROWS + 4, 3 * COL_BLOCK + 5); // 19 rows in the sum: two tiles, of 10 and 9
        let mut rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect();
        rows[6][7] = f32::NAN; // a row with coefficient 0 stays out of the sum, and is infinitely far
        let mut c: Vec<f64> = (0..n).map(|i| if i == 6 { 0.0 } else { rng.random::<f64>() / n as f64 }).collect();
        // rows 1 (in the first tile) and n - 2 (in the second) cancel: the float64 sum's rounding,
        // visible in float32, depends on the order in which the rows are added
        let big: Vec<f32> = (0..d).map(|_| rng.random::<f32>() * 1e13).collect();
        rows[1] = big.clone();
        rows[n - 2] = big.iter().map(|v| -v).collect();
        c[n - 2] = c[1];
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let x = m.view();
        let prev: Vec<f32> = (0..d).map(|_| rng.random::<f32>()).collect();
        let keep = 1.0 - c.iter().sum::<f64>();
        let sum = weighted_sum(x, &c);
        // the tiles add the rows one by one, in order, as a plain loop does
        let row_by_row: Vec<f32> = (0..d)
            .map(|j| rows.iter().zip(&c).filter(|(_, &ci)| ci != 0.0).fold(0f64, |a, (r, &ci)| a + ci * r[j] as f64) as f32)
            .collect();
        let stepped: Vec<f32> = prev.iter().zip(&sum).map(|(&p, &s)| (keep * p as f64 + s as f64) as f32).collect();
        let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits32(&sum), bits32(&row_by_row));
        let zero_at_3: Vec<f64> = c.iter().enumerate().map(|(i, &v)| if i == 3 { 0.0 } else { v }).collect();
        let (sums, _) = sums_and_norms(x, &[&c, &zero_at_3]); // the round's pass: the same sum
        assert_eq!(bits32(&sums[0]), bits32(&row_by_row));
        assert_eq!(bits32(&sums[1]), bits32(&weighted_sum(x, &zero_at_3)));
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let step = pool.install(|| weighted_step(x, &c, Some((&prev, keep)), true, Some(&big)));
            let (z, dists) = (step.z, step.dists.unwrap());
            assert_eq!(bits32(&z), bits32(&stepped), "{threads} threads");
            assert_eq!(bits64(&dists), bits64(&row_dists_to(x, &z)), "{threads} threads");
            assert_eq!(bits64(&step.also.unwrap()), bits64(&row_dists_to(x, &big)), "{threads} threads");
            assert!(dists[6].is_nan() && dists.iter().enumerate().all(|(i, v)| i == 6 || v.is_finite()));
            let plain = pool.install(|| weighted_step(x, &c, None, false, None));
            assert_eq!((bits32(&plain.z), plain.dists, plain.also), (bits32(&sum), None, None));
        }
    }

    #[test]
    fn the_mean_of_listed_rows_is_the_mean_of_their_copy() {
        let rows: Vec<Vec<f32>> =
            (0..7).map(|i| (0..COL_BLOCK + 5).map(|j| ((i * 31 + j * 7) % 13) as f32 / 3.0 - 2.0).collect()).collect();
        let mut rows = rows;
        rows[2][3] = f32::NAN; // a row left out keeps its NaN out of the mean
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let (pick, w) = ([5usize, 0, 6, 3], [0.5, 2.0, 1.0, 0.25]);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let copied = weighted_mean(m.view().select_rows(&pick).view(), &w);
        assert_eq!(bits(weighted_mean_rows(m.view(), &pick, &w)), bits(copied.clone()));
        assert!(copied.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn weighted_mean_hand_case() {
        let m = OwnedMatrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 6.0]]).unwrap();
        assert_eq!(weighted_mean(m.view(), &[1.0, 3.0]), vec![2.5, 5.0]);
    }

    #[test]
    fn non_finite_rows_are_infinitely_far() {
        let m = OwnedMatrix::from_rows(&[vec![1.0, 2.0], vec![f32::NAN, 0.0], vec![1.0, 1.0]]).unwrap();
        let dd = pairwise_sq_dists(m.view());
        assert!(dd[1].is_infinite() && dd[5].is_infinite());
        assert_eq!(dd[2], 1.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Matrix::new(&[1.0, 2.0, 3.0], 2, 2).is_err());
        assert!(Matrix::new(&[], 0, 3).is_err());
    }
}
