//! Pre-aggregators: transform the update matrix before the rule.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Result, VflError};
use crate::matrix::{argsort_by_key, median_finite, pairwise_sq_dists, row_norms, Matrix, OwnedMatrix, COL_BLOCK};
use crate::rules::resolve_f;
use crate::spec::ComponentConfig;

#[derive(Clone, Debug)]
pub enum PreAggregator {
    /// Allouah et al., "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity",
    /// AISTATS 2023: each row becomes the mean of its n − f nearest rows (itself included).
    Nnm { f: Option<usize> },
    /// Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
    /// Bucketing", ICLR 2022: seeded shuffle, then the (weighted) mean of each bucket of `s` rows.
    Bucketing { s: usize },
    /// L2 clipping to norm `c`; with `c: None`, to the median norm of the round's rows.
    Clipping { c: Option<f64> },
    /// Allouah et al., "Boosting Robustness by Clipping Gradients in Distributed Learning", 2024:
    /// the ⌊2(f/n)(n − f)⌋ largest-norm rows are clipped to the norm of the next largest.
    Arc { f: Option<usize> },
}

impl PreAggregator {
    pub fn from_config(c: &ComponentConfig) -> Result<Self> {
        let p = &c.params;
        Ok(match c.name() {
            "NNM" => PreAggregator::Nnm { f: p.opt_usize("f")? },
            "Bucketing" => PreAggregator::Bucketing { s: p.usize("s")? },
            "Clipping" => PreAggregator::Clipping { c: p.opt_f64("c")? },
            "ARC" => PreAggregator::Arc { f: p.opt_usize("f")? },
            other => return Err(VflError::value(format!("{other} is not a pre-aggregator"))),
        })
    }

    /// Returns the new matrix and its row weights.
    pub fn apply(&self, x: Matrix, w: &[f64], f_default: Option<usize>, rng: &mut ChaCha8Rng) -> Result<(OwnedMatrix, Vec<f64>)> {
        let (m, w, _) = self.apply_traced(x, w, f_default, rng)?;
        Ok((m, w))
    }

    /// Whether output row i is still input row i (transformed): NNM and clipping keep the rows'
    /// identities, bucketing mixes them into buckets.
    pub fn keeps_rows(&self) -> bool {
        !matches!(self, PreAggregator::Bucketing { .. })
    }

    /// `apply`, with what it did: the clipping it applied, and for mixing pre-aggregators
    /// (`groups`) which input rows each output row is made of, with their coefficients.
    pub fn apply_traced(
        &self,
        x: Matrix,
        w: &[f64],
        f_default: Option<usize>,
        rng: &mut ChaCha8Rng,
    ) -> Result<(OwnedMatrix, Vec<f64>, PreTrace)> {
        let n = x.n();
        match self {
            PreAggregator::Nnm { f } => {
                let f = resolve_f("NNM", *f, f_default)?;
                if n <= f {
                    return Err(VflError::expected(format!("NNM with f = {f}"), format!("n > f = {f}"), format!("n = {n}")));
                }
                let dists = pairwise_sq_dists(x);
                let k = n - f;
                let groups: Vec<Vec<(usize, f64)>> = (0..n)
                    .map(|i| {
                        // Itself first (distance 0), then nearest others; ties by index.
                        let mut key = dists[i * n..(i + 1) * n].to_vec();
                        key[i] = f64::NEG_INFINITY;
                        argsort_by_key(&key).into_iter().take(k).map(|j| (j, 1.0 / k as f64)).collect()
                    })
                    .collect();
                let m = mix_rows(x, &groups);
                Ok((m, w.to_vec(), PreTrace { groups: Some(groups), ..PreTrace::default() }))
            }
            PreAggregator::Bucketing { s } => {
                let mut perm: Vec<usize> = (0..n).collect();
                perm.shuffle(rng);
                let mut groups = Vec::new();
                let mut weights = Vec::new();
                for bucket in perm.chunks(*s) {
                    let total: f64 = bucket.iter().map(|&i| w[i]).sum();
                    groups.push(bucket.iter().map(|&i| (i, w[i] / total)).collect());
                    weights.push(total);
                }
                let m = mix_rows(x, &groups);
                Ok((m, weights, PreTrace { groups: Some(groups), ..PreTrace::default() }))
            }
            PreAggregator::Clipping { c } => {
                let norms = row_norms(x);
                let c = c.unwrap_or_else(|| median_finite(&norms));
                let scale: Vec<f64> = norms.iter().map(|&nm| if nm > c { c / nm } else { 1.0 }).collect();
                let clipped = scale.iter().filter(|&&s| s < 1.0).count();
                Ok((scale_rows(x, &scale), w.to_vec(), PreTrace { groups: None, clipped: Some(clipped), radius: Some(c) }))
            }
            PreAggregator::Arc { f } => {
                let f = resolve_f("ARC", *f, f_default)?;
                if n <= f {
                    return Err(VflError::expected(format!("ARC with f = {f}"), format!("n > f = {f}"), format!("n = {n}")));
                }
                let k = ((2.0 * f as f64 / n as f64) * (n - f) as f64).floor() as usize;
                let k = k.min(n - 1);
                let norms = row_norms(x);
                let neg: Vec<f64> = norms.iter().map(|v| if v.is_nan() { f64::NEG_INFINITY } else { -v }).collect();
                let order = argsort_by_key(&neg); // largest norm first
                let mut scale = vec![1.0; n];
                let limit = norms[order[k]];
                if k > 0 {
                    for &i in &order[..k] {
                        scale[i] = if norms[i] > 0.0 && norms[i].is_finite() { limit / norms[i] } else { 0.0 };
                    }
                }
                Ok((scale_rows(x, &scale), w.to_vec(), PreTrace { groups: None, clipped: Some(k), radius: Some(limit) }))
            }
        }
    }
}

/// What a pre-aggregator did to one round's rows.
#[derive(Clone, Debug, Default)]
pub struct PreTrace {
    /// Output row g = Σ c·x_j over the (j, c) of `groups[g]` (mixing pre-aggregators).
    pub groups: Option<Vec<Vec<(usize, f64)>>>,
    pub clipped: Option<usize>,
    pub radius: Option<f64>,
}

/// Output row g = Σ c·x_j over the (j, c) pairs of `groups[g]`, computed one column block at a
/// time so the source rows are read from cache.
pub(crate) fn mix_rows(x: Matrix, groups: &[Vec<(usize, f64)>]) -> OwnedMatrix {
    let d = x.d();
    let m = groups.len();
    let nblocks = d.div_ceil(COL_BLOCK);
    let blocks: Vec<Vec<f32>> = (0..nblocks)
        .into_par_iter()
        .map(|b| {
            let c0 = b * COL_BLOCK;
            let len = COL_BLOCK.min(d - c0);
            let mut out = vec![0f32; m * len];
            let mut acc = vec![0f64; len];
            for (g, group) in groups.iter().enumerate() {
                acc.iter_mut().for_each(|a| *a = 0.0);
                for &(j, c) in group {
                    for (a, &v) in acc.iter_mut().zip(&x.row(j)[c0..c0 + len]) {
                        *a += c * v as f64;
                    }
                }
                for (o, a) in out[g * len..(g + 1) * len].iter_mut().zip(&acc) {
                    *o = *a as f32;
                }
            }
            out
        })
        .collect();
    let mut res = OwnedMatrix::zeros(m, d);
    for (b, blk) in blocks.iter().enumerate() {
        let c0 = b * COL_BLOCK;
        let len = blk.len() / m;
        for g in 0..m {
            res.row_mut(g)[c0..c0 + len].copy_from_slice(&blk[g * len..(g + 1) * len]);
        }
    }
    res
}

/// Each row of `x` times its `scale` (rows with scale 1 copied as they are).
pub(crate) fn scale_rows(x: Matrix, scale: &[f64]) -> OwnedMatrix {
    let mut out = x.to_owned();
    let d = x.d();
    out.data.par_chunks_mut(d).zip(scale).for_each(|(row, &s)| {
        if s != 1.0 {
            row.iter_mut().for_each(|v| *v = (*v as f64 * s) as f32);
        }
    });
    out
}
