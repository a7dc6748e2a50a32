//! Server optimisers: how the aggregated update Δ moves the global model w.
//!
//! Reddi et al., "Adaptive Federated Optimization", ICLR 2021 (FedAdam, FedYogi, FedAdagrad:
//! Δ is a pseudo-gradient, no bias correction, second moment initialised to τ²), and Hsu, Qi,
//! Brown 2019 (FedAvgM: server momentum).

use rayon::prelude::*;

use crate::error::{Result, VflError};
use crate::spec::ComponentConfig;

#[derive(Clone, Debug)]
pub enum ServerOptimizer {
    /// w ← w + Δ.
    Plain,
    Momentum {
        lr: f64,
        beta: f64,
        v: Vec<f32>,
    },
    Adam {
        eta: f64,
        b1: f64,
        b2: f64,
        tau: f64,
        m: Vec<f32>,
        v: Vec<f32>,
    },
    Yogi {
        eta: f64,
        b1: f64,
        b2: f64,
        tau: f64,
        m: Vec<f32>,
        v: Vec<f32>,
    },
    Adagrad {
        eta: f64,
        b1: f64,
        tau: f64,
        m: Vec<f32>,
        v: Vec<f32>,
    },
}

impl ServerOptimizer {
    pub fn from_config(c: Option<&ComponentConfig>) -> Result<Self> {
        let Some(c) = c else { return Ok(ServerOptimizer::Plain) };
        let p = &c.params;
        let (m, v) = (Vec::new(), Vec::new());
        Ok(match c.name() {
            "FedAvgM" => ServerOptimizer::Momentum { lr: p.f64("server_lr")?, beta: p.f64("momentum")?, v },
            "FedAdam" => ServerOptimizer::Adam { eta: p.f64("eta")?, b1: p.f64("beta_1")?, b2: p.f64("beta_2")?, tau: p.f64("tau")?, m, v },
            "FedYogi" => ServerOptimizer::Yogi { eta: p.f64("eta")?, b1: p.f64("beta_1")?, b2: p.f64("beta_2")?, tau: p.f64("tau")?, m, v },
            "FedAdagrad" => ServerOptimizer::Adagrad { eta: p.f64("eta")?, b1: p.f64("beta_1")?, tau: p.f64("tau")?, m, v },
            other => return Err(VflError::value(format!("{other} is not a server optimiser"))),
        })
    }

    /// Apply the aggregate `delta` to `w` in place.
    pub fn step(&mut self, w: &mut [f32], delta: &[f32]) -> Result<()> {
        if w.len() != delta.len() {
            return Err(VflError::expected("the aggregated update", format!("{} values (the global model)", w.len()), delta.len()));
        }
        let d = w.len();
        let init = |buf: &mut Vec<f32>, value: f32| {
            if buf.len() != d {
                *buf = vec![value; d];
            }
        };
        let yogi = matches!(self, ServerOptimizer::Yogi { .. });
        match self {
            ServerOptimizer::Plain => w.par_iter_mut().zip(delta).for_each(|(x, g)| *x += g),
            ServerOptimizer::Momentum { lr, beta, v } => {
                init(v, 0.0);
                let (lr, beta) = (*lr as f32, *beta as f32);
                w.par_iter_mut().zip(v.par_iter_mut()).zip(delta).for_each(|((x, vi), g)| {
                    *vi = beta * *vi + g;
                    *x += lr * *vi;
                });
            }
            ServerOptimizer::Adam { eta, b1, b2, tau, m, v } | ServerOptimizer::Yogi { eta, b1, b2, tau, m, v } => {
                let (eta, b1, b2, tau) = (*eta as f32, *b1 as f32, *b2 as f32, *tau as f32);
                init(m, 0.0);
                init(v, tau * tau);
                w.par_iter_mut().zip(m.par_iter_mut()).zip(v.par_iter_mut()).zip(delta).for_each(|(((x, mi), vi), g)| {
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    let g2 = g * g;
                    *vi = if yogi {
                        // sign(v − Δ²) with sign(0) = 0, as in the paper.
                        let s = if *vi > g2 {
                            1.0
                        } else if *vi < g2 {
                            -1.0
                        } else {
                            0.0
                        };
                        *vi - (1.0 - b2) * g2 * s
                    } else {
                        b2 * *vi + (1.0 - b2) * g2
                    };
                    *x += eta * *mi / (vi.sqrt() + tau);
                });
            }
            ServerOptimizer::Adagrad { eta, b1, tau, m, v } => {
                let (eta, b1, tau) = (*eta as f32, *b1 as f32, *tau as f32);
                init(m, 0.0);
                init(v, tau * tau);
                w.par_iter_mut().zip(m.par_iter_mut()).zip(v.par_iter_mut()).zip(delta).for_each(|(((x, mi), vi), g)| {
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    *vi += g * g;
                    *x += eta * *mi / (vi.sqrt() + tau);
                });
            }
        }
        Ok(())
    }
}
