//! Coordinate-wise median and trimmed mean.
//!
//! Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
//! Statistical Rates", ICML 2018. NaN sorts above +inf (IEEE total order), so a NaN row acts as an
//! extreme value that the median and the trim discard.

use crate::matrix::{map_columns, Matrix};

/// Per coordinate: the middle value, or the mean of the two middle values when `n` is even
/// (numpy's convention).
pub fn coordinate_median(x: Matrix) -> Vec<f32> {
    let n = x.n();
    map_columns(x, |col| median_in_place(col, n))
}

pub(crate) fn median_in_place(col: &mut [f32], n: usize) -> f32 {
    let k = n / 2;
    let (lo, mid, _) = col.select_nth_unstable_by(k, f32::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = lo.iter().copied().max_by(f32::total_cmp).unwrap_or(mid);
        ((below as f64 + mid as f64) / 2.0) as f32
    }
}

/// Per coordinate: drop the `trim` smallest and `trim` largest values, average the rest.
/// The caller guarantees `n > 2·trim`.
pub fn trimmed_mean(x: Matrix, trim: usize) -> Vec<f32> {
    let n = x.n();
    let keep = n - 2 * trim;
    map_columns(x, |col| {
        if trim > 0 {
            col.select_nth_unstable_by(trim, f32::total_cmp);
            col[trim..].select_nth_unstable_by(keep - 1, f32::total_cmp);
        }
        let s: f64 = col[trim..trim + keep].iter().map(|&v| v as f64).sum();
        (s / keep as f64) as f32
    })
}

/// The sorted positions the median of `n` values averages: the middle one, or the two middle ones.
pub fn median_window(n: usize) -> (usize, usize) {
    if n % 2 == 1 {
        (n / 2, n / 2 + 1)
    } else {
        (n / 2 - 1, n / 2 + 1)
    }
}
