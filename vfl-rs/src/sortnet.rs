//! Coordinate-wise order statistics for up to [`MAX_ROWS`] rows by sorting networks over blocks
//! of columns.
//!
//! Row i's values at [`LANES`] consecutive columns form one vector; a comparator of the network is
//! a lane-wise min and max of two rows' vectors, so a block of `LANES` columns is sorted at once,
//! with no branches, no transposition and every row read sequentially. The values are sorted as
//! `f32::total_cmp`'s integer keys (NaN above +inf, −0 below +0), the order every selection
//! kernel uses, and integer min/max is exact: the sorted block, and every sum taken over it in a
//! fixed order, are bit-identical whichever vector width the CPU offers (the code is compiled for
//! AVX-512, AVX2 and the baseline, chosen at run time).
//!
//! The network is Batcher's odd–even merge sort (K. E. Batcher, "Sorting networks and their
//! applications", AFIPS 1968) for the next power of two, with the comparators that touch a row
//! beyond `n` left out (as if those rows held +∞, which no comparator moves), and those that only
//! reorder values the rule reads as a set (`network_for`: the median reads one or two positions,
//! the trimmed mean a window's sum and its two ends). The network's first phases, which sort
//! aligned groups of 16 rows, run on rows held in vector registers (`group_network`); the merges
//! after them load and store two rows per comparator. A full sort (`Order::All`, which no
//! comparator can be left out of) merges the groups with reflected bitonic merges instead
//! (`merge_sort`), the last four stages of each merge in registers too.
//!
//! A window that leaves out only a few values at each end (a trimmed mean of 50 values without 5
//! at each end) is arranged without a network: the rows stream through a sorted list of the
//! largest values seen and one of the smallest, held in vector registers (`extremes`): a
//! quarter to a half of the network's time.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::matrix::{total_order_key, Matrix};
use crate::trace::{join_blocks, ShareCounter, Window};
use crate::widest::Capability;

/// The most rows the networks sort (a block of `MAX_ROWS × LANES` keys stays in the L1 cache).
pub const MAX_ROWS: usize = 128;
/// Columns sorted together: one comparator is `LANES` lane-wise minima and maxima.
pub const LANES: usize = 32;
/// Columns per parallel task (each row's part of it is read sequentially).
pub(crate) const TASK: usize = LANES * 8;

/// Batcher's odd–even merge sort for `n` values, as (low, high) position pairs: after the
/// comparators, in order, position i holds the i-th smallest value.
pub fn network(n: usize) -> Vec<(u16, u16)> {
    let size = n.next_power_of_two();
    let mut pairs = Vec::new();
    let mut p = 1;
    while p < size {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < size {
                for i in 0..k.min(size - j - k) {
                    let (a, b) = (i + j, i + j + k);
                    if a / (2 * p) == b / (2 * p) && b < n {
                        pairs.push((a as u16, b as u16));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    pairs
}

/// How much of the sorted order a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Every position sorted.
    All,
    /// The window `lo..hi` (`lo < hi`): positions `lo` and `hi − 1` hold the sorted values there,
    /// the positions between them the values sorted between them in an order that depends on the
    /// values only (the same at every vector width), and the positions outside the window the
    /// rest.
    Window(usize, usize),
    /// The values of the window `lo..hi` (`lo < hi`) at its positions, in an order that depends
    /// on the values only (the same at every vector width), the rest outside it: for a rule that
    /// reads the window as a set, such as a sum, and needs neither end in place.
    Middle(usize, usize),
}

/// `network(n)` less the comparators that would only reorder values the rule reads as a set:
/// going backwards, a comparator is left out when both its positions are in the same part
/// (outside the window; inside it, or for `Order::Window` strictly between its ends) and no
/// comparator kept after it touches them. Each left-out comparator would then run after every
/// kept one on its positions, so the left-out ones together only permute values within a part:
/// the window's ends (where asked) and each part's values are the full sort's. (Of the 403
/// comparators for 50 values, the window 5..45 keeps 331 with its ends, 316 without.)
pub fn network_for(n: usize, order: Order) -> Vec<(u16, u16)> {
    let full = network(n);
    let (lo, hi, ends) = match order {
        Order::All => return full,
        Order::Window(lo, hi) => (lo, hi, true),
        Order::Middle(lo, hi) => (lo, hi, false),
    };
    assert!(lo < hi && hi <= n, "a window inside 0..{n}, got {lo}..{hi}");
    // 0: outside the window, 1: inside it (strictly between its ends), 2 + i: an end (a part of
    // its own)
    let part = |i: usize| match i {
        _ if ends && (i == lo || i == hi - 1) => 2 + i,
        _ if i >= lo && i < hi => 1,
        _ => 0,
    };
    let mut touched = vec![false; n];
    let mut kept: Vec<(u16, u16)> = full
        .into_iter()
        .rev()
        .filter(|&(a, b)| {
            let (a, b) = (a as usize, b as usize);
            let drop = part(a) == part(b) && !touched[a] && !touched[b];
            if !drop {
                (touched[a], touched[b]) = (true, true);
            }
            !drop
        })
        .collect();
    kept.reverse();
    kept
}

/// The longest list `extremes` keeps at each end of a window (one that leaves out up to
/// `MAX_EXTREMES` values at each end, or `MAX_EXTREMES − 1` with its ends in place): 2 × 9 lists
/// of one vector each, plus the row in flight, stay in AVX-512's 32 vector registers.
const MAX_EXTREMES: usize = 9;

/// How a block's columns are put in the [`Order`] a rule reads.
#[derive(Clone, Debug)]
pub enum Arrangement {
    /// The comparators of `network_for`, in order: those of its first phases within each of the
    /// first `groups` aligned groups of 16 rows (Batcher's network for 16 values: the
    /// same comparators) in registers, the rest (`pairs`) through memory.
    Network { groups: usize, pairs: Vec<(u16, u16)> },
    /// `extremes` with lists of `k` values: the window `k..n − k` (`Order::Middle`), which is also
    /// the window `k − 1..n − k + 1` with its ends in place (`Order::Window`).
    Extremes { k: usize },
    /// A full sort (`Order::All`) by `merge_sort`: most of its comparators in registers. `short`:
    /// the comparators for the short last group of `n mod 16` rows (`network16`'s, then
    /// `merge_tail16`'s), through memory.
    Merges { short: [Vec<(u16, u16)>; 2] },
}

impl Arrangement {
    /// The cheaper way to `order` `n` values: `merge_sort` for a full sort (Meamed at 50 × 1M: 23–25
    /// ms against 32–35 through Batcher's network); `extremes` for a window with as many values
    /// left out at each end (lists of k = that many values for `Order::Middle`, one more for
    /// `Order::Window`'s ends) when its k·(2n − k) steps in registers cost less than the
    /// network's comparators, each of which loads and stores two rows (measured at about four
    /// times a step); else the pruned network.
    pub fn for_order(n: usize, order: Order) -> Self {
        let (k, symmetric) = match order {
            Order::All => {
                let rest = n % GROUP;
                let tail = merge_tail_pairs().into_iter().filter(|&(_, b)| (b as usize) < rest).collect();
                return Arrangement::Merges { short: [network(rest), tail] };
            }
            Order::Window(lo, hi) => (lo + 1, lo == n - hi),
            Order::Middle(lo, hi) => (lo, lo == n - hi),
        };
        let pairs = network_for(n, order);
        if symmetric && k >= 1 && n >= 2 * k && k <= MAX_EXTREMES && k * (2 * n - k) <= 4 * pairs.len() {
            return Arrangement::Extremes { k };
        }
        let (groups, pairs) = in_groups(n, pairs);
        Arrangement::Network { groups, pairs }
    }

    /// Arrange one block's columns (`keys.len()` = the `n` this arrangement was made for),
    /// the comparators held in registers in the vectors of `arch` (those in use).
    #[inline(always)]
    fn apply(&self, keys: &mut [[i32; LANES]], arch: pulp::Arch) {
        match *self {
            Arrangement::Network { groups, ref pairs } => {
                arch.dispatch(SortGroups { keys: &mut keys[..groups * GROUP] });
                sort(keys, pairs)
            }
            Arrangement::Extremes { k } => arch.dispatch(Extremes { keys, k, source: None }),
            Arrangement::Merges { ref short } => arch.dispatch(MergeSort { keys, short }),
        }
    }
}

/// Where `extremes` reads a block instead of its keys: columns `c0..c0 + LANES` of the listed
/// rows of `x`. As it reads a row, it asks for the columns `ahead` (the same block of the next
/// task) of that row to be brought into the L2 cache.
#[derive(Clone, Copy)]
struct Source<'a> {
    x: Matrix<'a>,
    rows: &'a [usize],
    c0: usize,
    ahead: (usize, usize),
}

/// `extremes` for the list length `k`, in the vectors of the dispatching `pulp::Arch`.
struct Extremes<'a> {
    keys: &'a mut [[i32; LANES]],
    k: usize,
    /// Where to read the block when not from `keys` (see `extremes`).
    source: Option<Source<'a>>,
}

impl WithSimd for Extremes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let keys = self.keys;
        match self.k {
            1 => extremes::<S, 1>(simd, keys, self.source),
            2 => extremes::<S, 2>(simd, keys, self.source),
            3 => extremes::<S, 3>(simd, keys, self.source),
            4 => extremes::<S, 4>(simd, keys, self.source),
            5 => extremes::<S, 5>(simd, keys, self.source),
            6 => extremes::<S, 6>(simd, keys, self.source),
            7 => extremes::<S, 7>(simd, keys, self.source),
            8 => extremes::<S, 8>(simd, keys, self.source),
            9 => extremes::<S, 9>(simd, keys, self.source),
            k => unreachable!("lists of 1 to {MAX_EXTREMES} values, got {k}"),
        }
    }
}

/// Arrange every column of a block (n ≥ 2K rows): its K smallest values ascending at positions
/// `0..K`, its K largest descending from the last position, and the values between them at
/// positions `K..n − K` in the order `bottom` lets them go (which depends on the values only).
/// That is the window `K..n − K` (`Order::Middle`), and the window `K − 1..n − K + 1` with its
/// ends at `K − 1` and `n − K` (`Order::Window`).
///
/// The rows pass, one vector of columns at a time, through `top`, the K largest values seen so
/// far (descending), and what `top` lets go passes through `bottom`, the K smallest of those
/// (ascending); each insertion is K lane-wise max/min steps, all in registers. `top` ends with
/// the K largest values, `bottom` with the K smallest of the rest; what `bottom` lets go is the
/// rest. The lists start full of sentinels (the smallest key in `top`, the largest in
/// `bottom`), which are the first K values each lets go: those are dropped, so the block's values
/// are kept as a multiset whatever they are.
///
/// With a [`Source`], the block is read from the rows themselves instead, turned into keys on the
/// way (`keys` is then only written): the untraced kernels skip gathering the block. Each row
/// read also asks for the source's `ahead` columns of that row: asked for all at once before the
/// block, as the gathering kernels do, the requests stalled the stream (a quarter of the task's
/// samples sat on the instruction after a prefetch).
#[inline(always)]
fn extremes<S: Simd, const K: usize>(simd: S, keys: &mut [[i32; LANES]], source: Option<Source>) {
    const { assert!(K >= 1) };
    let n = keys.len();
    let (zero, low31) = (simd.splat_i32s(0), simd.splat_i32s(i32::MAX));
    debug_assert!(n >= 2 * K, "{n} rows cannot hold two lists of {K}");
    let width = S::I32_LANES;
    debug_assert_eq!(LANES % width, 0);
    for v in 0..LANES / width {
        let mut top = [simd.splat_i32s(i32::MIN); K];
        let mut bottom = [simd.splat_i32s(i32::MAX); K];
        for r in 0..n {
            let mut x = match source {
                None => S::as_simd_i32s(&keys[r]).0[v],
                Some(Source { x, rows, c0, ahead: (p0, p1) }) => {
                    let row = x.row(rows[r]);
                    if v == 0 && p0 < p1 {
                        prefetch_l2(&row[p0..p1]);
                    }
                    let bits = S::as_simd_i32s(bytemuck::cast_slice(&row[c0..c0 + LANES])).0[v];
                    // total_order_key: a negative value's other 31 bits flipped
                    simd.select_i32s(simd.less_than_i32s(bits, zero), simd.xor_i32s(bits, low31), bits)
                }
            };
            for t in &mut top {
                (*t, x) = (simd.max_i32s(*t, x), simd.min_i32s(*t, x));
            }
            if r >= K {
                for b in &mut bottom {
                    (*b, x) = (simd.min_i32s(*b, x), simd.max_i32s(*b, x));
                }
                if r >= 2 * K {
                    // the (r − 2K)-th value between the ends, to position K + (r − 2K), read already
                    S::as_mut_simd_i32s(&mut keys[r - K]).0[v] = x;
                }
            }
        }
        for i in 0..K {
            S::as_mut_simd_i32s(&mut keys[i]).0[v] = bottom[i];
            S::as_mut_simd_i32s(&mut keys[n - 1 - i]).0[v] = top[i];
        }
    }
}

/// A block of up to `LANES` columns, each sorted as far as the rule's [`Order`] asks: `keys[r][l]`
/// is the key of the r-th smallest value of the block's column l (lanes beyond the block's width
/// hold zeros).
pub struct SortedBlock<'a> {
    keys: &'a [[i32; LANES]],
    arch: pulp::Arch,
}

impl SortedBlock<'_> {
    /// The value at position r of column `lane`: the r-th smallest where the rule's order asks it
    /// sorted.
    #[inline(always)]
    pub fn value(&self, r: usize, lane: usize) -> f32 {
        key_value(self.keys[r][lane])
    }

    /// The values at position r of every column.
    #[inline(always)]
    pub fn values(&self, r: usize) -> [f32; LANES] {
        let mut v = [0f32; LANES];
        for (v, &k) in v.iter_mut().zip(&self.keys[r]) {
            *v = key_value(k);
        }
        v
    }

    /// The total-order keys at position r of every column (`f32::total_cmp`'s order as `i32`).
    #[inline(always)]
    pub fn keys(&self, r: usize) -> &[i32; LANES] {
        &self.keys[r]
    }

    /// Per lane, how many positions hold a key below `bound`'s. (In explicit vectors: left to
    /// itself, the compiler counts across the rows instead, eight at a time, with gathers.)
    #[inline(always)]
    pub fn count_below(&self, bound: &[i32; LANES]) -> [u32; LANES] {
        self.arch.dispatch(CountBelow { keys: self.keys, bound })
    }

    /// Per lane, the sum in f64 of the positions `lo..hi`, added in position order (ascending
    /// where the arrangement sorts them). It starts from −0, as `Iterator::sum` does, so a column of
    /// −0 sums to −0.
    #[inline(always)]
    pub fn sums(&self, lo: usize, hi: usize) -> [f64; LANES] {
        let mut acc = [-0f64; LANES];
        for row in &self.keys[lo..hi] {
            for (a, &k) in acc.iter_mut().zip(row) {
                *a += key_value(k) as f64;
            }
        }
        acc
    }

    /// The rows: values per column.
    pub fn n(&self) -> usize {
        self.keys.len()
    }
}

/// `SortedBlock::count_below` in the vectors of the `Simd` it is given.
struct CountBelow<'a> {
    keys: &'a [[i32; LANES]],
    bound: &'a [i32; LANES],
}

impl WithSimd for CountBelow<'_> {
    type Output = [u32; LANES];

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> [u32; LANES] {
        let mut count = [0u32; LANES];
        let (one, zero) = (simd.splat_u32s(1), simd.splat_u32s(0));
        for v in 0..LANES / S::I32_LANES {
            let bound = S::as_simd_i32s(self.bound).0[v];
            let mut c = zero;
            for row in self.keys {
                let below = simd.less_than_i32s(S::as_simd_i32s(row).0[v], bound);
                c = simd.add_u32s(c, simd.select_u32s(below, one, zero));
            }
            S::as_mut_simd_u32s(&mut count).0[v] = c;
        }
        count
    }
}

#[inline(always)]
fn key_value(k: i32) -> f32 {
    f32::from_bits(total_order_key(k) as u32)
}

/// A coordinate-wise rule over sorted columns.
pub trait SortedRule: Sync {
    /// How much of the sorted order of `n` values `apply` reads: the network leaves out the
    /// comparators it does not need. (A traced run finds each lane's window's ends itself.)
    fn order(&self, n: usize) -> Order;

    /// Given a sorted block, write each column's output to `out` (one per column of the block)
    /// and the sorted positions `lo..hi` the output averages to `windows` (what the traced
    /// kernels count each row's share by). Implementations are `#[inline(always)]`, so that they
    /// are compiled into the kernel's vector width.
    fn apply(&self, block: &SortedBlock, out: &mut [f32], windows: &mut [(usize, usize)]);
}

/// Apply `rule` to every column of `x` (`x.n() <= MAX_ROWS`).
pub fn map_sorted<F: SortedRule>(x: Matrix, rule: F) -> Vec<f32> {
    map_sorted_rows(x, &all_rows(x), rule, false).0
}

/// Apply `rule` to every column and, in the same pass, count each row's share of the output as
/// [`crate::trace::map_columns_traced`] does (the outputs are `map_sorted`'s to the bit). The
/// round's books are not kept here: this pass is bound by its comparisons, not its reads, so a
/// separate pass over the rows costs no more.
pub fn map_sorted_traced<F: SortedRule>(x: Matrix, rule: F) -> (Vec<f32>, Vec<f64>) {
    run(x, &all_rows(x), &rule, true)
}

fn all_rows(x: Matrix) -> Vec<usize> {
    (0..x.n()).collect()
}

/// `map_sorted` (with `trace`, `map_sorted_traced`) of the matrix made of the listed rows of `x`,
/// read in place; the shares are per listed row.
pub fn map_sorted_rows<F: SortedRule>(x: Matrix, rows: &[usize], rule: F, trace: bool) -> (Vec<f32>, Option<Vec<f64>>) {
    let (out, share) = run(x, rows, &rule, trace);
    (out, trace.then_some(share))
}

fn run<F: SortedRule>(x: Matrix, rows: &[usize], rule: &F, trace: bool) -> (Vec<f32>, Vec<f64>) {
    let (n, d) = (rows.len(), x.d());
    assert!(n <= MAX_ROWS, "sorting networks take at most {MAX_ROWS} rows, got {n}");
    let plan = Arrangement::for_order(n, rule.order(n));
    let mut out = vec![0f32; d];
    let parts: Vec<Vec<f64>> = out
        .par_chunks_mut(TASK)
        .enumerate()
        .map(|(t, out_task)| {
            let mut counter = trace.then(|| ShareCounter::new(n));
            dispatch(x, rows, t * TASK, out_task, &plan, rule, counter.as_mut());
            counter.map_or_else(Vec::new, ShareCounter::finish)
        })
        .collect();
    let (share, _) = join_blocks(parts.into_iter().map(|p| (p, None)).collect(), n, d, false);
    (out, share)
}

widest_vectors!(
    /// The task in code compiled for the widest vectors this CPU has (integer min/max and sums in
    /// a fixed order give the same bits at every width).
    fn dispatch<F: SortedRule>(
        x: Matrix,
        rows: &[usize],
        c0: usize,
        out: &mut [f32],
        plan: &Arrangement,
        rule: &F,
        acc: Option<&mut ShareCounter>,
    ) = task, avx512 = task_avx512, avx2 = task_avx2
);

/// Columns `c0..c0 + out.len()` of the listed rows: gathered as keys (each row's part read in
/// one sequential run; untraced `extremes` read full blocks from the rows themselves), arranged
/// block by block, handed to the rule; with `acc`, each listed row's share added to its counter.
#[inline(always)]
fn task<F: SortedRule>(
    x: Matrix,
    rows: &[usize],
    c0: usize,
    out: &mut [f32],
    plan: &Arrangement,
    rule: &F,
    acc: Option<&mut ShareCounter>,
) {
    let n = rows.len();
    // the vectors in use (the widest this CPU has unless capped), for the arrangement and the rule
    let arch = Capability::arch();
    // The next task's part of each row on its way to the L2 cache while this one is arranged (a
    // row's part of a task is a short run that the hardware's prefetchers do not foresee), a
    // block's worth with each block: asked all at once, most requests were lost.
    let (next, end) = (c0 + out.len(), (c0 + out.len() + TASK).min(x.d()));
    let ahead = |b: usize| (next + b * LANES, (next + (b + 1) * LANES).min(end));
    let prefetch_block = |b: usize| {
        let (p0, p1) = ahead(b);
        if p0 < p1 {
            for &source in rows {
                prefetch_l2(&x.row(source)[p0..p1]);
            }
        }
    };
    let mut windows = [(0usize, 0usize); LANES];
    if let (None, &Arrangement::Extremes { k }, 0) = (&acc, plan, out.len() % LANES) {
        // untraced and streamed: each block read straight from the rows, no gathered copy
        let mut block = vec![[0i32; LANES]; n];
        for (b, out_blk) in out.chunks_mut(LANES).enumerate() {
            arch.dispatch(Extremes { keys: &mut block, k, source: Some(Source { x, rows, c0: c0 + b * LANES, ahead: ahead(b) }) });
            rule.apply(&SortedBlock { keys: &block, arch }, out_blk, &mut windows[..out_blk.len()]);
        }
        return;
    }
    // keys[b·n + r] = listed row r's keys at block b's columns
    let mut keys = vec![[0i32; LANES]; out.len().div_ceil(LANES) * n];
    for (r, &source) in rows.iter().enumerate() {
        let row = &x.row(source)[c0..c0 + out.len()];
        for (b, chunk) in row.chunks(LANES).enumerate() {
            let dst = &mut keys[b * n + r];
            for (k, &v) in dst.iter_mut().zip(chunk) {
                *k = total_order_key(v.to_bits() as i32);
            }
        }
    }
    let Some(acc) = acc else {
        // untraced: each block arranged where it was gathered
        for (b, (keys, out_blk)) in keys.chunks_exact_mut(n).zip(out.chunks_mut(LANES)).enumerate() {
            prefetch_block(b);
            plan.apply(keys, arch);
            rule.apply(&SortedBlock { keys, arch }, out_blk, &mut windows[..out_blk.len()]);
        }
        return;
    };
    // traced: the counts read the unsorted block too
    let mut column = vec![0f32; n];
    let mut sorted = vec![[0i32; LANES]; n];
    for (b, (unsorted, out_blk)) in keys.chunks_exact(n).zip(out.chunks_mut(LANES)).enumerate() {
        prefetch_block(b);
        sorted.copy_from_slice(unsorted);
        plan.apply(&mut sorted, arch);
        let block = SortedBlock { keys: &sorted, arch };
        rule.apply(&block, out_blk, &mut windows[..out_blk.len()]);
        count_block(acc, unsorted, &block, &windows[..out_blk.len()], out_blk, &mut column);
    }
}

/// Ask for the cache lines that hold `values` to be brought into the L2 cache: a hint, and
/// nothing on an architecture other than x86-64. Every line the slice touches, the partial ones
/// at its ends included (rows need not start on a line: numpy's buffers are 16 bytes past one).
#[inline(always)]
fn prefetch_l2(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        const LINE: usize = 64;
        let start = values.as_ptr().cast::<u8>();
        let skew = start as usize % LINE;
        let mut offset = 0;
        while offset < skew + std::mem::size_of_val(values) {
            // SAFETY: a prefetch never faults, whatever the address (and this one is computed with
            // wrapping arithmetic, never dereferenced).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(start.wrapping_sub(skew).wrapping_add(offset).cast());
            }
            offset += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// Each row's part of a block's windows, as `ShareCounter::add` counts them column by column,
/// but all lanes at once on the keys: per lane, how many keys lie below its window's low end and
/// up to its high end says whether a tie straddles an end; where none does (always so for
/// distinct values), each row counts the lanes whose window holds its key. The other lanes, and
/// windows of another size than the counter's, go column by column.
#[inline(always)]
fn count_block(
    counter: &mut ShareCounter,
    unsorted: &[[i32; LANES]],
    sorted: &SortedBlock,
    windows: &[(usize, usize)],
    values: &[f32],
    column: &mut [f32],
) {
    // each window's ends: its least and greatest keys (an order may leave them anywhere in it),
    // all lanes at once, row by row
    let (mut end_lo, mut end_hi) = ([i32::MAX; LANES], [i32::MIN; LANES]);
    let (mut lo, mut hi) = ([0usize; LANES], [0usize; LANES]);
    for (lane, &w) in windows.iter().enumerate() {
        (lo[lane], hi[lane]) = w;
    }
    let (first, last) = (windows.iter().map(|w| w.0).min().unwrap_or(0), windows.iter().map(|w| w.1).max().unwrap_or(0));
    for (r, row) in sorted.keys.iter().enumerate().take(last).skip(first) {
        for l in 0..LANES {
            let inside = r >= lo[l] && r < hi[l];
            end_lo[l] = if inside { end_lo[l].min(row[l]) } else { end_lo[l] };
            end_hi[l] = if inside { end_hi[l].max(row[l]) } else { end_hi[l] };
        }
    }
    // an empty range (no key is ≥ MAX and ≤ MIN) for the lanes not counted here
    let (mut k_lo, mut k_hi) = ([i32::MAX; LANES], [i32::MIN; LANES]);
    for (lane, &(lo, hi)) in windows.iter().enumerate() {
        if counter.claim((hi - lo).max(1)) && hi > lo {
            (k_lo[lane], k_hi[lane]) = (end_lo[lane], end_hi[lane]);
        }
    }
    let (mut below_lo, mut up_to_hi) = ([0u32; LANES], [0u32; LANES]);
    for row in unsorted {
        for l in 0..LANES {
            below_lo[l] += u32::from(row[l] < k_lo[l]);
            up_to_hi[l] += u32::from(row[l] <= k_hi[l]);
        }
    }
    let mut by_column = [false; LANES];
    for (lane, &(lo, hi)) in windows.iter().enumerate() {
        if k_lo[lane] > k_hi[lane] || below_lo[lane] as usize != lo || up_to_hi[lane] as usize != hi {
            (by_column[lane], k_lo[lane], k_hi[lane]) = (true, i32::MAX, i32::MIN);
        }
    }
    for (c, row) in counter.counts().iter_mut().zip(unsorted) {
        let mut inside = 0u32;
        for l in 0..LANES {
            inside += u32::from(row[l] >= k_lo[l] && row[l] <= k_hi[l]);
        }
        *c += inside;
    }
    for (lane, (&value, &(lo, hi))) in values.iter().zip(windows).enumerate() {
        if by_column[lane] {
            column.iter_mut().zip(unsorted).for_each(|(c, k)| *c = key_value(k[lane]));
            let (at_lo, at_hi) = if hi > lo { (key_value(end_lo[lane]), key_value(end_hi[lane])) } else { (f32::NAN, f32::NAN) };
            counter.add(column, &Window { value, lo, hi, at_lo, at_hi });
        }
    }
}

/// Rows sorted together in registers by [`group_network`].
const GROUP: usize = 16;

/// `network(GROUP)`, written out: constant positions let the compiler keep the group's rows in
/// registers (tested equal to `network(16)`).
macro_rules! network16 {
    ($apply:ident) => {
        $apply!(
            (0, 1),
            (2, 3),
            (4, 5),
            (6, 7),
            (8, 9),
            (10, 11),
            (12, 13),
            (14, 15),
            (0, 2),
            (1, 3),
            (4, 6),
            (5, 7),
            (8, 10),
            (9, 11),
            (12, 14),
            (13, 15),
            (1, 2),
            (5, 6),
            (9, 10),
            (13, 14),
            (0, 4),
            (1, 5),
            (2, 6),
            (3, 7),
            (8, 12),
            (9, 13),
            (10, 14),
            (11, 15),
            (2, 4),
            (3, 5),
            (10, 12),
            (11, 13),
            (1, 2),
            (3, 4),
            (5, 6),
            (9, 10),
            (11, 12),
            (13, 14),
            (0, 8),
            (1, 9),
            (2, 10),
            (3, 11),
            (4, 12),
            (5, 13),
            (6, 14),
            (7, 15),
            (4, 8),
            (5, 9),
            (6, 10),
            (7, 11),
            (2, 4),
            (3, 5),
            (6, 8),
            (7, 9),
            (10, 12),
            (11, 13),
            (1, 2),
            (3, 4),
            (5, 6),
            (7, 8),
            (9, 10),
            (11, 12),
            (13, 14)
        )
    };
}

/// Split `pairs` for [`Arrangement::Network`]. The network's first phases (the longest start of
/// the list within aligned groups of [`GROUP`] rows) sort each full group exactly as
/// `network(GROUP)` does, unless pruning left one of their comparators out. Returns how many full
/// groups to sort in registers and the comparators left, in order (a partial last group's
/// included); comparators on other rows commute with a group's, so the groups first and the rest
/// after give the same block. With a group pruned: no groups, every comparator.
fn in_groups(n: usize, pairs: Vec<(u16, u16)>) -> (usize, Vec<(u16, u16)>) {
    let groups = n / GROUP;
    let front = pairs.iter().take_while(|&&(a, b)| a as usize / GROUP == b as usize / GROUP).count();
    let whole = network(GROUP);
    for g in 0..groups {
        let base = (g * GROUP) as u16;
        let mine: Vec<(u16, u16)> =
            pairs[..front].iter().filter(|&&(a, _)| a as usize / GROUP == g).map(|&(a, b)| (a - base, b - base)).collect();
        if mine != whole {
            return (0, pairs);
        }
    }
    let rest = pairs.iter().enumerate().filter(|&(i, &(a, _))| i >= front || a as usize / GROUP >= groups).map(|(_, &p)| p).collect();
    (groups, rest)
}

/// `network(GROUP)` on each aligned group of `GROUP` rows of `keys` (whole groups only), in
/// registers, in the vectors of the CPU it runs on.
struct SortGroups<'a> {
    keys: &'a mut [[i32; LANES]],
}

impl WithSimd for SortGroups<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        debug_assert!(self.keys.len().is_multiple_of(GROUP));
        sort_groups::<S, false>(simd, self.keys, &[]);
    }
}

/// The comparators of the last four stages of a merge in `merge_sort` on an aligned group of
/// `GROUP` rows: each row against the one 8, then 4, 2 and 1 rows below it in its half of 16, 8, 4
/// and 2 rows.
macro_rules! merge_tail16 {
    ($apply:ident) => {
        $apply!(
            (0, 8),
            (1, 9),
            (2, 10),
            (3, 11),
            (4, 12),
            (5, 13),
            (6, 14),
            (7, 15),
            (0, 4),
            (1, 5),
            (2, 6),
            (3, 7),
            (8, 12),
            (9, 13),
            (10, 14),
            (11, 15),
            (0, 2),
            (1, 3),
            (4, 6),
            (5, 7),
            (8, 10),
            (9, 11),
            (12, 14),
            (13, 15),
            (0, 1),
            (2, 3),
            (4, 5),
            (6, 7),
            (8, 9),
            (10, 11),
            (12, 13),
            (14, 15)
        )
    };
}

/// `merge_tail16`'s comparators, in order.
fn merge_tail_pairs() -> Vec<(u16, u16)> {
    let mut pairs = Vec::new();
    macro_rules! collect {
        ($(($a:literal, $b:literal)),*) => {
            $(pairs.push(($a, $b));)*
        };
    }
    merge_tail16!(collect);
    pairs
}

/// Sort every lane of a block: the aligned groups of [`GROUP`] rows in registers (`group_network`),
/// then merged pairwise, 16 + 16 rows, 32 + 32 and so on. A merge of two sorted halves of `w`
/// rows is Batcher's bitonic merge with its first stage reflected (each row of the first half
/// against its mirror in the second, which then needs no reversing; K. E. Batcher, AFIPS 1968),
/// then rows `k` apart within halves of `2k` rows for k = w/2, …, 1: the stages with k < 16 act
/// within aligned groups of 16 rows, four stages at once in registers (`merge_tail16`); only the
/// reflection and the stages with k ≥ 16 load and store two rows per comparator (50 rows: 54
/// of them against Batcher's merge exchange's 214). Rows past the block's end count as +∞: every
/// comparator sorts upwards, so one that reaches them moves nothing, and is left out. A sort's
/// result is the same whatever network makes it: each lane's keys in ascending order.
#[inline(always)]
fn merge_sort<S: Simd>(simd: S, keys: &mut [[i32; LANES]], short: &[Vec<(u16, u16)>; 2]) {
    let n = keys.len();
    sort_groups::<S, false>(simd, keys, &short[0]);
    let mut w = GROUP;
    while w < n {
        for part in keys.chunks_mut(2 * w).filter(|p| p.len() > w) {
            let len = part.len();
            for i in (2 * w).saturating_sub(len)..w {
                compare(part, i, 2 * w - 1 - i);
            }
            let mut k = w / 2;
            while k >= GROUP {
                for i in (0..len - k).filter(|i| i % (2 * k) < k) {
                    compare(part, i, i + k);
                }
                k /= 2;
            }
            sort_groups::<S, true>(simd, part, &short[1]);
        }
        w *= 2;
    }
}

/// `group_network::<S, MERGE>` on each aligned group of [`GROUP`] rows of `keys` in registers,
/// and the comparators `short` (made for its length) on a shorter last group, through memory.
#[inline(always)]
fn sort_groups<S: Simd, const MERGE: bool>(simd: S, keys: &mut [[i32; LANES]], short: &[(u16, u16)]) {
    for group in keys.chunks_mut(GROUP) {
        match group.len() {
            GROUP => group_network::<S, MERGE>(simd, group.try_into().expect("a full group")),
            _ => sort(group, short),
        }
    }
}

/// `merge_sort` in the vectors of the CPU it runs on.
struct MergeSort<'a> {
    keys: &'a mut [[i32; LANES]],
    short: &'a [Vec<(u16, u16)>; 2],
}

impl WithSimd for MergeSort<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        merge_sort(simd, self.keys, self.short)
    }
}

/// `network16` (or, with `MERGE`, `merge_tail16`) on a group of `GROUP` rows, one vector of
/// each row at a time held in registers, instead of a load and a store per comparator. (In
/// explicit vectors: the compiler turned some copies of an autovectorised version into scalar
/// code.)
#[inline(always)]
fn group_network<S: Simd, const MERGE: bool>(simd: S, group: &mut [[i32; LANES]; GROUP]) {
    for v in 0..LANES / S::I32_LANES {
        let mut r: [S::i32s; GROUP] = std::array::from_fn(|i| S::as_simd_i32s(&group[i]).0[v]);
        macro_rules! apply {
            ($(($a:literal, $b:literal)),*) => {
                $(
                    (r[$a], r[$b]) = (simd.min_i32s(r[$a], r[$b]), simd.max_i32s(r[$a], r[$b]));
                )*
            };
        }
        if MERGE {
            merge_tail16!(apply);
        } else {
            network16!(apply);
        }
        for i in 0..GROUP {
            S::as_mut_simd_i32s(&mut group[i]).0[v] = r[i];
        }
    }
}

/// One comparator through memory: rows `a < b` leave with the lane-wise minimum in `a`.
#[inline(always)]
fn compare(keys: &mut [[i32; LANES]], a: usize, b: usize) {
    let (p, q) = (keys[a], keys[b]);
    keys[a] = std::array::from_fn(|l| p[l].min(q[l]));
    keys[b] = std::array::from_fn(|l| p[l].max(q[l]));
}

/// Run the network over the rows of a block: every lane (column) ends sorted as far as the
/// network sorts. (Rows copied by value: faster than two borrows of the block, which may alias.)
#[inline(always)]
fn sort(keys: &mut [[i32; LANES]], pairs: &[(u16, u16)]) {
    for &(a, b) in pairs {
        compare(keys, a as usize, b as usize);
    }
}

/// The median of every column (the mean of the two middle values for an even `n`, computed as
/// `crate::rules::median::coordinate_median` does), and the window it averages.
pub struct MedianRule;

impl SortedRule for MedianRule {
    fn order(&self, n: usize) -> Order {
        let (lo, hi) = crate::rules::median::median_window(n);
        Order::Window(lo, hi)
    }

    #[inline(always)]
    fn apply(&self, block: &SortedBlock, out: &mut [f32], windows: &mut [(usize, usize)]) {
        let n = block.n();
        let k = n / 2;
        for (lane, (o, w)) in out.iter_mut().zip(windows.iter_mut()).enumerate() {
            let mid = block.value(k, lane);
            *o = if n % 2 == 1 { mid } else { ((block.value(k - 1, lane) as f64 + mid as f64) / 2.0) as f32 };
            *w = crate::rules::median::median_window(n);
        }
    }
}

/// The mean of every column without its `trim` smallest and `trim` largest values, and the
/// window it averages; the window's values are summed in the order the block's arrangement
/// leaves them in (one that depends on the values only). The caller guarantees `n > 2·trim`.
pub struct TrimmedRule(pub usize);

impl SortedRule for TrimmedRule {
    fn order(&self, n: usize) -> Order {
        Order::Middle(self.0, n - self.0)
    }

    #[inline(always)]
    fn apply(&self, block: &SortedBlock, out: &mut [f32], windows: &mut [(usize, usize)]) {
        let (lo, hi) = (self.0, block.n() - self.0);
        let sums = block.sums(lo, hi);
        let keep = (hi - lo) as f64;
        for ((o, w), s) in out.iter_mut().zip(windows.iter_mut()).zip(sums) {
            *o = (s / keep) as f32;
            *w = (lo, hi);
        }
    }
}

/// `rule` on every column of `x` (`x.d()` above [`TASK`]: one task of full blocks, then one
/// ending in a partial block) in the code compiled for each vector width this CPU has: per width,
/// the values' bits and the shares' bits, after checking that untraced runs give the traced runs'
/// values (where `extremes` reads the rows themselves, and the gathered keys).
#[cfg(test)]
pub(crate) fn at_every_width<F: SortedRule>(x: Matrix, rule: &F) -> Vec<(Vec<u32>, Vec<u64>)> {
    let (n, d) = (x.n(), x.d());
    assert!(d > TASK);
    let all = all_rows(x);
    let plan = Arrangement::for_order(n, rule.order(n));
    let columns = [0..TASK, TASK..d];
    [0, 1, 2]
        .iter()
        .filter_map(|&isa| {
            let mut acc = ShareCounter::new(n);
            let (mut traced, mut untraced) = (vec![0f32; d], vec![0f32; d]);
            for range in columns.clone() {
                let c0 = range.start;
                for (out, acc) in [(&mut traced[range.clone()], Some(&mut acc)), (&mut untraced[range.clone()], None)] {
                    match isa {
                        0 => task(x, &all, c0, out, &plan, rule, acc),
                        #[cfg(target_arch = "x86_64")]
                        1 if Capability::detected() >= Capability::Avx2 => unsafe { task_avx2(x, &all, c0, out, &plan, rule, acc) },
                        #[cfg(target_arch = "x86_64")]
                        2 if Capability::detected() >= Capability::Avx512 => unsafe { task_avx512(x, &all, c0, out, &plan, rule, acc) },
                        _ => return None,
                    }
                }
            }
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&untraced), bits(&traced), "n = {n}, width {isa}: untraced and traced values differ");
            let share = acc.finish().iter().map(|v| v.to_bits()).collect();
            Some((bits(&traced), share))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 0–1 principle: a comparator network sorts every input if it sorts every 0/1 input.
    #[test]
    fn the_networks_sort_every_zero_one_input_up_to_sixteen() {
        for n in 1..=16usize {
            let pairs = network(n);
            for bits in 0u32..(1 << n) {
                let mut v: Vec<u8> = (0..n).map(|i| ((bits >> i) & 1) as u8).collect();
                for &(a, b) in &pairs {
                    let (a, b) = (a as usize, b as usize);
                    if v[a] > v[b] {
                        v.swap(a, b);
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n = {n}, input {bits:b}");
            }
        }
    }

    /// The code compiled for each vector width this CPU has gives the same bits (NaN aside: a
    /// sum with NaN terms may give either sign of NaN) and the same shares, for a window the
    /// network arranges and one `extremes` does; untraced (where `extremes` reads the rows
    /// themselves) the same values as traced (where it reads the gathered keys).
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        use crate::matrix::OwnedMatrix;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, trim) in [(3usize, 0usize), (50, 12), (50, 5), (128, 32), (128, 8)] {
            let d = 2 * TASK + 7;
            // some of each sign, ±0 and ±inf among them (their keys flip the low bits or not)
            let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1.5, -1.5];
            let rows: Vec<Vec<f32>> = (0..n)
                .map(|_| {
                    (0..d)
                        .map(|_| {
                            if rng.random_range(0..8) == 0 {
                                special[rng.random_range(0..special.len())]
                            } else {
                                rng.random::<f32>() - 0.5
                            }
                        })
                        .collect()
                })
                .collect();
            let m = OwnedMatrix::from_rows(&rows).unwrap();
            let runs = at_every_width(m.view(), &TrimmedRule(trim));
            assert!(runs.windows(2).all(|w| w[0] == w[1]), "n = {n}, trim {trim}: {} widths disagree", runs.len());
        }
    }

    /// The window's ends where the full sort puts them, and each part's values in it.
    /// `out` is `v` arranged as `order` (a window) asks.
    fn check_arranged(v: &[i32], out: &[i32], order: Order) {
        let n = v.len();
        let (Order::Window(lo, hi) | Order::Middle(lo, hi)) = order else { panic!("a window, got {order:?}") };
        let mut sorted = v.to_vec();
        sorted.sort();
        let set = |s: &[i32]| {
            let mut s = s.to_vec();
            s.sort();
            s
        };
        if let Order::Window(..) = order {
            assert_eq!((out[lo], out[hi - 1]), (sorted[lo], sorted[hi - 1]), "n = {n}, {order:?}, input {v:?}");
        }
        assert_eq!(set(&out[lo..hi]), sorted[lo..hi], "n = {n}, {order:?}, input {v:?}");
        assert_eq!(set(&out[..lo]), sorted[..lo], "n = {n}, {order:?}, input {v:?}");
    }

    /// A pruned network leaves the window's ends where the full sort puts them (when the order
    /// asks for them) and each part's values in it: every 0/1 input up to 12 values with every
    /// window, and random distinct values for the sizes the kernels meet.
    #[test]
    fn the_pruned_networks_keep_the_window_ends_and_each_parts_values() {
        use rand::{seq::SliceRandom, SeedableRng};
        let check = |v: &[i32], order: Order, pairs: &[(u16, u16)]| {
            let mut out = v.to_vec();
            for &(a, b) in pairs {
                let (a, b) = (a as usize, b as usize);
                (out[a], out[b]) = (out[a].min(out[b]), out[a].max(out[b]));
            }
            check_arranged(v, &out, order);
        };
        let windows = |lo: usize, hi: usize| [Order::Window(lo, hi), Order::Middle(lo, hi)];
        for n in 1..=12usize {
            for lo in 0..n {
                for order in (lo + 1..=n).flat_map(|hi| windows(lo, hi)) {
                    let pairs = network_for(n, order);
                    for bits in 0u32..(1 << n) {
                        let v: Vec<i32> = (0..n).map(|i| ((bits >> i) & 1) as i32).collect();
                        check(&v, order, &pairs);
                    }
                }
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [31usize, 50, 64, 100, 127, 128] {
            let (mlo, mhi) = crate::rules::median::median_window(n);
            for (lo, hi) in [(mlo, mhi), (0, n), (1, n - 1), (n / 10, n - n / 10), (n / 4, n - n / 4), (3, 7)] {
                for order in windows(lo, hi) {
                    let pairs = network_for(n, order);
                    let mut v: Vec<i32> = (0..n as i32).collect();
                    for _ in 0..200 {
                        v.shuffle(&mut rng);
                        check(&v, order, &pairs);
                    }
                }
            }
        }
        // the counts docs/benchmarks.md gives: the trimmed mean and the median of 50 values
        assert_eq!(network(50).len(), 403);
        assert_eq!(network_for(50, Order::Window(5, 45)).len(), 331);
        assert_eq!(network_for(50, Order::Middle(5, 45)).len(), 316);
        assert!(network_for(50, Order::Middle(0, 50)).is_empty());
        assert_eq!(network_for(50, MedianRule.order(50)).len(), 330);
        assert_eq!(network_for(50, Order::All), network(50));
    }

    /// `extremes` arranges every lane as the window asks, at every vector width this CPU has
    /// (each giving the same bits): every 0/1 input up to 12 values, and random values with and
    /// without ties (and the keys the sentinels use) for the sizes the kernels meet.
    #[test]
    fn extremes_keep_the_window_ends_and_each_parts_values() {
        use rand::{Rng, SeedableRng};
        let arrange = |block: &[[i32; LANES]], k: usize| -> Vec<[i32; LANES]> {
            let mut runs = vec![];
            let mut run = |f: &dyn Fn(&mut [[i32; LANES]])| {
                let mut b = block.to_vec();
                f(&mut b);
                runs.push(b);
            };
            run(&|b| Simd::vectorize(pulp::Scalar::new(), Extremes { keys: b, k, source: None }));
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V3::try_new() {
                run(&|b| Simd::vectorize(simd, Extremes { keys: b, k, source: None }));
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V4::try_new() {
                run(&|b| Simd::vectorize(simd, Extremes { keys: b, k, source: None }));
            }
            run(&|b| pulp::Arch::new().dispatch(Extremes { keys: b, k, source: None }));
            assert!(runs.windows(2).all(|w| w[0] == w[1]), "k = {k}: the widths disagree");
            runs.pop().unwrap()
        };
        let check_block = |block: &[[i32; LANES]], k: usize| {
            let n = block.len();
            let out = arrange(block, k);
            for lane in 0..LANES {
                let v: Vec<i32> = block.iter().map(|r| r[lane]).collect();
                let o: Vec<i32> = out.iter().map(|r| r[lane]).collect();
                check_arranged(&v, &o, Order::Window(k - 1, n - k + 1));
                if n > 2 * k {
                    check_arranged(&v, &o, Order::Middle(k, n - k));
                }
            }
        };
        for n in 2..=12usize {
            for k in (1..=MAX_EXTREMES).filter(|&k| 2 * k <= n) {
                // 32 inputs per block, one per lane
                for first in (0u32..1 << n).step_by(LANES) {
                    let block: Vec<[i32; LANES]> =
                        (0..n).map(|i| std::array::from_fn(|l| (((first + l as u32) >> i) & 1) as i32)).collect();
                    check_block(&block, k);
                }
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in [18usize, 31, 50, 64, 100, 127, 128] {
            for k in 1..=MAX_EXTREMES {
                for spread in [i32::MAX, 3] {
                    for _ in 0..20 {
                        let block: Vec<[i32; LANES]> = (0..n)
                            .map(|_| {
                                std::array::from_fn(|_| match rng.random_range(0..10) {
                                    0 => i32::MIN,
                                    1 => i32::MAX,
                                    _ => rng.random_range(-spread..=spread),
                                })
                            })
                            .collect();
                        check_block(&block, k);
                    }
                }
            }
        }
    }

    /// Which windows `extremes` arranges.
    #[test]
    fn a_narrow_symmetric_trim_streams_and_the_rest_use_networks() {
        let k = |n: usize, order: Order| match Arrangement::for_order(n, order) {
            Arrangement::Extremes { k } => Some(k),
            Arrangement::Network { .. } | Arrangement::Merges { .. } => None,
        };
        // a trimmed mean's window, read as a set, needs lists as long as the trim; with its ends
        // in place, one more
        assert_eq!(k(50, TrimmedRule(5).order(50)), Some(5));
        assert_eq!(k(50, TrimmedRule(9).order(50)), Some(9));
        assert_eq!(k(50, TrimmedRule(10).order(50)), None);
        assert_eq!(k(50, TrimmedRule(0).order(50)), None);
        assert_eq!(k(50, Order::Window(5, 45)), Some(6));
        assert_eq!(k(50, Order::Window(9, 41)), None);
        assert_eq!(k(50, MedianRule.order(50)), None);
        assert_eq!(k(50, Order::Window(4, 45)), None);
        assert_eq!(k(50, Order::Middle(4, 45)), None);
        assert_eq!(k(50, Order::All), None);
        assert_eq!(k(4, MedianRule.order(4)), Some(2));
        // a window of one value (the median of an odd n) has no room for two lists
        assert_eq!(k(5, MedianRule.order(5)), None);
    }

    /// The groups sorted in registers, then the comparators left, arrange a block exactly as the
    /// whole network does; the network written out for the groups is `network(16)`.
    #[test]
    fn groups_sorted_in_registers_then_the_rest_equal_the_network() {
        use rand::{Rng, SeedableRng};
        let mut written = Vec::new();
        macro_rules! collect {
            ($(($a:literal, $b:literal)),*) => {
                $(written.push(($a as u16, $b as u16));)*
            };
        }
        network16!(collect);
        assert_eq!(written, network(GROUP));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        for n in [2usize, 15, 16, 17, 31, 32, 33, 50, 64, 100, 127, 128] {
            for order in [MedianRule.order(n), Order::Window(n / 4, n - n / 4)] {
                let Arrangement::Network { groups, ref pairs } = Arrangement::for_order(n, order) else { continue };
                if [50, 128].contains(&n) {
                    assert_eq!(groups, n / GROUP, "n = {n}, {order:?}");
                }
                for _ in 0..20 {
                    // few distinct keys, so that ties are common
                    let block: Vec<[i32; LANES]> = (0..n).map(|_| std::array::from_fn(|_| rng.random_range(-4..4))).collect();
                    let (mut grouped, mut whole) = (block.clone(), block.clone());
                    Arrangement::for_order(n, order).apply(&mut grouped, pulp::Arch::new());
                    sort(&mut whole, &network_for(n, order));
                    assert_eq!(grouped, whole, "n = {n}, {order:?}");
                    // the groups in the narrowest vectors too (the arrangement takes the widest)
                    let mut scalar = block;
                    pulp::Scalar::new().vectorize(SortGroups { keys: &mut scalar[..groups * GROUP] });
                    sort(&mut scalar, pairs);
                    assert_eq!(scalar, whole, "n = {n}, {order:?}, scalar");
                }
            }
        }
    }

    /// A full sort merges the groups sorted in registers: every lane of every block size ends in
    /// ascending order, at every vector width, ties, `i32::MIN` and `i32::MAX` included; the
    /// comparators written out for a merge's last stages are the four half-cleaners.
    #[test]
    fn merges_sort_every_lane() {
        use rand::{Rng, SeedableRng};
        let half_cleaners: Vec<(u16, u16)> =
            [8, 4, 2, 1].into_iter().flat_map(|k| (0..GROUP as u16).filter(move |i| i % (2 * k) < k).map(move |i| (i, i + k))).collect();
        assert_eq!(merge_tail_pairs(), half_cleaners);
        assert!(matches!(Arrangement::for_order(50, Order::All), Arrangement::Merges { .. }));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        for n in 1..=MAX_ROWS {
            for spread in [3, i32::MAX] {
                let mut block: Vec<[i32; LANES]> = (0..n).map(|_| std::array::from_fn(|_| rng.random_range(-spread..spread))).collect();
                block[n / 2][0] = i32::MAX;
                block[n - 1][1] = i32::MIN;
                let mut want = block.clone();
                for l in 0..LANES {
                    let mut column: Vec<i32> = block.iter().map(|k| k[l]).collect();
                    column.sort_unstable();
                    want.iter_mut().zip(column).for_each(|(k, v)| k[l] = v);
                }
                let Arrangement::Merges { short } = Arrangement::for_order(n, Order::All) else { unreachable!() };
                // at every vector width (the arrangement itself takes the widest)
                let mut runs = vec![("scalar", block.clone())];
                pulp::Scalar::new().vectorize(MergeSort { keys: &mut runs[0].1, short: &short });
                #[cfg(target_arch = "x86_64")]
                {
                    if let Some(simd) = pulp::x86::V3::try_new() {
                        let mut keys = block.clone();
                        Simd::vectorize(simd, MergeSort { keys: &mut keys, short: &short });
                        runs.push(("avx2", keys));
                    }
                    if let Some(simd) = pulp::x86::V4::try_new() {
                        let mut keys = block.clone();
                        Simd::vectorize(simd, MergeSort { keys: &mut keys, short: &short });
                        runs.push(("avx512", keys));
                    }
                }
                Arrangement::for_order(n, Order::All).apply(&mut block, pulp::Arch::new());
                runs.push(("widest", block));
                for (width, keys) in runs {
                    assert_eq!(keys, want, "n = {n}, {width}");
                }
            }
        }
    }

    #[test]
    fn comparator_counts_are_batchers() {
        // Knuth, TAOCP 3, 5.3.4: Batcher's merge exchange for 2^t elements has
        // (t² − t + 4)·2^(t−2) − 1 comparators.
        for t in 1..=7u32 {
            let n = 1usize << t;
            let expected = ((t * t - t + 4) as usize) * (1usize << t) / 4 - 1;
            assert_eq!(network(n).len(), expected, "n = {n}");
        }
    }
}
