//! Krum, MultiKrum and Bulyan: selection by distance scores.

use crate::matrix::{argsort_by_key, weighted_mean_rows, Matrix};
use crate::rules::median::mean_around_median_rows;

/// Krum scores of the rows listed in `members` (indices into the `n × n` squared-distance matrix).
///
/// Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
/// NeurIPS 2017: score(i) = Σ of the **squared** distances from i to its `r − f − 2` nearest other
/// members (`r` = number of members). This follows the paper; ByzFL sums over `n − f − 1`
/// neighbours and the `krum` library uses unsquared distances counting the point itself.
/// When `r − f − 2 < 1` (late iterations of Bulyan) at least one neighbour is used.
pub fn krum_scores(dists: &[f64], n: usize, members: &[usize], f: usize) -> Vec<f64> {
    let r = members.len();
    let k = r.saturating_sub(f + 2).max(1).min(r.saturating_sub(1));
    members
        .iter()
        .map(|&i| {
            let mut row: Vec<f64> = members.iter().filter(|&&j| j != i).map(|&j| dists[i * n + j]).collect();
            row.sort_by(f64::total_cmp);
            row[..k].iter().sum()
        })
        .collect()
}

/// Position (in `members`) of the best Krum score; ties go to the earliest member.
pub fn krum_select(dists: &[f64], n: usize, members: &[usize], f: usize) -> usize {
    let scores = krum_scores(dists, n, members, f);
    argsort_by_key(&scores)[0]
}

/// The `m` rows with the lowest Krum scores (ties by index), in score order.
pub fn multi_krum_select(dists: &[f64], n: usize, f: usize, m: usize) -> Vec<usize> {
    let members: Vec<usize> = (0..n).collect();
    let scores = krum_scores(dists, n, &members, f);
    argsort_by_key(&scores).into_iter().take(m).collect()
}

/// Weighted mean of the MultiKrum selection (Krum itself is `m = 1`), and the rows selected.
pub fn multi_krum(x: Matrix, w: &[f64], dists: &[f64], f: usize, m: usize) -> (Vec<f32>, Vec<usize>) {
    let chosen = multi_krum_select(dists, x.n(), f, m);
    let mut sw: Vec<f64> = chosen.iter().map(|&i| w[i]).collect();
    if sw.iter().sum::<f64>() <= 0.0 {
        sw.fill(1.0); // only zero-weight rows were selected: average them rather than 0/0
    }
    (weighted_mean_rows(x, &chosen, &sw), chosen)
}

/// Bulyan's selection: `θ = n − 2f` rows chosen by iterated Krum on the remaining rows.
pub fn bulyan_select(dists: &[f64], n: usize, f: usize) -> Vec<usize> {
    let theta = n - 2 * f;
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut chosen = Vec::with_capacity(theta);
    while chosen.len() < theta {
        let pos = if remaining.len() == 1 { 0 } else { krum_select(dists, n, &remaining, f) };
        chosen.push(remaining.remove(pos));
    }
    chosen
}

/// El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
/// Byzantium", ICML 2018: iterated Krum selects θ = n − 2f rows; per coordinate, the mean of the
/// β = θ − 2f selected values closest to their median. Requires n ≥ 4f + 3.
///
/// Returns the aggregate and the rows selected; with `trace`, also each row's share of the
/// aggregate (the selected rows' shares of the per-coordinate windows).
pub fn bulyan(x: Matrix, dists: &[f64], f: usize, trace: bool) -> (Vec<f32>, Vec<usize>, Option<Vec<f64>>) {
    let chosen = bulyan_select(dists, x.n(), f);
    let beta = chosen.len() - 2 * f;
    let (out, within) = mean_around_median_rows(x, &chosen, beta, trace);
    let share = within.map(|within| {
        let mut s = vec![0.0; x.n()];
        for (&row, v) in chosen.iter().zip(within) {
            s[row] = v;
        }
        s
    });
    (out, chosen, share)
}
