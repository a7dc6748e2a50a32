//! Helpers shared by the integration tests (each test file includes this with `mod common;`).
#![allow(dead_code)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use vfl::preagg::PreAggregator;
use vfl::{aggregate, Matrix, OwnedMatrix, Result, StrategySpec};

/// An `n × d` matrix from literal rows.
pub fn mat(rows: &[&[f32]]) -> OwnedMatrix {
    let rows: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
    OwnedMatrix::from_rows(&rows).unwrap()
}

/// One-column matrix from a list of scalars.
pub fn col(values: &[f32]) -> OwnedMatrix {
    let rows: Vec<Vec<f32>> = values.iter().map(|&v| vec![v]).collect();
    OwnedMatrix::from_rows(&rows).unwrap()
}

pub fn spec(text: &str) -> StrategySpec {
    StrategySpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub fn try_agg(x: &OwnedMatrix, text: &str, w: Option<&[f64]>, f: Option<usize>) -> Result<Vec<f32>> {
    aggregate(x.view(), &StrategySpec::parse(text)?, w, f, 0)
}

pub fn agg(x: &OwnedMatrix, text: &str) -> Vec<f32> {
    try_agg(x, text, None, None).unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub fn agg_w(x: &OwnedMatrix, text: &str, w: &[f64]) -> Vec<f32> {
    try_agg(x, text, Some(w), None).unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub fn err(x: &OwnedMatrix, text: &str, w: Option<&[f64]>, f: Option<usize>) -> String {
    match try_agg(x, text, w, f) {
        Ok(v) => panic!("{text}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Run the pre-aggregator `text` (e.g. "NNM(f=1)") alone on `x`.
pub fn pre(text: &str, x: Matrix, w: &[f64], f: Option<usize>, seed: u64) -> (OwnedMatrix, Vec<f64>) {
    let s = spec(&format!("{text} + FedAvg"));
    let p = PreAggregator::from_config(&s.pre[0]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    p.apply(x, w, f, &mut rng).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol, "index {j}: got {g}, want {w} (tol {tol}); got {got:?}, want {want:?}");
    }
}

#[track_caller]
pub fn assert_contains(msg: &str, part: &str) {
    assert!(msg.contains(part), "expected the message to contain {part:?}, got {msg:?}");
}

/// Seeded `n × d` matrix of N(mean, sd²) values.
pub fn gaussian(n: usize, d: usize, mean: f32, sd: f32, seed: u64) -> OwnedMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(mean, sd).unwrap();
    OwnedMatrix { data: (0..n * d).map(|_| normal.sample(&mut rng)).collect(), n, d }
}

/// Bit patterns, so that `assert_eq!` distinguishes -0.0/0.0 and compares NaN.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
