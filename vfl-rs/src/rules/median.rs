//! Coordinate-wise median and trimmed mean.
//!
//! Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
//! Statistical Rates", ICML 2018. NaN sorts above +inf (IEEE total order), so a NaN row acts as an
//! extreme value that the median and the trim discard.

use crate::matrix::{map_columns, sort_total_order, total_order_key, Matrix};
use crate::sortnet::{self, map_sorted, map_sorted_rows, map_sorted_traced, MedianRule, Order, SortedBlock, SortedRule, TrimmedRule};
use crate::trace::{map_columns_traced, map_columns_traced_summed, median_columns_traced, Summed, Window};

// Up to sortnet::MAX_ROWS rows, each kernel arranges blocks of columns with a sorting network
// or, for a narrow trim, two streamed lists (sortnet); above, it selects in each gathered column.
// The two give the same values; the trimmed mean's sum runs in the order the arrangement leaves
// its window in on the first path (the network and the lists do not sort inside the window) and
// in selection order on the second, which can differ in the last bit.

/// Per coordinate: the middle value, or the mean of the two middle values when `n` is even
/// (numpy's convention).
pub fn coordinate_median(x: Matrix) -> Vec<f32> {
    let n = x.n();
    if n <= sortnet::MAX_ROWS {
        return map_sorted(x, MedianRule);
    }
    map_columns(x, |col| median_in_place(col, n))
}

pub(crate) fn median_in_place(col: &mut [f32], n: usize) -> f32 {
    median_and_window(col, n).0
}

/// The median and the two middle values it averages (the same one twice for odd `n`).
fn median_and_window(col: &mut [f32], n: usize) -> (f32, f32, f32) {
    let k = n / 2;
    let (lo, mid, _) = col.select_nth_unstable_by(k, f32::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        (mid, mid, mid)
    } else {
        let below = lo.iter().copied().max_by(f32::total_cmp).unwrap_or(mid);
        (((below as f64 + mid as f64) / 2.0) as f32, below, mid)
    }
}

/// Per coordinate: drop the `trim` smallest and `trim` largest values, average the rest.
/// The caller guarantees `n > 2·trim`.
pub fn trimmed_mean(x: Matrix, trim: usize) -> Vec<f32> {
    if x.n() <= sortnet::MAX_ROWS {
        return map_sorted(x, TrimmedRule(trim));
    }
    map_columns(x, |col| trim_in_place(col, trim).value)
}

/// The trimmed mean of one column, selecting in place; the window it averages.
fn trim_in_place(col: &mut [f32], trim: usize) -> Window {
    let n = col.len();
    let keep = n - 2 * trim;
    let (mut at_lo, mut at_hi) = (f32::NAN, f32::NAN); // (unused when nothing is trimmed)
    if trim > 0 {
        col.select_nth_unstable_by(trim, f32::total_cmp);
        at_lo = col[trim];
        col[trim..].select_nth_unstable_by(keep - 1, f32::total_cmp);
        at_hi = col[trim + keep - 1];
    }
    let s: f64 = col[trim..trim + keep].iter().map(|&v| v as f64).sum();
    Window { value: (s / keep as f64) as f32, lo: trim, hi: trim + keep, at_lo, at_hi }
}

/// The coordinate-wise median and each row's share of it (its part of the middle values), in
/// one pass; the output is `coordinate_median`'s to the bit.
pub fn coordinate_median_traced(x: Matrix, summed: Option<&[f64]>) -> (Vec<f32>, Vec<f64>, Option<Summed>) {
    let n = x.n();
    if n <= sortnet::MAX_ROWS {
        let (out, share) = map_sorted_traced(x, MedianRule);
        return (out, share, None);
    }
    median_columns_traced(x, summed)
}

/// The trimmed mean and each row's share of it, in one pass; the output is `trimmed_mean`'s to
/// the bit.
pub fn trimmed_mean_traced(x: Matrix, trim: usize, summed: Option<&[f64]>) -> (Vec<f32>, Vec<f64>, Option<Summed>) {
    if x.n() <= sortnet::MAX_ROWS {
        let (out, share) = map_sorted_traced(x, TrimmedRule(trim));
        return (out, share, None);
    }
    map_columns_traced_summed(x, summed, |_, scratch| trim_in_place(scratch, trim))
}

/// The sorted positions the median of `n` values averages: the middle one, or the two middle ones.
pub fn median_window(n: usize) -> (usize, usize) {
    if n % 2 == 1 {
        (n / 2, n / 2 + 1)
    } else {
        (n / 2 - 1, n / 2 + 1)
    }
}

/// Per coordinate, the mean of the `keep` values closest to the median (ties: the lower value;
/// NaN is farthest): Meamed (Xie, Koyejo, Gupta, "Generalized Byzantine-tolerant SGD", 2018), and
/// Bulyan's second stage. With `trace`, also each row's share (its part of the windows).
pub fn mean_around_median(x: Matrix, keep: usize, trace: bool) -> (Vec<f32>, Option<Vec<f64>>) {
    mean_around_median_rows(x, &(0..x.n()).collect::<Vec<_>>(), keep, trace)
}

/// `mean_around_median` of the matrix made of the listed rows of `x` (Bulyan's selection), read
/// in place up to `sortnet::MAX_ROWS` rows; the shares are per listed row.
pub fn mean_around_median_rows(x: Matrix, rows: &[usize], keep: usize, trace: bool) -> (Vec<f32>, Option<Vec<f64>>) {
    if rows.len() <= sortnet::MAX_ROWS {
        return map_sorted_rows(x, rows, AroundMedianRule { keep }, trace);
    }
    let copy = (rows.len() != x.n() || rows.iter().enumerate().any(|(k, &r)| k != r)).then(|| x.select_rows(rows));
    let x = copy.as_ref().map_or(x, |c| c.view());
    if trace {
        let (out, share) = map_columns_traced(x, |_, scratch| around_median_in_place(scratch, keep));
        return (out, Some(share));
    }
    (map_columns(x, |col| around_median_in_place(col, keep).value), None)
}

/// Meamed's value for every column of a sorted block (its window placed where the values are).
struct AroundMedianRule {
    keep: usize,
}

impl SortedRule for AroundMedianRule {
    fn order(&self, _: usize) -> Order {
        Order::All
    }

    /// `closest_window` and the window's sum for all the block's columns at once, without a
    /// branch on the values: `closest_window`'s binary searches, one column at a time, cost more
    /// than sorting the block (their branches follow the data). Here the first position not below
    /// the median is a count, and so is the number of lower values the window takes: the
    /// comparisons the search would make are made for every candidate position and counted where
    /// they fall in the lane's range. (The comparisons are monotone along the positions, so the
    /// count is the search's answer: tested against it.)
    #[inline(always)]
    fn apply(&self, block: &SortedBlock, out: &mut [f32], windows: &mut [(usize, usize)]) {
        const LANES: usize = sortnet::LANES;
        let (n, keep) = (block.n(), self.keep);
        let median: [f32; LANES] = if n % 2 == 1 {
            block.values(n / 2)
        } else {
            let (a, b) = (block.values(n / 2 - 1), block.values(n / 2));
            let mut m = [0f32; LANES];
            for ((m, a), b) in m.iter_mut().zip(a).zip(b) {
                *m = middle(a, b);
            }
            m
        };
        let mut median_key = [0i32; LANES];
        for (k, m) in median_key.iter_mut().zip(median) {
            *k = total_order_key(m.to_bits() as i32);
        }
        // `start`: the positions below the median
        let start = block.count_below(&median_key);
        // The window takes L of the values below `start`, lo ≤ L ≤ hi: L = hi less the l in
        // (lo, hi] not taken, where l is not taken when the value at p = start − l is farther
        // from the median than the one at p + keep (from p ≥ n − keep on, the higher side has
        // run out: taken).
        let (mut lo, mut hi) = ([0u32; LANES], [0u32; LANES]);
        for ((lo, hi), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(&start) {
            *lo = (keep as u32).saturating_sub(n as u32 - s);
            *hi = (keep as u32).min(s);
        }
        let mut not_taken = [0u32; LANES];
        for p in 0..n - keep {
            let (lower, higher) = (block.values(p), block.values(p + keep));
            for l in 0..LANES {
                let taken = distance_bits(median[l], lower[l]) <= distance_bits(median[l], higher[l]);
                let in_range = p as u32 + hi[l] >= start[l] && (p as u32) < start[l] - lo[l];
                not_taken[l] += u32::from(!taken && in_range);
            }
        }
        let mut left = [0u32; LANES];
        for l in 0..LANES {
            left[l] = start[l] - hi[l] + not_taken[l];
        }
        // each window summed in ascending order (as `Iterator::sum`, from −0), all lanes together;
        // a value outside the window adds −0, which leaves every sum as it is (a conditional add
        // kept the sums in memory, each add waiting on the last masked store)
        let mut sums = [-0f64; LANES];
        for r in 0..n {
            let v = block.values(r);
            for l in 0..LANES {
                let inside = r as u32 >= left[l] && (r as u32) < left[l] + keep as u32;
                sums[l] += if inside { v[l] as f64 } else { -0.0 };
            }
        }
        for ((o, w), (s, &left)) in out.iter_mut().zip(windows.iter_mut()).zip(sums.iter().zip(&left)) {
            *o = (s / keep as f64) as f32;
            *w = (left as usize, left as usize + keep);
        }
    }
}

/// `distance(m, v).to_bits()`: the distances are never negative (NaN: the positive one), so
/// their bits order as `total_cmp` orders them. Written out with a bit comparison instead of
/// calling `distance`, whose `total_cmp` made Meamed 4–10 % slower in the vector code.
#[inline(always)]
fn distance_bits(m: f32, v: f32) -> u64 {
    let d = (m as f64 - v as f64).abs();
    if v.to_bits() == m.to_bits() {
        0
    } else if d.is_nan() {
        f64::NAN.to_bits()
    } else {
        d.to_bits()
    }
}

/// Meamed's value for one column, sorting it in place; the window it averages.
fn around_median_in_place(col: &mut [f32], keep: usize) -> Window {
    sort_total_order(col);
    let (n, value) = (col.len(), |i: usize| col[i]);
    let (left, right) = closest_window(n, value, sorted_median(n, value), keep);
    let s: f64 = col[left..right].iter().map(|&v| v as f64).sum();
    Window { value: (s / keep as f64) as f32, lo: left, hi: right, at_lo: col[left], at_hi: col[right - 1] }
}

/// The median of the `n` sorted values `sorted(0..n)`, as `median_in_place` computes it (a NaN
/// between two middle values: the positive one).
fn sorted_median(n: usize, sorted: impl Fn(usize) -> f32) -> f32 {
    if n % 2 == 1 {
        sorted(n / 2)
    } else {
        middle(sorted(n / 2 - 1), sorted(n / 2))
    }
}

/// The mean of the two middle values; a NaN as the positive one. (Which NaN a sum with two NaN
/// terms gives depends on the order the compiler puts its operands in, and the window placed
/// around a NaN median depends on its sign: vector and scalar code would part.)
#[inline(always)]
fn middle(a: f32, b: f32) -> f32 {
    let m = ((a as f64 + b as f64) / 2.0) as f32;
    if m.is_nan() {
        f32::NAN
    } else {
        m
    }
}

/// The positions `left..right` of the `keep` of the `n` sorted values `sorted(0..n)` closest to
/// `m`: the window grown one value at a time from the first position not below `m`, taking the
/// next lower value while it is no farther from `m` than the next higher one (ties: the lower
/// value; a NaN distance is the largest).
///
/// Distances grow away from that position on both sides (the values are sorted), so the window
/// holds the L lower values for the largest L whose L-th lower value is no farther than the
/// (keep − L + 1)-th higher one: a binary search over L, in log₂ keep steps instead of `keep`
/// (tested against growing the window).
fn closest_window(n: usize, sorted: impl Fn(usize) -> f32, m: f32, keep: usize) -> (usize, usize) {
    let start = partition(n, |i| sorted(i).total_cmp(&m).is_lt());
    let dist = |i: usize| distance(m, sorted(i));
    // the L-th lower value is taken within `keep`: the higher side has run out, or it is no farther
    let taken = |l: usize| start + keep - l >= n || dist(start - l).total_cmp(&dist(start + keep - l)).is_le();
    let (mut lo, mut hi) = (keep.saturating_sub(n - start), keep.min(start));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if taken(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (start - lo, start - lo + keep)
}

/// The number of leading positions of `0..n` where `pred` holds (it holds, then does not).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The distance of `v` from `m` as `closest_window` compares it: 0 for `m` itself (an infinite
/// median is at distance 0 from its own value, not NaN), every NaN as the one NaN above +∞ (a
/// NaN's payload does not order it). Distances then grow away from `m` on both sides.
#[inline]
fn distance(m: f32, v: f32) -> f64 {
    if v.total_cmp(&m).is_eq() {
        return 0.0;
    }
    let d = (m as f64 - v as f64).abs();
    if d.is_nan() {
        f64::NAN
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::OwnedMatrix;
    use rand::{Rng, SeedableRng};

    /// Random matrices with ties, ±0, ±inf and NaN (drawn from a few values) or spread values.
    fn matrices() -> Vec<OwnedMatrix> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let special = [0.0, -0.0, 1.0, -1.0, 2.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN];
        let mut out = Vec::new();
        // (above 128 rows: the median's packed-key selection against the per-column reference)
        for n in [1usize, 2, 3, 4, 5, 16, 31, 32, 33, 50, 64, 100, 127, 128, 129, 130, 255] {
            for (d, tied) in [(1usize, false), (31, true), (33, false), (300, true), (600, false)] {
                let rows: Vec<Vec<f32>> = (0..n)
                    .map(|_| {
                        (0..d)
                            .map(|_| if tied { special[rng.random_range(0..special.len())] } else { rng.random::<f32>() * 2.0 - 1.0 })
                            .collect()
                    })
                    .collect();
                out.push(OwnedMatrix::from_rows(&rows).unwrap());
            }
        }
        out
    }

    /// The bits, every NaN as one: which NaN a sum with NaN terms gives (its sign) depends on the
    /// order the compiler puts an addition's operands in, which IEEE leaves free.
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| if x.is_nan() { f32::NAN.to_bits() } else { x.to_bits() }).collect()
    }

    fn share_bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// (Above 128 rows the "networks" are the kernels' own paths: the median's packed keys, the
    /// per-column selections of the others.)
    #[test]
    fn the_sorting_networks_give_the_selection_kernels_values_and_shares() {
        for m in matrices() {
            let x = m.view();
            let n = x.n();
            // the median: the same values; the shares counted as the selecting kernel counts them
            let select = map_columns(x, |col| median_in_place(col, n));
            assert_eq!(bits(&coordinate_median(x)), bits(&select), "median, n = {n}, d = {}", x.d());
            let (lo, hi) = median_window(n);
            let (select_t, select_share) = map_columns_traced(x, |_, scratch| {
                let (value, at_lo, at_hi) = median_and_window(scratch, n);
                Window { value, lo, hi, at_lo, at_hi }
            });
            let (net_t, net_share, _) = coordinate_median_traced(x, None);
            assert_eq!(bits(&net_t), bits(&select_t));
            assert_eq!(share_bits(&net_share), share_bits(&select_share), "median shares, n = {n}");
            // the trimmed mean: its window's values, against their sum in ascending order. Any
            // order gives the same bits here, as every sum of these values is exact in float64
            // (the spread ones are multiples of 2^-23 in [−1, 1), at most 255 of them; the drawn
            // ones ±0, ±1, 2.5, ±inf, NaN): what the test sees is a value left out or counted twice.
            for trim in [0, (n - 1) / 2 / 2, (n - 1) / 2] {
                let sorted_sum = map_columns(x, |col| {
                    sort_total_order(col);
                    let s: f64 = col[trim..n - trim].iter().map(|&v| v as f64).sum();
                    (s / (n - 2 * trim) as f64) as f32
                });
                assert_eq!(bits(&trimmed_mean(x, trim)), bits(&sorted_sum), "trimmed mean, n = {n}, trim = {trim}");
                let (net_t, net_share, _) = trimmed_mean_traced(x, trim, None);
                let (_, select_share) = map_columns_traced(x, |_, scratch| trim_in_place(scratch, trim));
                assert_eq!(bits(&net_t), bits(&sorted_sum));
                assert_eq!(share_bits(&net_share), share_bits(&select_share), "trimmed shares, n = {n}, trim = {trim}");
            }
            // Meamed: the sorting kernel's own values and shares
            for keep in [1, n.div_ceil(2), n - n / 10, n.saturating_sub(1).max(1), n] {
                let sorting = map_columns(x, |col| around_median_in_place(col, keep).value);
                let (_, sorting_share) = map_columns_traced(x, |_, scratch| around_median_in_place(scratch, keep));
                let (net, net_share) = mean_around_median(x, keep, true);
                assert_eq!(bits(&net), bits(&sorting), "Meamed, n = {n}, keep = {keep}");
                assert_eq!(bits(&mean_around_median(x, keep, false).0), bits(&sorting));
                assert_eq!(share_bits(&net_share.unwrap()), share_bits(&sorting_share), "Meamed shares, n = {n}, keep = {keep}");
            }
            // Bulyan's form: listed rows, read in place, as their copy
            let listed: Vec<usize> = (0..n).rev().step_by(2).collect();
            let keep = listed.len().div_ceil(2);
            let (copy_out, copy_share) = mean_around_median(x.select_rows(&listed).view(), keep, true);
            let (out, share) = mean_around_median_rows(x, &listed, keep, true);
            assert_eq!((bits(&out), share_bits(&share.unwrap())), (bits(&copy_out), share_bits(&copy_share.unwrap())));
        }
    }

    /// Meamed's block rule (vector code, counting instead of searching) gives the same bits and
    /// shares in the code compiled for each vector width this CPU has.
    #[test]
    fn meamed_gives_the_same_bits_at_every_vector_width() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        // some of each sign, ±0 and ±inf among them (no NaN: a sum with NaN terms may give either NaN)
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1.5, -1.5];
        for n in [3usize, 50, 51, 128] {
            let d = 2 * sortnet::TASK + 7;
            let rows: Vec<Vec<f32>> = (0..n)
                .map(|_| {
                    (0..d)
                        .map(|_| if rng.random_range(0..6) == 0 { special[rng.random_range(0..6)] } else { rng.random::<f32>() - 0.5 })
                        .collect()
                })
                .collect();
            let m = OwnedMatrix::from_rows(&rows).unwrap();
            for keep in [1, n / 2 + 1, n - n / 10] {
                let runs = sortnet::at_every_width(m.view(), &AroundMedianRule { keep });
                assert!(runs.windows(2).all(|w| w[0] == w[1]), "n = {n}, keep {keep}: {} widths disagree", runs.len());
            }
        }
    }

    #[test]
    fn the_kernels_read_gives_the_bookkeeping_sum_to_the_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (n, d) = (150, 600); // above the networks: the per-column selection reads the rows
        let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| rng.random::<f32>() - 0.5).collect()).collect();
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let c: Vec<f64> = (0..n).map(|i| if i % 4 == 0 { 0.0 } else { 1.0 / 112.0 }).collect();
        let (sums, norms) = crate::matrix::sums_and_norms(m.view(), &[&c]);
        let runs = [
            (coordinate_median_traced(m.view(), Some(&c)), coordinate_median_traced(m.view(), None)),
            (trimmed_mean_traced(m.view(), 20, Some(&c)), trimmed_mean_traced(m.view(), 20, None)),
        ];
        for ((out, share, summed), (plain_out, plain_share, none)) in runs {
            let summed = summed.expect("computed in the kernel's read");
            assert_eq!(bits(&summed.sum), bits(&sums[0]));
            // float32 lanes of a few squares each, summed per block in another grouping
            assert!(summed.norms.iter().zip(&norms).all(|(a, b)| (a - b).abs() <= 1e-6 * b), "{:?}", &summed.norms[..3]);
            // the kernel's own results do not change
            assert!(none.is_none());
            assert_eq!((bits(&out), share_bits(&share)), (bits(&plain_out), share_bits(&plain_share)));
        }
    }

    #[test]
    fn listed_rows_beyond_the_networks_are_copied_and_selected() {
        let rows: Vec<Vec<f32>> = (0..300).map(|i| (0..40).map(|j| ((i * 37 + j * 11) % 101) as f32 - 50.0).collect()).collect();
        let m = OwnedMatrix::from_rows(&rows).unwrap();
        let listed: Vec<usize> = (0..300).rev().step_by(2).collect(); // 150 rows: more than the networks take
        let (copy_out, copy_share) = mean_around_median(m.view().select_rows(&listed).view(), 40, true);
        let (out, share) = mean_around_median_rows(m.view(), &listed, 40, true);
        assert_eq!((bits(&out), share_bits(&share.unwrap())), (bits(&copy_out), share_bits(&copy_share.unwrap())));
    }

    /// The definition: the window grown one value at a time from the median (the first position not
    /// below it), taking the lower side on equal distances. The positions `left..right` of the `keep` of the `n` sorted values `sorted(0..n)` closest to
    /// `m` (a contiguous window around it; ties: the lower value; a NaN distance is the largest).
    fn grown_window(n: usize, sorted: impl Fn(usize) -> f32, m: f32, keep: usize) -> (usize, usize) {
        // the first position not below m (the values are sorted)
        let (mut lo_, mut hi_) = (0, n);
        while lo_ < hi_ {
            let mid = (lo_ + hi_) / 2;
            if sorted(mid).total_cmp(&m).is_lt() {
                lo_ = mid + 1;
            } else {
                hi_ = mid;
            }
        }
        let mut right = lo_;
        let mut left = right; // window is [left, right)
        while right - left < keep {
            let take_left = if left == 0 {
                false
            } else if right == n {
                true
            } else {
                distance(m, sorted(left - 1)).total_cmp(&distance(m, sorted(right))).is_le()
            };
            if take_left {
                left -= 1;
            } else {
                right += 1;
            }
        }
        (left, right)
    }

    #[test]
    fn the_binary_search_finds_the_grown_window() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let special = [0.0, -0.0, 1.0, -1.0, 2.5, 1e30, -1e-30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN];
        for case in 0..20_000 {
            let n = rng.random_range(1..40usize);
            let mut v: Vec<f32> = (0..n)
                .map(|_| if case % 2 == 0 { special[rng.random_range(0..special.len())] } else { rng.random_range(-3i32..4) as f32 * 0.5 })
                .collect();
            sort_total_order(&mut v);
            let m = sorted_median(n, |i| v[i]);
            for keep in 1..=n {
                let got = closest_window(n, |i| v[i], m, keep);
                assert_eq!(got, grown_window(n, |i| v[i], m, keep), "{v:?}, m = {m}, keep = {keep}");
            }
        }
    }

    #[test]
    fn closest_window_grows_around_the_median() {
        let window = |v: &[f32], m: f32, keep: usize| closest_window(v.len(), |i| v[i], m, keep);
        let v = [1.0, 2.0, 3.0, 10.0, 11.0];
        assert_eq!(window(&v, 3.0, 3), (0, 3));
        assert_eq!(window(&v, 10.5, 2), (3, 5));
        // equal distances: the lower value; NaN is farthest
        assert_eq!(window(&[1.0, 3.0, 5.0], 3.0, 2), (0, 2));
        assert_eq!(window(&[1.0, 2.0, 3.0, f32::NAN], 2.5, 3), (0, 3));
    }
}
