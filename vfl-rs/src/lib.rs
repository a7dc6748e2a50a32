//! VelocityFL core: robust aggregation rules, pre-aggregators, server optimisers, model-update
//! attacks and the round orchestrator, over `n × d` float32 update matrices.
//!
//! Pure Rust; the Python bindings live in [`python`] behind the `python` feature.

#[macro_use]
mod widest;

pub mod attacks;
pub mod error;
pub mod matrix;
pub mod mixing;
pub mod orchestrator;
pub mod params;
pub mod preagg;
pub mod registry;
pub mod rules;
pub mod server_opt;
pub mod sortnet;
pub mod spec;
pub mod strategy;
pub mod threads;
pub mod trace;

#[cfg(feature = "python")]
mod python;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use error::{Result, VflError};
pub use matrix::{Matrix, OwnedMatrix};
pub use spec::{parse_attack, ComponentConfig, StrategySpec};
pub use strategy::{NonFinite, Strategy};

/// Aggregate one matrix with a strategy (stateless: a fresh strategy each call). `f` fills in
/// the rules' `f` when the spec leaves it out; `seed` drives bucketing's shuffle.
pub fn aggregate(x: Matrix, spec: &StrategySpec, weights: Option<&[f64]>, f: Option<usize>, seed: u64) -> Result<Vec<f32>> {
    let mut strategy = Strategy::new(spec.clone())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    strategy.aggregate(x, weights, f, &mut rng, NonFinite::Reject)
}
