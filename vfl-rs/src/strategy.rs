//! A strategy: pre-aggregators, one rule, a server optimiser — built from a `StrategySpec`.

use rand_chacha::ChaCha8Rng;

use crate::error::{Result, VflError};
use crate::matrix::{Matrix, OwnedMatrix};
use crate::preagg::PreAggregator;
use crate::registry::{Kind, REGISTRY};
use crate::rules::Rule;
use crate::server_opt::ServerOptimizer;
use crate::spec::StrategySpec;
use crate::trace::{share_through, Trace};

/// What a round tells the rules besides the updates: who sent each row (FoolsGold follows
/// clients by id; the row indices when `None`) and the server's own update on its root data
/// (FLTrust's reference).
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundInputs<'a> {
    pub ids: Option<&'a [usize]>,
    pub reference: Option<&'a [f32]>,
    /// Coefficients (one per row) of a weighted sum of the rows the caller needs besides the
    /// aggregate (the orchestrator's honest mean), with every row's norm: a rule that reads its
    /// input column block by column block computes them in that same read (`Trace::summed`).
    pub summed: Option<&'a [f64]>,
}

/// What to do with NaN/Inf in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// Refuse them with an error when a component cannot take them (the public `aggregate`).
    Reject,
    /// Let them through: in a simulated round a NaN attack against FedAvg should poison the
    /// model, and the run should show it, not stop.
    Propagate,
}

#[derive(Clone, Debug)]
pub struct Strategy {
    pub spec: StrategySpec,
    pre: Vec<PreAggregator>,
    rule: Rule,
    server: ServerOptimizer,
}

impl Strategy {
    pub fn new(spec: StrategySpec) -> Result<Self> {
        let pre = spec.pre.iter().map(PreAggregator::from_config).collect::<Result<Vec<_>>>()?;
        let rule = Rule::from_config(&spec.rule)?;
        if rule.tracks_clients() {
            if let Some(p) = spec.pre.iter().zip(&pre).find(|(_, p)| !p.keeps_rows()).map(|(c, _)| c) {
                return Err(VflError::value(format!(
                    "Expected pre-aggregators that keep one row per client before {}, which follows clients across rounds, got {}",
                    spec.rule.name(),
                    p.name()
                )));
            }
        }
        let server = ServerOptimizer::from_config(spec.server.as_ref())?;
        Ok(Strategy { spec, pre, rule, server })
    }

    /// This strategy behind a clip of every update to norm `c`, before its own pre-aggregators:
    /// the per-client bound of DP-FedAvg (McMahan et al., "Learning Differentially Private
    /// Recurrent Language Models", ICLR 2018). The spec is unchanged: the clip is the round's
    /// privacy setting, not part of the rule, and adaptive attacks replay it with the rule.
    pub fn behind_update_clip(mut self, c: f64) -> Result<Self> {
        if !(c.is_finite() && c > 0.0) {
            return Err(VflError::expected("the update clip", "a finite value > 0", c));
        }
        self.pre.insert(0, PreAggregator::Clipping { c: Some(c) });
        Ok(self)
    }

    fn accepts_non_finite(&self) -> bool {
        self.spec.pre.iter().all(|c| c.spec.accepts_non_finite) && self.spec.rule.spec.accepts_non_finite
    }

    /// Pre-aggregate and aggregate one round's updates (the server optimiser is not applied).
    ///
    /// `weights` are the clients' sample counts (equal when `None`); `f_default` fills in `f`
    /// for components that were not given one.
    pub fn aggregate(
        &mut self,
        x: Matrix,
        weights: Option<&[f64]>,
        f_default: Option<usize>,
        rng: &mut ChaCha8Rng,
        non_finite: NonFinite,
    ) -> Result<Vec<f32>> {
        Ok(self.aggregate_traced(x, weights, f_default, RoundInputs::default(), rng, non_finite, false)?.0)
    }

    /// `aggregate`, and what the defence did, in terms of the rows of `x`: each row's share of
    /// the aggregate (traced back through the pre-aggregators), the rows a selection rule kept
    /// (when the pre-aggregators keep the rows' identities), and the clipping applied (the
    /// rule's, else the last clipping pre-aggregator's). See `crate::trace`.
    /// `round` says who sent each row and what the server computed itself (see `RoundInputs`).
    #[allow(clippy::too_many_arguments)]
    pub fn aggregate_traced(
        &mut self,
        x: Matrix,
        weights: Option<&[f64]>,
        f_default: Option<usize>,
        round: RoundInputs,
        rng: &mut ChaCha8Rng,
        non_finite: NonFinite,
        trace: bool,
    ) -> Result<(Vec<f32>, Trace)> {
        if x.n() == 0 || x.d() == 0 {
            return Err(VflError::expected("updates", "at least one row and one column", format!("{} × {}", x.n(), x.d())));
        }
        let w = check_weights(weights, x.n())?;
        let must_reject = non_finite == NonFinite::Reject && !self.accepts_non_finite();
        // A plain weighted mean carries any NaN/inf of a weighted row into its result, so it is
        // checked after one pass over the matrix instead of scanning it first (twice the reads).
        let check_after = must_reject && self.pre.is_empty() && matches!(self.rule, Rule::Mean);
        // A rule whose first pass measures every row's distance finds a non-finite row there.
        let check_in_rule = must_reject && self.pre.is_empty() && self.rule.finds_non_finite_rows();
        if must_reject && !check_after && !check_in_rule {
            self.reject_non_finite(x)?;
        }
        // Fail on n/f before doing any pre-aggregation work, when the rule sees n rows.
        if self.pre.is_empty() {
            self.rule.check(x.n(), f_default)?;
        }
        let mut owned: Option<(OwnedMatrix, Vec<f64>)> = None;
        let mut pre_traces = Vec::with_capacity(self.pre.len());
        for p in &self.pre {
            let (cur, cw) = match &owned {
                Some((m, cw)) => (m.view(), cw.as_slice()),
                None => (x, w.as_slice()),
            };
            let (m, mw, t) = p.apply_traced(cur, cw, f_default, rng)?;
            pre_traces.push((cur.n(), t));
            owned = Some((m, mw));
        }
        let (out, mut t) = match &owned {
            // the rule reads the pre-aggregated rows, not the caller's
            Some((m, cw)) => self.rule.aggregate_traced(m.view(), cw, f_default, RoundInputs { summed: None, ..round }, rng, trace),
            None if check_in_rule => match self.rule.aggregate_or_stop(x, &w, f_default, round, rng, trace, true)? {
                Some(done) => Ok(done),
                None => {
                    self.reject_non_finite(x)?;
                    // every row is finite, so the rule's own point was not (CenteredClipping's kept
                    // centre, after a round that let NaN through): run it as before
                    self.rule.aggregate_traced(x, &w, f_default, round, rng, trace)
                }
            },
            None => self.rule.aggregate_traced(x, &w, f_default, round, rng, trace),
        }?;
        // Asked to reject, the caller never gets a non-finite aggregate: a rule that cannot take
        // non-finite rows names the first; one that tolerates them does so up to a point (f rows,
        // fewer than half for the median), past which it says how many there were; finite rows
        // whose aggregate overflows float32 are named as such.
        // (a branch-free fold, which vectorises; `any` stops early but tests one value at a time)
        if non_finite == NonFinite::Reject && out.iter().fold(false, |bad, v| bad | !v.is_finite()) {
            if check_after {
                self.reject_non_finite(x)?;
            }
            let bad = (0..x.n()).filter(|&r| x.row(r).iter().any(|v| !v.is_finite())).count();
            return Err(VflError::value(if bad == 0 {
                format!("Expected a finite aggregate from {}, got one that overflows float32 (every row is finite)", self.spec)
            } else {
                format!(
                    "Expected {} to absorb the non-finite rows, got a non-finite aggregate: {bad} of {} rows are not finite{}",
                    self.spec,
                    x.n(),
                    f_default.map_or(String::new(), |f| format!(" (f = {f})"))
                )
            }));
        }
        if !self.pre.iter().all(PreAggregator::keeps_rows) {
            t.selected = None; // a selected bucket is not a client
        }
        for (n_in, pt) in pre_traces.iter().rev() {
            if let (Some(share), Some(groups)) = (&t.share, &pt.groups) {
                t.share = Some(share_through(groups, share, *n_in));
            }
            if t.clipped.is_none() && pt.clipped.is_some() {
                (t.clipped, t.radius) = (pt.clipped, pt.radius);
            }
        }
        Ok((out, t))
    }

    /// When the strategy is a plain weighted mean of the rows (FedAvg or FedProx with no
    /// pre-aggregator): each row's coefficient w_i / Σ w (the trace's shares too). The
    /// orchestrator then computes the mean in the same pass as the round's other statistics.
    pub fn plain_mean_coefficients(&self, weights: Option<&[f64]>, n: usize) -> Result<Option<Vec<f64>>> {
        if !(self.pre.is_empty() && matches!(self.rule, Rule::Mean)) {
            return Ok(None);
        }
        let w = check_weights(weights, n)?;
        let total: f64 = w.iter().sum();
        Ok(Some(w.iter().map(|v| v / total).collect()))
    }

    fn reject_non_finite(&self, x: Matrix) -> Result<()> {
        match x.first_non_finite() {
            Some((i, j, v)) => {
                let tolerant: Vec<&str> =
                    REGISTRY.iter().filter(|c| c.kind == Kind::Rule && c.accepts_non_finite).map(|c| c.name).collect();
                Err(VflError::value(format!(
                    "Expected finite updates for {}, got {v} in row {i} at index {j}; {} accept non-finite rows",
                    self.spec,
                    tolerant.join(", ")
                )))
            }
            None => Ok(()),
        }
    }

    /// Move the global model by the aggregate, through the server optimiser.
    pub fn server_step(&mut self, global: &mut [f32], aggregate: &[f32]) -> Result<()> {
        self.server.step(global, aggregate)
    }

    /// How the server optimiser would move the global model for `aggregate` (the aggregate
    /// itself without one); it advances the optimiser's state, so call it on a clone to ask.
    pub fn server_move(&mut self, aggregate: Vec<f32>) -> Result<Vec<f32>> {
        if matches!(self.server, ServerOptimizer::Plain) {
            return Ok(aggregate);
        }
        let mut moved = vec![0.0; aggregate.len()];
        self.server.step(&mut moved, &aggregate)?;
        Ok(moved)
    }
}

fn check_weights(weights: Option<&[f64]>, n: usize) -> Result<Vec<f64>> {
    let Some(w) = weights else { return Ok(vec![1.0; n]) };
    if w.len() != n {
        return Err(VflError::expected("weights", format!("{n} values (one per update row)"), format!("{} values", w.len())));
    }
    if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
        return Err(VflError::expected(format!("weights[{i}]"), "a finite value >= 0", v));
    }
    let total: f64 = w.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return Err(VflError::expected("weights", "a positive, finite total", total));
    }
    Ok(w.to_vec())
}
