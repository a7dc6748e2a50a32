//! Coordinate-wise median and trimmed mean.
//!
//! Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
//! Statistical Rates", ICML 2018. NaN sorts above +inf (IEEE total order), so a NaN row acts as an
//! extreme value that the median and the trim discard.

use crate::matrix::{map_columns, sort_total_order, Matrix};
use crate::trace::{map_columns_traced, Window};

/// Per coordinate: the middle value, or the mean of the two middle values when `n` is even
/// (numpy's convention).
pub fn coordinate_median(x: Matrix) -> Vec<f32> {
    let n = x.n();
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
pub fn coordinate_median_traced(x: Matrix) -> (Vec<f32>, Vec<f64>) {
    let n = x.n();
    let (lo, hi) = median_window(n);
    map_columns_traced(x, |_, scratch| {
        let (value, at_lo, at_hi) = median_and_window(scratch, n);
        Window { value, lo, hi, at_lo, at_hi }
    })
}

/// The trimmed mean and each row's share of it, in one pass; the output is `trimmed_mean`'s to
/// the bit.
pub fn trimmed_mean_traced(x: Matrix, trim: usize) -> (Vec<f32>, Vec<f64>) {
    map_columns_traced(x, |_, scratch| trim_in_place(scratch, trim))
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
    if trace {
        let (out, share) = map_columns_traced(x, |_, scratch| around_median_in_place(scratch, keep));
        return (out, Some(share));
    }
    (map_columns(x, |col| around_median_in_place(col, keep).value), None)
}

/// Meamed's value for one column, sorting it in place; the window it averages.
fn around_median_in_place(col: &mut [f32], keep: usize) -> Window {
    sort_total_order(col);
    let (n, value) = (col.len(), |i: usize| col[i]);
    let (left, right) = closest_window(n, value, sorted_median(n, value), keep);
    let s: f64 = col[left..right].iter().map(|&v| v as f64).sum();
    Window { value: (s / keep as f64) as f32, lo: left, hi: right, at_lo: col[left], at_hi: col[right - 1] }
}

/// The median of the `n` sorted values `sorted(0..n)`, as `median_in_place` computes it.
fn sorted_median(n: usize, sorted: impl Fn(usize) -> f32) -> f32 {
    if n % 2 == 1 {
        sorted(n / 2)
    } else {
        ((sorted(n / 2 - 1) as f64 + sorted(n / 2) as f64) / 2.0) as f32
    }
}

/// The positions `left..right` of the `keep` of the `n` sorted values `sorted(0..n)` closest to
/// `m` (a contiguous window around it; ties: the lower value; a NaN distance is the largest).
fn closest_window(n: usize, sorted: impl Fn(usize) -> f32, m: f32, keep: usize) -> (usize, usize) {
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
            let (below, above) = ((m as f64 - sorted(left - 1) as f64).abs(), (sorted(right) as f64 - m as f64).abs());
            below.total_cmp(&above).is_le()
        };
        if take_left {
            left -= 1;
        } else {
            right += 1;
        }
    }
    (left, right)
}

#[cfg(test)]
mod tests {
    use super::*;

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
