//! Defences that cluster the updates: SignGuard (k-means on sign statistics, linfa),
//! ClippedClustering (agglomerative clustering on cosine distances, kodama) and FLAME (HDBSCAN on
//! cosine distances, the `hdbscan` crate).

use hdbscan::{DistanceMetric, Hdbscan, HdbscanHyperParams};
use kodama::{linkage, Method};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray_015::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

use crate::error::{Result, VflError};
use crate::matrix::{gram, median_finite, row_norms, Matrix, OwnedMatrix};
use crate::preagg::scale_rows;
use crate::rules::median::coordinate_median;
use crate::rules::spectral::mean_of;

/// How a clustering rule combines the updates it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// their weighted mean
    Mean,
    /// their coordinate-wise median
    Median,
}

/// What a clustering rule did: the aggregate, the rows kept, how many were clipped and the radius.
pub struct Clustered {
    pub out: Vec<f32>,
    pub kept: Vec<usize>,
    pub clipped: usize,
    pub radius: f64,
}

/// The rows of `x` clipped to norm `radius` (the finite ones longer than it: non-finite rows are
/// left out by the callers), as a new matrix, and how many.
fn clip_rows(x: Matrix, norms: &[f64], radius: f64) -> (OwnedMatrix, usize) {
    let scale: Vec<f64> = norms.iter().map(|&l| if l > radius && l.is_finite() { radius / l } else { 1.0 }).collect();
    (scale_rows(x, &scale), scale.iter().filter(|&&s| s < 1.0).count())
}

fn combine(x: Matrix, w: &[f64], rows: &[usize], how: Combine) -> Vec<f32> {
    if rows.is_empty() {
        return vec![f32::NAN; x.d()]; // every update was non-finite
    }
    match how {
        Combine::Mean => mean_of(x, w, rows),
        Combine::Median => coordinate_median(x.select_rows(rows).view()),
    }
}

/// SignGuard (Xu, Huang, Song, Lan, "SignGuard: Byzantine-robust Federated Learning through
/// Collaborative Malicious Gradient Filtering", ICDCS 2022), as fedlib (which Blades imports)
/// implements it: clip every update to the median norm M; keep those whose clipped norm is in
/// [lower·M, upper·M]; split the updates into two clusters by k-means on their sign statistics
/// (the shares of positive, negative and zero coordinates) and keep the larger (ties: the one
/// holding the lowest row); average the clipped updates in both sets. When the two sets share no
/// update (fedlib returns zeros), those of the norm filter. Non-finite rows are left out first.
pub fn sign_guard(x: Matrix, w: &[f64], lower: f64, upper: f64, how: Combine, rng: &mut ChaCha8Rng) -> Result<Clustered> {
    let (n, d) = (x.n(), x.d());
    let norms = row_norms(x);
    let finite: Vec<usize> = (0..n).filter(|&i| norms[i].is_finite()).collect();
    let m = median_finite(&norms);
    let (clipped_x, clipped) = clip_rows(x, &norms, m);
    let clipped_norms = row_norms(clipped_x.view());
    let in_band: Vec<usize> = finite.iter().copied().filter(|&i| clipped_norms[i] >= lower * m && clipped_norms[i] <= upper * m).collect();
    let features: Vec<f64> = finite
        .iter()
        .flat_map(|&i| {
            let row = x.row(i);
            let pos = row.iter().filter(|&&v| v > 0.0).count() as f64;
            let neg = row.iter().filter(|&&v| v < 0.0).count() as f64;
            [pos / d as f64, neg / d as f64, (d as f64 - pos - neg) / d as f64]
        })
        .collect();
    let majority = majority_cluster(&features, finite.len(), rng)?;
    let by_sign: Vec<usize> = majority.iter().map(|&k| finite[k]).collect();
    let both: Vec<usize> = in_band.iter().copied().filter(|i| by_sign.contains(i)).collect();
    let kept = if both.is_empty() { in_band } else { both };
    Ok(Clustered { out: combine(clipped_x.view(), w, &kept, how), kept, clipped, radius: m })
}

/// The larger of two k-means clusters of the `k` rows of 3 features (ties: the cluster holding
/// the lowest row); every row when there are fewer than two distinct ones.
fn majority_cluster(features: &[f64], k: usize, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
    let distinct = (1..k).any(|i| features[3 * i..3 * i + 3] != features[..3]);
    if !distinct {
        return Ok((0..k).collect());
    }
    let data = Array2::from_shape_vec((k, 3), features.to_vec()).map_err(|e| VflError::value(e.to_string()))?;
    let dataset = DatasetBase::from(data.clone());
    let model = KMeans::params_with_rng(2, Xoshiro256Plus::seed_from_u64(rng.random()))
        .n_runs(10)
        .fit(&dataset)
        .map_err(|e| VflError::value(format!("SignGuard's k-means failed: {e}")))?;
    let labels = model.predict(&data);
    let ones: Vec<usize> = (0..k).filter(|&i| labels[i] == 1).collect();
    let zeros: Vec<usize> = (0..k).filter(|&i| labels[i] == 0).collect();
    Ok(match ones.len().cmp(&zeros.len()) {
        std::cmp::Ordering::Greater => ones,
        std::cmp::Ordering::Less => zeros,
        std::cmp::Ordering::Equal => {
            if labels[0] == 1 {
                ones
            } else {
                zeros
            }
        }
    })
}

/// ClippedClustering (Li, Sahu, Sharma, Wang, Zhang, "An Experimental Study of Byzantine-Robust
/// Aggregation Schemes in Federated Learning", IEEE Transactions on Big Data 2023), as fedlib
/// implements it: the norms of every update seen so far (`history`, kept across rounds) give the
/// clipping radius τ = min(their median, max_tau); updates longer than τ are clipped; agglomerative
/// clustering (average or single linkage) on the cosine distances 1 − cos splits them in two, and
/// the larger cluster is averaged (ties: the cluster formed later, as fedlib's). Non-finite rows
/// are left out first (and their norms are not remembered).
pub fn clipped_clustering(x: Matrix, w: &[f64], history: &mut Vec<f64>, max_tau: f64, method: Method, how: Combine) -> Result<Clustered> {
    let n = x.n();
    let norms = row_norms(x);
    let finite: Vec<usize> = (0..n).filter(|&i| norms[i].is_finite()).collect();
    history.extend(finite.iter().map(|&i| norms[i]));
    let tau = median_finite(history).min(max_tau);
    let (clipped_x, clipped) = clip_rows(x, &norms, tau);
    let kept = match finite.len() {
        0 => Vec::new(),
        1 => finite.clone(),
        k => {
            let dist = cosine_distances(clipped_x.view(), &finite);
            let mut condensed = Vec::with_capacity(k * (k - 1) / 2);
            for a in 0..k {
                condensed.extend_from_slice(&dist[a * k + a + 1..(a + 1) * k]);
            }
            let dendrogram = linkage(&mut condensed, k, method);
            // the last merge joins the two clusters; each is an observation (label < k) or the
            // cluster made by step label − k
            let last = dendrogram.steps().last().expect("k >= 2 observations, k − 1 steps");
            let members = |label: usize| {
                let mut out = Vec::new();
                let mut stack = vec![label];
                while let Some(l) = stack.pop() {
                    if l < k {
                        out.push(finite[l]);
                    } else {
                        let s = &dendrogram.steps()[l - k];
                        stack.extend([s.cluster1, s.cluster2]);
                    }
                }
                out.sort_unstable();
                out
            };
            let (a, b) = (members(last.cluster1), members(last.cluster2));
            let later_a = last.cluster1 > last.cluster2;
            match a.len().cmp(&b.len()) {
                std::cmp::Ordering::Greater => a,
                std::cmp::Ordering::Less => b,
                std::cmp::Ordering::Equal => {
                    if later_a {
                        a
                    } else {
                        b
                    }
                }
            }
        }
    };
    Ok(Clustered { out: combine(clipped_x.view(), w, &kept, how), kept, clipped, radius: tau })
}

/// The `k × k` matrix (row-major) of cosine distances 1 − cos between the listed rows of `x`,
/// from one blocked Gram pass; a row of norm below 1e-8 is measured as if of norm 1e-8. Each
/// pair is computed once, so the matrix is exactly symmetric.
fn cosine_distances(x: Matrix, rows: &[usize]) -> Vec<f64> {
    let (n, k) = (x.n(), rows.len());
    let g = gram(x, rows);
    let norm = |i: usize| g[i * n + i].sqrt().max(1e-8);
    let mut dist = vec![0.0; k * k];
    for a in 0..k {
        for b in a + 1..k {
            let (i, j) = (rows[a], rows[b]);
            let d = 1.0 - g[i * n + j] / (norm(i) * norm(j));
            (dist[a * k + b], dist[b * k + a]) = (d, d);
        }
    }
    dist
}

/// FLAME (Nguyen, Rieger, Chen, Yalame, Möllering, Fereidooni, Marchal, Miettinen, Mirhoseini,
/// Zeitouni, Koushanfar, Sadeghi, Schneider, "FLAME: Taming Backdoors in Federated Learning",
/// USENIX Security 2022), Algorithm 1 on the updates: HDBSCAN on the cosine distances 1 − cos
/// (min_cluster_size ⌊k/2⌋ + 1, min_samples 1, a single cluster allowed) admits the majority
/// cluster; the admitted updates are clipped to S, the median norm of all of them; their weighted
/// mean gets Gaussian noise of standard deviation `noise_level`·S on every coordinate (the paper
/// adds it to the global model, which the aggregate update moves). Non-finite rows are left out
/// first; when HDBSCAN labels every update noise, every finite update is admitted (the paper
/// assumes a majority cluster always exists).
pub fn flame(x: Matrix, w: &[f64], noise_level: f64, rng: &mut ChaCha8Rng) -> Result<Clustered> {
    let n = x.n();
    let norms = row_norms(x);
    let finite: Vec<usize> = (0..n).filter(|&i| norms[i].is_finite()).collect();
    let s = median_finite(&norms);
    let kept = match finite.len() {
        0 | 1 => finite.clone(),
        k => {
            let dist = cosine_distances(x, &finite);
            let rows: Vec<Vec<f64>> = dist.chunks(k).map(<[f64]>::to_vec).collect();
            let params = HdbscanHyperParams::builder()
                .min_cluster_size(k / 2 + 1)
                .min_samples(1)
                .allow_single_cluster(true)
                .dist_metric(DistanceMetric::Precalculated)
                .build();
            let labels = Hdbscan::new(&rows, params).cluster().map_err(|e| VflError::value(format!("FLAME's HDBSCAN failed: {e}")))?;
            // min_cluster_size above k/2 leaves room for one cluster; the largest, should the
            // crate ever give more (ties: the lowest label)
            let largest = (0..k as i32).filter(|&l| labels.contains(&l)).max_by_key(|&l| (labels.iter().filter(|&&m| m == l).count(), -l));
            match largest {
                Some(l) => (0..k).filter(|&a| labels[a] == l).map(|a| finite[a]).collect(),
                None => finite.clone(),
            }
        }
    };
    let mut scale = vec![1.0; n]; // only the admitted updates are clipped (and counted)
    for &i in &kept {
        if norms[i] > s {
            scale[i] = s / norms[i];
        }
    }
    let clipped = scale.iter().filter(|&&c| c < 1.0).count();
    let mut out = combine(scale_rows(x, &scale).view(), w, &kept, Combine::Mean);
    let sigma = noise_level * s;
    if sigma > 0.0 {
        let normal = Normal::new(0.0, sigma).map_err(|e| VflError::value(format!("FLAME's noise: {e}")))?;
        for v in &mut out {
            *v += normal.sample(rng) as f32;
        }
    }
    Ok(Clustered { out, kept, clipped, radius: s })
}
