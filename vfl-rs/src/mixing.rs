//! Decentralised mixing: every worker replaces its model by a combination of the models it
//! received this round.
//!
//! Nearest-neighbour averaging (NNA) is the mixing step of MoNNA (Farhadkhani, Guerraoui, Gupta,
//! Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear Gradient Overhead",
//! ICML 2023): a worker that received `n − f` models (its own among them) keeps the `n − 2f`
//! closest to its own, itself included, and averages them. Keeping every received model is plain
//! gossip averaging (decentralised SGD's mixing step).

use rayon::prelude::*;

use crate::error::{Result, VflError};
use crate::matrix::{argsort_by_key, sq_dist_par, Matrix, OwnedMatrix};
use crate::preagg::mix_rows;
use crate::spec::ComponentConfig;

/// A decentralised mixer of the registry: how many of the `n − f` received models it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mixer {
    /// MoNNA's NNA: the `n − 2f` closest to the worker's own.
    NearestNeighbour,
    /// Gossip averaging: all `n − f`.
    Average,
}

impl Mixer {
    pub fn from_config(c: &ComponentConfig) -> Result<Self> {
        Ok(match c.name() {
            "nearest_neighbour" => Mixer::NearestNeighbour,
            "average" => Mixer::Average,
            other => return Err(VflError::value(format!("{other} is not a decentralised mixer"))),
        })
    }

    /// How many received models a worker averages, with `n` workers of which `f` are Byzantine.
    pub fn keep(self, n: usize, f: usize) -> Result<usize> {
        if n.saturating_sub(f) <= f {
            return Err(VflError::expected("a decentralised run", "n − f > f (an honest majority)", format!("n = {n}, f = {f}")));
        }
        Ok(match self {
            Mixer::NearestNeighbour => n - 2 * f,
            Mixer::Average => n - f,
        })
    }
}

/// For each received set (row indices into `models`, the worker's own model first), the mean of
/// the `keep` rows of that set closest in L2 distance to its first row, that row included.
///
/// Returns one row per set. Ties are broken by position in the set (earlier wins); rows with
/// NaN/Inf are infinitely far from everything (they are averaged only when fewer than `keep`
/// finite rows remain). `keep` equal to a set's length averages the whole set. The output does
/// not depend on the number of threads.
pub fn nearest_neighbour_mix(models: Matrix, received: &[Vec<usize>], keep: usize) -> Result<OwnedMatrix> {
    let n = models.n();
    if received.is_empty() {
        return Err(VflError::expected("the received sets", "at least one set (one per worker)", "none"));
    }
    for (w, set) in received.iter().enumerate() {
        if set.is_empty() {
            return Err(VflError::expected(format!("received set {w}"), "at least one row (the worker's own model)", "an empty set"));
        }
        if let Some(&bad) = set.iter().find(|&&r| r >= n) {
            return Err(VflError::expected(format!("received set {w}"), format!("row indices below n = {n}"), bad));
        }
        if keep == 0 || keep > set.len() {
            return Err(VflError::expected(
                format!("keep with received set {w} of {} rows", set.len()),
                format!("1 <= keep <= {}", set.len()),
                keep,
            ));
        }
    }
    // Distance of every member of every set to the set's first row (its owner), in parallel over
    // (set, member) pairs; each distance is itself a deterministic blockwise reduction.
    let pairs: Vec<(usize, usize)> = received.iter().enumerate().flat_map(|(w, set)| (1..set.len()).map(move |j| (w, j))).collect();
    let dists: Vec<f64> = pairs
        .par_iter()
        .map(|&(w, j)| {
            let d = sq_dist_par(models.row(received[w][0]), models.row(received[w][j]));
            if d.is_finite() {
                d
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let weight = 1.0 / keep as f64;
    let mut offset = 0;
    let groups: Vec<Vec<(usize, f64)>> = received
        .iter()
        .map(|set| {
            let mut key = Vec::with_capacity(set.len());
            key.push(f64::NEG_INFINITY); // the owner is always kept
            key.extend_from_slice(&dists[offset..offset + set.len() - 1]);
            offset += set.len() - 1;
            argsort_by_key(&key).into_iter().take(keep).map(|p| (set[p], weight)).collect()
        })
        .collect();
    Ok(mix_rows(models, &groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[f32]) -> OwnedMatrix {
        OwnedMatrix::from_rows(&values.iter().map(|&v| vec![v]).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn hand_case_three_honest_one_byzantine() {
        // Honest 0, 10, 20 (rows 0..3), Byzantine 100 (row 3); n = 4, f = 1: each worker gets
        // n − f = 3 models (own, one honest peer, the Byzantine one) and averages n − 2f = 2.
        let x = column(&[0.0, 10.0, 20.0, 100.0]);
        let received = vec![vec![0, 1, 3], vec![1, 2, 3], vec![2, 1, 3]];
        let out = nearest_neighbour_mix(x.view(), &received, 2).unwrap();
        assert_eq!(out.data, vec![5.0, 15.0, 15.0]);
        // Keeping every received model is plain averaging: the Byzantine model gets in.
        let avg = nearest_neighbour_mix(x.view(), &received, 3).unwrap();
        assert_eq!(avg.data, vec![110.0 / 3.0, 130.0 / 3.0, 130.0 / 3.0]);
    }

    #[test]
    fn multi_dimensional_and_ties_by_position() {
        let x = OwnedMatrix::from_rows(&[vec![0.0, 0.0], vec![3.0, 4.0], vec![-3.0, -4.0], vec![1.0, 0.0]]).unwrap();
        // rows 1 and 2 are both at distance 5 from row 0: the earlier in the set wins.
        let out = nearest_neighbour_mix(x.view(), &[vec![0, 2, 1], vec![0, 1, 2]], 2).unwrap();
        assert_eq!(out.row(0), &[-1.5, -2.0]);
        assert_eq!(out.row(1), &[1.5, 2.0]);
        // the owner is kept even when a duplicate of another row sits at distance 0
        let out = nearest_neighbour_mix(x.view(), &[vec![3, 0, 3]], 1).unwrap();
        assert_eq!(out.row(0), &[1.0, 0.0]);
    }

    #[test]
    fn non_finite_rows_are_left_out() {
        let x = OwnedMatrix::from_rows(&[vec![1.0, 1.0], vec![f32::NAN, 0.0], vec![f32::INFINITY, 1.0], vec![3.0, 1.0]]).unwrap();
        let out = nearest_neighbour_mix(x.view(), &[vec![0, 1, 2, 3]], 2).unwrap();
        assert_eq!(out.row(0), &[2.0, 1.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = column(&[0.0, 1.0, 2.0]);
        let msg = |r: Result<OwnedMatrix>| r.unwrap_err().to_string();
        assert!(msg(nearest_neighbour_mix(x.view(), &[], 1)).contains("Expected at least one set"));
        assert!(msg(nearest_neighbour_mix(x.view(), &[vec![]], 1)).contains("got an empty set"));
        assert!(
            msg(nearest_neighbour_mix(x.view(), &[vec![0, 3]], 1)).contains("Expected row indices below n = 3 for received set 0, got 3")
        );
        assert!(msg(nearest_neighbour_mix(x.view(), &[vec![0, 1]], 0)).contains("Expected 1 <= keep <= 2"));
        assert!(msg(nearest_neighbour_mix(x.view(), &[vec![0, 1]], 3)).contains("got 3"));
    }

    #[test]
    fn identical_with_1_and_4_threads() {
        let (n, d) = (9, 5000);
        let data: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0).collect();
        let x = Matrix::new(&data, n, d).unwrap();
        let received: Vec<Vec<usize>> = (0..6).map(|w| (0..7).map(|j| (w + 2 * j) % n).collect()).collect();
        let run = || nearest_neighbour_mix(x, &received, 4).unwrap();
        let pool = |t: usize| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        assert!(pool(1).install(run) == pool(4).install(run));
    }
}
