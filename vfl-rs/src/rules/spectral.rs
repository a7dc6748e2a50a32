//! Rules that look at the spread of the updates: the subset searches of minimum-diameter
//! averaging (MDA) and smallest-maximum-eigenvalue averaging (SMEA), the covariance-bound
//! agnostic filter (CAF) and divide-and-conquer (DnC).
//!
//! Each works on inner products of the rows (one `n × n` Gram matrix, read from the updates in
//! one blocked pass) and on eigen-decompositions of small symmetric matrices (nalgebra). Rows
//! with NaN/Inf are left out first: they are as far from the honest updates as a row can be.

use nalgebra::{DMatrix, SymmetricEigen};
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, VflError};
use crate::matrix::{finite_rows, gram, pairwise_sq_dists, weighted_mean, Matrix};
use crate::trace::selection_share;

/// The weighted mean of the listed rows (equally weighted when their weights sum to 0; NaN when
/// none is listed), with the weights a selection's trace gives them.
pub(crate) fn mean_of(x: Matrix, w: &[f64], rows: &[usize]) -> Vec<f32> {
    match selection_share(x.n(), rows, w) {
        Some(share) => weighted_mean(x, &share),
        None => vec![f32::NAN; x.d()],
    }
}

/// Largest eigenvalue of the symmetric `k × k` matrix `a` (row-major, finite, k ≥ 1) and a unit
/// eigenvector. The QR iterations are capped (nalgebra's default is none) so that no input can
/// hang a round; a finite symmetric matrix converges long before.
fn top_eigen(a: &[f64], k: usize) -> Result<(f64, Vec<f64>)> {
    let e = SymmetricEigen::try_new(DMatrix::from_row_slice(k, k, a), f64::EPSILON, 1000 * k.max(1))
        .ok_or_else(|| VflError::value(format!("Expected an eigen-decomposition of a {k} × {k} covariance, got no convergence")))?;
    let (i, &lambda) = e.eigenvalues.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("k >= 1");
    Ok((lambda, e.eigenvectors.column(i).iter().copied().collect()))
}

/// The Gram matrix `g` (of `n` rows) restricted to `rows` and centred on their mean weighted by
/// `p` (summing to 1): entries (x_a − μ)·(x_b − μ) for a, b in `rows`.
fn centred(g: &[f64], n: usize, rows: &[usize], p: &[f64]) -> Vec<f64> {
    let k = rows.len();
    let a: Vec<f64> = rows.iter().map(|&i| rows.iter().zip(p).map(|(&j, pj)| pj * g[i * n + j]).sum()).collect();
    let b: f64 = a.iter().zip(p).map(|(ai, pi)| ai * pi).sum();
    let mut out = vec![0.0; k * k];
    for (s, &i) in rows.iter().enumerate() {
        for (t, &j) in rows.iter().enumerate() {
            out[s * k + t] = g[i * n + j] - a[s] - a[t] + b;
        }
    }
    out
}

/// The next `k`-subset of `0..n` in lexicographic order (`false` after the last one).
fn next_subset(s: &mut [usize], n: usize) -> bool {
    let k = s.len();
    let Some(i) = (0..k).rev().find(|&i| s[i] < n - k + i) else { return false };
    s[i] += 1;
    for j in i + 1..k {
        s[j] = s[j - 1] + 1;
    }
    true
}

/// C(n, k), saturating.
pub(crate) fn binomial(n: usize, k: usize) -> u128 {
    let k = k.min(n - k);
    (0..k).fold(1u128, |acc, i| acc.saturating_mul((n - i) as u128) / (i as u128 + 1))
}

/// Minimum-diameter averaging (El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, "Genuinely
/// Distributed Byzantine Machine Learning", PODC 2020; as ByzFL implements it): the mean of the
/// `n − f` rows whose largest pairwise distance is smallest. Exact over the C(n, f) subsets
/// (lexicographic order, ties: the first) when there are at most `max_subsets`; otherwise the
/// n − f rows nearest to the row whose (n − f)-th nearest row (itself included) is closest (ties:
/// the lower row), whose diameter is at most twice the optimum. Returns the mean and the rows kept.
pub fn mda(x: Matrix, w: &[f64], f: usize, max_subsets: u128) -> (Vec<f32>, Vec<usize>) {
    let n = x.n();
    let d2 = pairwise_sq_dists(x);
    let diameter = |rows: &[usize], stop: f64| {
        let mut worst = 0.0f64;
        for (a, &i) in rows.iter().enumerate() {
            for &j in &rows[a + 1..] {
                worst = worst.max(d2[i * n + j]);
            }
            if worst >= stop {
                break; // no better than the best so far
            }
        }
        worst
    };
    let keep = n - f;
    let chosen = if binomial(n, f) <= max_subsets {
        let mut s: Vec<usize> = (0..keep).collect();
        let (mut best, mut best_d) = (s.clone(), diameter(&s, f64::INFINITY));
        while next_subset(&mut s, n) {
            let dia = diameter(&s, best_d);
            if dia < best_d {
                (best, best_d) = (s.clone(), dia);
            }
        }
        best
    } else {
        // a ball around one row holding n − f rows, of the smallest radius: the optimal subset
        // lies within its diameter D* of any of its rows, so this ball's radius is at most D* and
        // its diameter at most 2·D*
        let ball = |i: usize| {
            let mut near: Vec<usize> = (0..n).collect();
            near.sort_by(|&a, &b| d2[i * n + a].total_cmp(&d2[i * n + b]).then(a.cmp(&b)));
            near.truncate(keep);
            (d2[i * n + near[keep - 1]], near)
        };
        let (_, mut best) = (0..n).map(ball).min_by(|a, b| a.0.total_cmp(&b.0)).expect("n >= 1");
        best.sort_unstable();
        best
    };
    (mean_of(x, w, &chosen), chosen)
}

/// Smallest-maximum-eigenvalue averaging (Allouah, Guerraoui, Gupta, Pinot, Stephan, "On the
/// Privacy-Robustness-Utility Trilemma in Distributed Learning", ICML 2023; ByzFL's SMEA): the
/// mean of the `n − f` rows whose empirical covariance has the smallest largest eigenvalue. The
/// eigenvalue is exact (ByzFL estimates it with one power step from a random start, which makes
/// its choice random). Exact over the C(n, f) subsets when there are at most `max_subsets`
/// (lexicographic order, ties: the first); otherwise greedy: `f` times, drop the row with the
/// largest squared projection on the current subset's top eigenvector (ties: the first).
/// Non-finite rows are dropped first. Returns the mean and the rows kept.
pub fn smea(x: Matrix, w: &[f64], f: usize, max_subsets: u128) -> Result<(Vec<f32>, Vec<usize>)> {
    let n = x.n();
    let finite = finite_rows(x);
    let g = gram(x, &finite);
    let keep = n - f;
    if finite.len() <= keep {
        return Ok((mean_of(x, w, &finite), finite));
    }
    let m = finite.len();
    let dropped = m - keep;
    let spread = |rows: &[usize]| {
        let k = rows.len();
        let c = centred(&g, n, rows, &vec![1.0 / k as f64; k]);
        top_eigen(&c, k)
    };
    let chosen: Vec<usize> = if binomial(m, dropped) <= max_subsets {
        let mut s: Vec<usize> = (0..keep).collect();
        let pick = |s: &[usize]| s.iter().map(|&a| finite[a]).collect::<Vec<usize>>();
        let first = pick(&s);
        let (mut best_l, mut best) = (spread(&first)?.0, first);
        while next_subset(&mut s, m) {
            let rows = pick(&s);
            let l = spread(&rows)?.0;
            if l < best_l {
                (best, best_l) = (rows, l);
            }
        }
        best
    } else {
        let mut rows = finite.clone();
        for _ in 0..dropped {
            let k = rows.len();
            let (_, u) = spread(&rows)?;
            // a centred row's projection on the covariance's top eigenvector is √λ·u_i
            let worst = (0..k).max_by(|&a, &b| (u[a] * u[a]).total_cmp(&(u[b] * u[b])).then(b.cmp(&a))).expect("k >= 1");
            rows.remove(worst);
        }
        rows
    };
    Ok((mean_of(x, w, &chosen), chosen))
}

/// The covariance-bound agnostic filter (Allouah, Guerraoui, Stephan, "Towards Trustworthy
/// Federated Learning with Untrusted Participants", ICML 2025; ByzFL's CAF), with the exact top
/// eigenpair of the weighted covariance where ByzFL takes one power step from a random start:
/// every row starts with weight c_i = 1; while Σc > n − 2f, the weighted mean μ and covariance Σ_c
/// of the rows (weights c_i·w_i) give the top eigenpair (λ, v); the μ of the smallest λ seen is
/// kept; each row's score τ_i = ((x_i − μ)·v)² lowers its weight to c_i·(1 − τ_i / max τ). A
/// covariance with λ = 0 cannot be improved on and ends the loop; so does a cap of 4n iterations
/// (each removes the row of largest score, so n − 2f … n suffice in practice). With f = 0 it is
/// the weighted mean. Non-finite rows start with weight 0. Returns the aggregate and each row's
/// share of it.
pub fn caf(x: Matrix, w: &[f64], f: usize) -> Result<(Vec<f32>, Vec<f64>)> {
    let n = x.n();
    let finite = finite_rows(x);
    let g = gram(x, &finite);
    let mut c = vec![0.0; n];
    finite.iter().for_each(|&i| c[i] = 1.0);
    let bound = n.saturating_sub(2 * f) as f64;
    let mut best: (f64, Vec<f64>) = (f64::INFINITY, probabilities(&c, w));
    for _ in 0..4 * n {
        let mass: f64 = c.iter().sum();
        if mass <= bound {
            break;
        }
        let p = probabilities(&c, w);
        let rows = &finite; // the scores' maximum runs over rows already weighted out too (as ByzFL's)
        let pr: Vec<f64> = rows.iter().map(|&i| p[i]).collect();
        let r = centred(&g, n, rows, &pr); // residual inner products (x_a − μ)·(x_b − μ)
        let k = rows.len();
        // Σ_c = Σ p_i r_i r_iᵀ shares its non-zero spectrum with M = P^½ R Rᵀ P^½
        let sq: Vec<f64> = pr.iter().map(|v| v.sqrt()).collect();
        let m: Vec<f64> = (0..k * k).map(|e| sq[e / k] * r[e] * sq[e % k]).collect();
        let (lambda, a) = top_eigen(&m, k)?;
        if lambda < best.0 {
            best = (lambda, p.clone());
        }
        if lambda <= 0.0 {
            break;
        }
        // v = Rᵀ P^½ a / √λ, so (x_i − μ)·v = (R Rᵀ P^½ a)_i / √λ
        let tau: Vec<f64> = (0..k).map(|s| (0..k).map(|t| r[s * k + t] * sq[t] * a[t]).sum::<f64>().powi(2) / lambda).collect();
        let top = tau.iter().copied().fold(0.0, f64::max);
        if top <= 0.0 {
            break;
        }
        for (s, &i) in rows.iter().enumerate() {
            c[i] *= (1.0 - tau[s] / top).max(0.0);
        }
    }
    let share = best.1;
    Ok((weighted_mean(x, &share), share))
}

/// `c ∘ w` normalised (equal weights when that sums to 0).
fn probabilities(c: &[f64], w: &[f64]) -> Vec<f64> {
    let mut p: Vec<f64> = c.iter().zip(w).map(|(a, b)| a * b).collect();
    let total: f64 = p.iter().sum();
    if total > 0.0 {
        p.iter_mut().for_each(|v| *v /= total);
    } else {
        let alive = c.iter().filter(|&&v| v > 0.0).count().max(1) as f64;
        p = c.iter().map(|&v| if v > 0.0 { 1.0 / alive } else { 0.0 }).collect();
    }
    p
}

/// Divide-and-conquer (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model
/// Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, Algorithm 2; as Blades and
/// fedlib implement it): `iters` times, draw `sub_dim` coordinates (all of them when d ≤ sub_dim),
/// centre the rows on their mean over those coordinates, score each by its squared projection on
/// the top singular direction, and keep the `n − ⌊frac·f⌋` lowest scores (ties: the lower row).
/// The rows kept in every iteration are averaged; when no row is (the references then return
/// zeros, a silent no-op), the rows kept most often. Returns the mean and the rows kept.
pub fn dnc(
    x: Matrix,
    w: &[f64],
    f: usize,
    sub_dim: usize,
    iters: usize,
    frac: f64,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let (n, d) = (x.n(), x.d());
    let finite = finite_rows(x);
    let keep = n - (frac * f as f64).floor() as usize;
    let mut kept = vec![0usize; n];
    let m = finite.len();
    for _ in 0..if m == 0 { 0 } else { iters } {
        let cols: Vec<usize> = if sub_dim >= d {
            (0..d).collect()
        } else {
            let mut c = sample(rng, d, sub_dim).into_vec();
            c.sort_unstable();
            c
        };
        let sub = x.select_columns(&finite, &cols);
        let all: Vec<usize> = (0..finite.len()).collect();
        let g = gram(sub.view(), &all);
        let r = centred(&g, m, &all, &vec![1.0 / m as f64; m]);
        let (_, u) = top_eigen(&r, m)?;
        // the centred rows' projections on the top right singular vector are σ·u_i
        let mut score = vec![f64::INFINITY; n];
        for (s, &i) in finite.iter().enumerate() {
            score[i] = u[s] * u[s];
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
        order[..keep.min(m)].iter().for_each(|&i| kept[i] += 1);
    }
    let most = kept.iter().copied().max().unwrap_or(0);
    let chosen: Vec<usize> = (0..n).filter(|&i| most > 0 && kept[i] == most).collect();
    Ok((mean_of(x, w, &chosen), chosen))
}
