//! Model-update attacks: they see the round's honest updates (an omniscient attacker, the worst
//! case that robustness papers evaluate against) and overwrite the malicious clients' rows.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal as StdNormal};

use crate::error::{Result, VflError};
use crate::matrix::{pairwise_sq_dists, sq_dist_par, weighted_mean, Matrix, OwnedMatrix, COL_BLOCK};
use crate::rules::krum::krum_select;
use crate::spec::ComponentConfig;
use crate::strategy::{NonFinite, RoundInputs, Strategy};

#[derive(Clone, Debug, PartialEq)]
pub enum UpdateAttack {
    GaussianNoise { sigma: f64 },
    SignFlip { scale: f64 },
    Scaling { factor: f64 },
    ModelPoisoning { intensity: f64 },
    Ipm { epsilon: f64 },
    Alie { z: Option<f64> },
    Mimic { target: Option<usize> },
    Sybil,
    Nan,
    Inf,
    AdaptiveIpm { lower: f64, upper: f64, steps: usize },
    AdaptiveAlie { lower: f64, upper: f64, steps: usize },
    MinMax { perturbation: Perturbation, gamma_init: f64 },
    MinSum { perturbation: Perturbation, gamma_init: f64 },
    FangKrum { threshold: f64 },
    FangTrim { b: f64 },
    AgrTailored { perturbation: Perturbation, gamma_init: f64, steps: usize },
}

/// Min-Max's and Min-Sum's direction p (the malicious update is μ − γ·p).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perturbation {
    /// μ / ‖μ‖
    UnitVec,
    /// the honest updates' coordinate-wise standard deviation (unbiased, as the authors' `torch.std`)
    Std,
    /// sign(μ)
    Sign,
}

impl UpdateAttack {
    /// Whether the attack can work in a federation of `num_clients` with these malicious ids:
    /// mimic's target must be one of its honest clients (it copies an honest update).
    pub fn check_federation(&self, num_clients: usize, malicious: &BTreeSet<usize>) -> Result<()> {
        if let UpdateAttack::Mimic { target: Some(t) } = self {
            if *t >= num_clients {
                return Err(VflError::expected("mimic's target", format!("a client id below num_clients = {num_clients}"), t));
            }
            if malicious.contains(t) {
                return Err(VflError::value(format!("Expected mimic's target to be an honest client, got client {t}, which is malicious")));
            }
        }
        Ok(())
    }
}

/// What an attack did in one round.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttackOutcome {
    pub name: &'static str,
    /// The strength used: ε for IPM, z for ALIE, the chosen value for adaptive attacks, the
    /// copied client id for mimic.
    pub strength: Option<f64>,
}

/// What the adaptive attacks optimise against.
pub enum Defence<'a> {
    /// A federated round as the core runs it: pre-aggregators, rule and server optimiser, with
    /// the random stream the round's aggregation draws from, so that a trial replays the round
    /// exactly. Trials run on clones: the strategy's state and the stream are untouched.
    Strategy { strategy: &'a Strategy, weights: Option<&'a [f64]>, f_default: Option<usize>, round: RoundInputs<'a>, rng: &'a ChaCha8Rng },
    /// A defence the caller runs (a Python rule, MoNNA's mixing): the attacked matrix in, the
    /// defended outputs out, one row each (one aggregate, or every honest worker's mixed model).
    Outputs(&'a dyn Fn(&OwnedMatrix) -> Result<OwnedMatrix>),
}

/// The attack's view of the round.
pub struct AttackContext<'a> {
    /// Row indices of honest and malicious clients.
    pub honest: &'a [usize],
    pub malicious: &'a [usize],
    /// Client id of each row (for `mimic`'s target).
    pub client_ids: &'a [usize],
    pub rng: &'a mut ChaCha8Rng,
    pub defence: &'a Defence<'a>,
}

/// The round as the attacks see it: which rows attack, who they are, and the defence they face.
pub struct AttackRound<'a> {
    /// Row indices of the malicious clients (distinct, below n).
    pub malicious: &'a [usize],
    /// Client id of each row (for `mimic`'s target).
    pub client_ids: &'a [usize],
    /// What the adaptive attacks optimise against.
    pub defence: Defence<'a>,
}

/// Apply `attacks` in order to the malicious rows of a copy of `x`; returns the attacked matrix
/// and what each attack did. The one place that builds an attack's context, for the
/// orchestrator's rounds and for `apply_attack` alike.
pub fn attack_round(
    x: Matrix,
    attacks: &[UpdateAttack],
    round: &AttackRound,
    rng: &mut ChaCha8Rng,
) -> Result<(OwnedMatrix, Vec<AttackOutcome>)> {
    let n = x.n();
    if round.client_ids.len() != n {
        return Err(VflError::expected("client ids", format!("{n} (one per update row)"), round.client_ids.len()));
    }
    let mut is_malicious = vec![false; n];
    for &r in round.malicious {
        if r >= n {
            return Err(VflError::expected("malicious row indices", format!("indices below n = {n}"), r));
        }
        if std::mem::replace(&mut is_malicious[r], true) {
            return Err(VflError::value(format!("Expected distinct malicious rows, got {r} twice")));
        }
    }
    let honest: Vec<usize> = (0..n).filter(|&r| !is_malicious[r]).collect();
    let malicious_ids: BTreeSet<usize> = round.malicious.iter().map(|&r| round.client_ids[r]).collect();
    for a in attacks {
        if let UpdateAttack::Mimic { target: Some(t) } = a {
            if malicious_ids.contains(t) {
                return Err(VflError::value(format!("Expected mimic's target to be an honest client, got client {t}, which is malicious")));
            }
        }
    }
    let mut m = x.to_owned();
    let mut outcomes = Vec::with_capacity(attacks.len());
    for a in attacks {
        let mut ctx =
            AttackContext { honest: &honest, malicious: round.malicious, client_ids: round.client_ids, rng, defence: &round.defence };
        outcomes.push(a.apply(&mut m, &mut ctx)?);
    }
    Ok((m, outcomes))
}

/// How much a trial matrix hurts: how far the defended outcome lands from where the honest
/// updates alone would take it. For a federated round, the squared distance between the global
/// model's move (through the server optimiser: the aggregate itself without one) and the move
/// the honest mean μ would make; for a caller's defence, the mean squared distance of its output
/// rows from μ. A non-finite outcome counts as infinitely far.
struct Objective<'a, 'b> {
    defence: &'a Defence<'b>,
    /// μ, or μ's move through the server optimiser
    target: Vec<f32>,
}

impl<'a, 'b> Objective<'a, 'b> {
    fn new(defence: &'a Defence<'b>, mu: &[f32]) -> Result<Self> {
        let target = match defence {
            Defence::Strategy { strategy, .. } => (*strategy).clone().server_move(mu.to_vec())?,
            Defence::Outputs(_) => mu.to_vec(),
        };
        Ok(Objective { defence, target })
    }

    fn damage(&self, trial: &OwnedMatrix) -> Result<f64> {
        let dist = match self.defence {
            Defence::Strategy { strategy, weights, f_default, round, rng } => {
                let mut strategy = (*strategy).clone();
                let mut rng = (*rng).clone();
                let (agg, _) =
                    strategy.aggregate_traced(trial.view(), *weights, *f_default, *round, &mut rng, NonFinite::Propagate, false)?;
                sq_dist_par(&strategy.server_move(agg)?, &self.target)
            }
            Defence::Outputs(run) => {
                let out = run(trial)?;
                if out.n == 0 || out.d != self.target.len() {
                    return Err(VflError::expected(
                        "the defence's output",
                        format!("at least one row of {} values", self.target.len()),
                        format!("{} × {}", out.n, out.d),
                    ));
                }
                (0..out.n).map(|r| sq_dist_par(out.row(r), &self.target)).sum::<f64>() / out.n as f64
            }
        };
        Ok(if dist.is_nan() { f64::INFINITY } else { dist })
    }
}

/// ALIE's default z (Baruch et al., NeurIPS 2019, Algorithm 3): s = ⌊n/2⌋ + 1 − f supporters
/// are needed, z = Φ⁻¹((n − s)/n). `s` is kept in 1..n−1 so z stays finite (f ≥ n/2 or tiny
/// rounds); with n = 1 there is nobody to hide among and z = 0 (the honest mean).
pub fn alie_z(n: usize, f: usize) -> Result<f64> {
    if n == 0 || f > n {
        return Err(VflError::expected("ALIE's n and f", "0 <= f <= n and n >= 1", format!("n = {n}, f = {f}")));
    }
    if n == 1 {
        return Ok(0.0);
    }
    let s = (n / 2 + 1).saturating_sub(f).clamp(1, n - 1);
    let p = (n - s) as f64 / n as f64;
    let normal = StdNormal::new(0.0, 1.0).map_err(|e| VflError::value(e.to_string()))?;
    Ok(normal.inverse_cdf(p))
}

impl UpdateAttack {
    /// `None` for data attacks, which the Python trainer executes.
    pub fn from_config(c: &ComponentConfig) -> Result<Option<Self>> {
        let p = &c.params;
        let range = |what: &str| -> Result<(f64, f64, usize)> {
            let (lo, hi) = (p.f64("lower")?, p.f64("upper")?);
            if lo >= hi {
                return Err(VflError::expected(format!("{what}.lower"), format!("less than upper = {hi}"), lo));
            }
            Ok((lo, hi, p.usize("steps")?))
        };
        Ok(Some(match c.name() {
            "gaussian_noise" => UpdateAttack::GaussianNoise { sigma: p.f64("sigma")? },
            "sign_flip" => UpdateAttack::SignFlip { scale: p.f64("scale")? },
            "scaling" => UpdateAttack::Scaling { factor: p.f64("factor")? },
            "model_poisoning" => UpdateAttack::ModelPoisoning { intensity: p.f64("intensity")? },
            "ipm" => UpdateAttack::Ipm { epsilon: p.f64("epsilon")? },
            "alie" => UpdateAttack::Alie { z: p.opt_f64("z")? },
            "mimic" => UpdateAttack::Mimic { target: p.opt_usize("target")? },
            "sybil" => UpdateAttack::Sybil,
            "nan" => UpdateAttack::Nan,
            "inf" => UpdateAttack::Inf,
            "adaptive_ipm" => {
                let (lower, upper, steps) = range("adaptive_ipm")?;
                UpdateAttack::AdaptiveIpm { lower, upper, steps }
            }
            "adaptive_alie" => {
                let (lower, upper, steps) = range("adaptive_alie")?;
                UpdateAttack::AdaptiveAlie { lower, upper, steps }
            }
            "min_max" | "min_sum" | "agr_tailored" => {
                let perturbation = match p.choice("perturbation")? {
                    "std" => Perturbation::Std,
                    "sign" => Perturbation::Sign,
                    _ => Perturbation::UnitVec,
                };
                let gamma_init = p.f64("gamma_init")?;
                match c.name() {
                    "min_max" => UpdateAttack::MinMax { perturbation, gamma_init },
                    "min_sum" => UpdateAttack::MinSum { perturbation, gamma_init },
                    _ => UpdateAttack::AgrTailored { perturbation, gamma_init, steps: p.usize("steps")? },
                }
            }
            "fang_krum" => UpdateAttack::FangKrum { threshold: p.f64("threshold")? },
            "fang_trim" => UpdateAttack::FangTrim { b: p.f64("b")? },
            _ => return Ok(None),
        }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            UpdateAttack::GaussianNoise { .. } => "gaussian_noise",
            UpdateAttack::SignFlip { .. } => "sign_flip",
            UpdateAttack::Scaling { .. } => "scaling",
            UpdateAttack::ModelPoisoning { .. } => "model_poisoning",
            UpdateAttack::Ipm { .. } => "ipm",
            UpdateAttack::Alie { .. } => "alie",
            UpdateAttack::Mimic { .. } => "mimic",
            UpdateAttack::Sybil => "sybil",
            UpdateAttack::Nan => "nan",
            UpdateAttack::Inf => "inf",
            UpdateAttack::AdaptiveIpm { .. } => "adaptive_ipm",
            UpdateAttack::AdaptiveAlie { .. } => "adaptive_alie",
            UpdateAttack::MinMax { .. } => "min_max",
            UpdateAttack::MinSum { .. } => "min_sum",
            UpdateAttack::FangKrum { .. } => "fang_krum",
            UpdateAttack::FangTrim { .. } => "fang_trim",
            UpdateAttack::AgrTailored { .. } => "agr_tailored",
        }
    }

    /// Overwrite the malicious rows of `x`. With no malicious rows this does nothing.
    pub fn apply(&self, x: &mut OwnedMatrix, ctx: &mut AttackContext) -> Result<AttackOutcome> {
        let mut outcome = AttackOutcome { name: self.name(), strength: None };
        if ctx.malicious.is_empty() {
            return Ok(outcome);
        }
        let (n, f) = (x.n, ctx.malicious.len());
        // The honest reference: honest rows, or the attackers' own updates when every client is malicious.
        let reference: &[usize] = if ctx.honest.is_empty() { ctx.malicious } else { ctx.honest };
        match self {
            UpdateAttack::GaussianNoise { sigma } => {
                let normal = Normal::new(0.0f32, *sigma as f32).map_err(|e| VflError::value(e.to_string()))?;
                let seeds: Vec<u64> = ctx.malicious.iter().map(|_| ctx.rng.random()).collect();
                for_rows(x, ctx.malicious, &seeds, |row, seed| {
                    let mut r = ChaCha8Rng::seed_from_u64(seed);
                    row.iter_mut().for_each(|v| *v += normal.sample(&mut r));
                });
                outcome.strength = Some(*sigma);
            }
            UpdateAttack::SignFlip { scale } => {
                let s = -*scale as f32;
                for_rows(x, ctx.malicious, &[], |row, _| row.iter_mut().for_each(|v| *v *= s));
                outcome.strength = Some(*scale);
            }
            UpdateAttack::Scaling { factor } => {
                let s = *factor as f32;
                for_rows(x, ctx.malicious, &[], |row, _| row.iter_mut().for_each(|v| *v *= s));
                outcome.strength = Some(*factor);
            }
            UpdateAttack::ModelPoisoning { intensity } => {
                let mu = rows_mean(x, reference);
                let (a, boost) = (*intensity as f32, n as f32 / f as f32);
                for_rows(x, ctx.malicious, &[], |row, _| row.iter_mut().zip(&mu).for_each(|(v, m)| *v = (1.0 - a) * *v - a * boost * m));
                outcome.strength = Some(*intensity);
            }
            UpdateAttack::Ipm { epsilon } => {
                let row = ipm_row(&rows_mean(x, reference), *epsilon);
                set_rows(x, ctx.malicious, &row);
                outcome.strength = Some(*epsilon);
            }
            UpdateAttack::Alie { z } => {
                let z = match z {
                    Some(z) => *z,
                    None => alie_z(n, f)?,
                };
                let (mu, sd) = column_mean_std(x, reference);
                set_rows(x, ctx.malicious, &alie_row(&mu, &sd, z));
                outcome.strength = Some(z);
            }
            UpdateAttack::Mimic { target } => {
                let row_of = |id: usize| ctx.honest.iter().copied().find(|&r| ctx.client_ids[r] == id);
                let src = match target.and_then(row_of) {
                    Some(r) => r,
                    None => reference[ctx.rng.random_range(0..reference.len())],
                };
                let copy = x.row(src).to_vec();
                set_rows(x, ctx.malicious, &copy);
                outcome.strength = Some(ctx.client_ids[src] as f64);
            }
            UpdateAttack::Sybil => {
                let row = rows_mean(x, ctx.malicious);
                set_rows(x, ctx.malicious, &row);
            }
            UpdateAttack::Nan => set_rows(x, ctx.malicious, &vec![f32::NAN; x.d]),
            UpdateAttack::Inf => set_rows(x, ctx.malicious, &vec![f32::INFINITY; x.d]),
            UpdateAttack::MinMax { perturbation, gamma_init } | UpdateAttack::MinSum { perturbation, gamma_init } => {
                let within = if matches!(self, UpdateAttack::MinMax { .. }) { Within::Max } else { Within::Sum };
                let (row, gamma) = agr_agnostic_row(x, reference, *perturbation, *gamma_init, within);
                set_rows(x, ctx.malicious, &row);
                outcome.strength = Some(gamma);
            }
            UpdateAttack::FangKrum { threshold } => {
                let (row, lambda) = fang_krum_row(x, ctx.honest, ctx.malicious, *threshold);
                set_rows(x, ctx.malicious, &row);
                outcome.strength = Some(lambda);
            }
            UpdateAttack::FangTrim { b } => {
                fang_trim(x, reference, ctx.malicious, *b, ctx.rng);
                outcome.strength = Some(*b);
            }
            UpdateAttack::AdaptiveIpm { lower, upper, steps } => {
                let mu = rows_mean(x, reference);
                let best = line_search(x, ctx, &mu, *lower, *upper, *steps, |e| ipm_row(&mu, e))?;
                set_rows(x, ctx.malicious, &ipm_row(&mu, best));
                outcome.strength = Some(best);
            }
            UpdateAttack::AdaptiveAlie { lower, upper, steps } => {
                let (mu, sd) = column_mean_std(x, reference);
                let best = line_search(x, ctx, &mu, *lower, *upper, *steps, |z| alie_row(&mu, &sd, z))?;
                set_rows(x, ctx.malicious, &alie_row(&mu, &sd, best));
                outcome.strength = Some(best);
            }
            UpdateAttack::AgrTailored { perturbation, gamma_init, steps } => {
                let mu = rows_mean(x, reference);
                let p = perturbation_direction(x, reference, &mu, *perturbation);
                let gamma = tailored_gamma(x, ctx, &mu, *gamma_init, *steps, |g| shifted_row(&mu, &p, g))?;
                set_rows(x, ctx.malicious, &shifted_row(&mu, &p, gamma));
                outcome.strength = Some(gamma);
            }
        }
        Ok(outcome)
    }
}

fn ipm_row(mu: &[f32], epsilon: f64) -> Vec<f32> {
    let e = epsilon as f32;
    mu.iter().map(|m| -e * m).collect()
}

fn alie_row(mu: &[f32], sd: &[f32], z: f64) -> Vec<f32> {
    let z = z as f32;
    mu.iter().zip(sd).map(|(m, s)| m - z * s).collect()
}

/// Try `steps` log-spaced strengths in [lower, upper]; keep the one that hurts most (see
/// `Objective`; ties: the smaller strength). Each trial replays the defence on clones.
fn line_search(
    x: &OwnedMatrix,
    ctx: &AttackContext,
    mu: &[f32],
    lower: f64,
    upper: f64,
    steps: usize,
    make_row: impl Fn(f64) -> Vec<f32>,
) -> Result<f64> {
    let objective = Objective::new(ctx.defence, mu)?;
    let (ll, lu) = (lower.ln(), upper.ln());
    let mut trial = x.clone();
    let mut best = (f64::NEG_INFINITY, lower);
    for k in 0..steps {
        let s = (ll + (lu - ll) * k as f64 / (steps - 1) as f64).exp();
        set_rows(&mut trial, ctx.malicious, &make_row(s));
        let damage = objective.damage(&trial)?;
        if damage > best.0 {
            best = (damage, s);
        }
    }
    Ok(best.1)
}

/// The AGR-tailored γ search (Shejwalkar & Houmansadr, NDSS 2021). The authors halve a step from
/// γ_init with a rule-specific condition (Krum: an attacker is selected; trimmed mean, median:
/// the damage grew); against any defence the damage (see `Objective`) grows with γ until the
/// defence rejects the attackers and then drops, so a halving search from γ_init alone misses
/// the peak when it lies below γ_init. Here the first half of the `steps` trials scan a log grid
/// over [γ_init/64, 2·γ_init], the second half bisect between the best point and the next larger
/// one (keeping a trial that hurt more), which finds the rejection edge to a small fraction of
/// the grid's spacing. Ties keep the smaller γ.
fn tailored_gamma(
    x: &OwnedMatrix,
    ctx: &AttackContext,
    mu: &[f32],
    gamma_init: f64,
    steps: usize,
    make_row: impl Fn(f64) -> Vec<f32>,
) -> Result<f64> {
    let objective = Objective::new(ctx.defence, mu)?;
    let mut trial = x.clone();
    let mut damage = |gamma: f64| -> Result<f64> {
        set_rows(&mut trial, ctx.malicious, &make_row(gamma));
        objective.damage(&trial)
    };
    let scanned = steps.div_ceil(2).max(2); // (the registry asks for steps >= 2)
    let (ll, lu) = ((gamma_init / 64.0).ln(), (2.0 * gamma_init).ln());
    let mut grid: Vec<f64> = (0..scanned).map(|k| (ll + (lu - ll) * k as f64 / (scanned - 1) as f64).exp()).collect();
    (grid[0], grid[scanned - 1]) = (gamma_init / 64.0, 2.0 * gamma_init); // exact ends
    let mut best = (f64::NEG_INFINITY, gamma_init, 0);
    for (k, &g) in grid.iter().enumerate() {
        let h = damage(g)?;
        if h > best.0 {
            best = (h, g, k);
        }
    }
    let Some(&upper) = grid.get(best.2 + 1) else { return Ok(best.1) };
    let (mut lo, mut hi) = (best.1, upper);
    for _ in scanned..steps {
        let mid = 0.5 * (lo + hi);
        let h = damage(mid)?;
        if h > best.0 {
            (best.0, best.1, lo) = (h, mid, mid);
        } else {
            hi = mid;
        }
    }
    Ok(best.1)
}

/// Run `f` on each listed row in parallel, passing `seeds[k]` (or 0) alongside.
fn for_rows(x: &mut OwnedMatrix, rows: &[usize], seeds: &[u64], f: impl Fn(&mut [f32], u64) + Sync) {
    let d = x.d;
    x.data.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        if let Some(k) = rows.iter().position(|&r| r == i) {
            f(row, seeds.get(k).copied().unwrap_or(0));
        }
    });
}

/// Fang et al.'s attack on Krum (USENIX Security 2020, full knowledge), in update space (their
/// w_Re − λs is the update −λ·s): s = sign(μ) of the honest updates, every malicious row −λ·s.
/// λ starts at the paper's bound
///   1/((n − 2c − 1)·√d) · min_i Σ_{l ∈ Γ(i)} ‖u_l − u_i‖ + 1/√d · max_i ‖u_i‖
/// (i over the honest updates, Γ(i) the n − c − 2 honest updates nearest to u_i) and is halved
/// until Krum with f = c selects a malicious row, or λ falls below `threshold`, which is then
/// sent. Krum's scores use the squared distances (as our Krum); honest–malicious distances
/// expand as ‖u_i‖² + 2λ⟨u_i, s⟩ + λ²‖s‖², so each λ costs O(n²) after one pass. Returns the row
/// and λ.
fn fang_krum_row(x: &OwnedMatrix, honest: &[usize], malicious: &[usize], threshold: f64) -> (Vec<f32>, f64) {
    let v = x.view();
    let (n, c, d) = (x.n, malicious.len(), x.d as f64);
    let reference: &[usize] = if honest.is_empty() { malicious } else { honest };
    let mu = rows_mean(x, reference);
    let s = signs(&mu);
    let h = honest.len();
    let hh = sq_dists_among(x, honest);
    let stats: Vec<(f64, f64)> = honest
        .par_iter()
        .map(|&i| {
            v.row(i)
                .iter()
                .zip(&s)
                .fold((0.0, 0.0), |(a, b), (&u, &sj)| (a + f64::from(u) * f64::from(u), b + f64::from(u) * f64::from(sj)))
        })
        .collect();
    let ss: f64 = s.iter().map(|&sj| f64::from(sj * sj)).sum();
    // the paper's upper bound on λ
    let near = n.saturating_sub(c + 2).min(h.saturating_sub(1));
    let closest = hh
        .chunks(h.max(1))
        .enumerate()
        .map(|(i, row)| {
            let mut others: Vec<f64> = row.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &q)| q.sqrt()).collect();
            others.sort_by(f64::total_cmp);
            others[..near.min(others.len())].iter().sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    let farthest = stats.iter().map(|&(a, _)| a.sqrt()).fold(0.0, f64::max);
    let spread = (n as f64 - 2.0 * c as f64 - 1.0).max(1.0);
    let mut lambda = if closest.is_finite() { closest / (spread * d.sqrt()) } else { 0.0 } + farthest / d.sqrt();
    if !lambda.is_finite() {
        lambda = threshold; // non-finite honest updates: no bound to start from (and halving ∞ never ends)
    }
    // Krum (f = c) over the honest rows and c identical malicious rows at −λ·s
    let selects_malicious = |lambda: f64| {
        let m = h + c;
        let mut dist = vec![0.0f64; m * m];
        for i in 0..h {
            for j in 0..h {
                dist[i * m + j] = hh[i * h + j];
            }
            let (a, b) = stats[i];
            let to_malicious = (a + 2.0 * lambda * b + lambda * lambda * ss).max(0.0);
            for j in h..m {
                dist[i * m + j] = to_malicious;
                dist[j * m + i] = to_malicious;
            }
        }
        let members: Vec<usize> = (0..m).collect();
        krum_select(&dist, m, &members, c) >= h
    };
    while lambda >= threshold && !selects_malicious(lambda) {
        lambda /= 2.0;
    }
    if lambda < threshold {
        lambda = threshold;
    }
    (s.iter().map(|&sj| (-lambda * f64::from(sj)) as f32).collect(), lambda)
}

/// Fang et al.'s attack on the trimmed mean and the median (USENIX Security 2020, full
/// knowledge), per coordinate j of the update, as in the authors' group's code (Cao et al.,
/// FLTrust, NDSS 2021): opposite to s_j = sign(Σ honest u_j), each malicious value goes beyond
/// the honest extreme on that side (the minimum when s_j > 0, the maximum when s_j < 0) by a
/// factor r ~ U[1, b] drawn per client and coordinate: the extreme divided by r when that moves
/// it away from the honest values, times r otherwise. A coordinate with s_j = 0 gets 0.
fn fang_trim(x: &mut OwnedMatrix, honest: &[usize], malicious: &[usize], b: f64, rng: &mut ChaCha8Rng) {
    let d = x.d;
    let (mut lo, mut hi, mut sum) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d], vec![0.0f64; d]);
    for &r in honest {
        for (j, &u) in x.row(r).iter().enumerate() {
            lo[j] = lo[j].min(u);
            hi[j] = hi[j].max(u);
            sum[j] += f64::from(u);
        }
    }
    let seeds: Vec<u64> = malicious.iter().map(|_| rng.random()).collect();
    for (&r, seed) in malicious.iter().zip(seeds) {
        let mut draw = ChaCha8Rng::seed_from_u64(seed);
        for (j, value) in x.row_mut(r).iter_mut().enumerate() {
            let s = if sum[j] > 0.0 {
                1.0
            } else if sum[j] < 0.0 {
                -1.0
            } else {
                0.0
            };
            let extreme = if s > 0.0 {
                f64::from(lo[j])
            } else if s < 0.0 {
                f64::from(hi[j])
            } else {
                0.0
            };
            let factor = draw.random_range(1.0..=b);
            *value = (if s * extreme > 0.0 { extreme / factor } else { extreme * factor }) as f32;
        }
    }
}

/// Which distance of the malicious update to the honest ones Min-Max / Min-Sum bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Within {
    /// its largest squared distance ≤ the largest between two honest updates (Min-Max)
    Max,
    /// its summed squared distances ≤ the smallest such sum of an honest update (Min-Sum; the
    /// authors' code takes the smallest, where the paper's text reads "any")
    Sum,
}

/// Shejwalkar & Houmansadr's AGR-agnostic attack (NDSS 2021): the malicious update μ − γ·p with
/// γ found as in the authors' code: start at `gamma_init`, step ± half the last step (up after
/// a γ that met the bound, down after one that did not) until the step is below gamma_init·1e-6;
/// the last γ that met the bound (0 if none). Distances to the honest updates g_i expand as
/// ‖μ − g_i‖² − 2γ⟨μ − g_i, p⟩ + γ²‖p‖², so each γ costs O(k) after one pass over the rows.
/// Returns the row and γ.
fn agr_agnostic_row(x: &OwnedMatrix, honest: &[usize], perturbation: Perturbation, gamma_init: f64, within: Within) -> (Vec<f32>, f64) {
    let v = x.view();
    let k = honest.len();
    let mu = rows_mean(x, honest);
    let p = perturbation_direction(x, honest, &mu, perturbation);
    let pairs = sq_dists_among(x, honest);
    let bound = match within {
        Within::Max => pairs.iter().copied().fold(0.0, f64::max),
        Within::Sum => pairs.chunks(k.max(1)).map(|row| row.iter().sum::<f64>()).fold(f64::INFINITY, f64::min),
    };
    // a_i = ‖μ − g_i‖², b_i = ⟨μ − g_i, p⟩, c = ‖p‖²
    let ab: Vec<(f64, f64)> = honest
        .par_iter()
        .map(|&i| {
            v.row(i).iter().zip(&mu).zip(&p).fold((0.0, 0.0), |(a, b), ((&g, &m), &pj)| {
                let t = f64::from(m) - f64::from(g);
                (a + t * t, b + t * f64::from(pj))
            })
        })
        .collect();
    let c: f64 = p.iter().map(|&pj| f64::from(pj) * f64::from(pj)).sum();
    let meets = |gamma: f64| {
        let dist = ab.iter().map(|&(a, b)| (a - 2.0 * gamma * b + gamma * gamma * c).max(0.0));
        match within {
            Within::Max => dist.fold(0.0, f64::max) <= bound,
            Within::Sum => dist.sum::<f64>() <= bound,
        }
    };
    let tolerance = gamma_init * 1e-6;
    let (mut gamma, mut step, mut found) = (gamma_init, gamma_init, 0.0);
    while (found - gamma).abs() > tolerance {
        if meets(gamma) {
            found = gamma;
            gamma += step / 2.0;
        } else {
            gamma -= step / 2.0;
        }
        step /= 2.0;
    }
    (shifted_row(&mu, &p, found), found)
}

/// Min-Max's, Min-Sum's and the AGR-tailored attack's direction p for honest mean `mu`.
fn perturbation_direction(x: &OwnedMatrix, honest: &[usize], mu: &[f32], perturbation: Perturbation) -> Vec<f32> {
    match perturbation {
        Perturbation::UnitVec => {
            let norm = mu.iter().map(|&m| f64::from(m) * f64::from(m)).sum::<f64>().sqrt();
            mu.iter().map(|&m| if norm > 0.0 { (f64::from(m) / norm) as f32 } else { 0.0 }).collect()
        }
        Perturbation::Sign => signs(mu),
        Perturbation::Std => {
            let k = honest.len();
            let (_, sd) = column_mean_std(x, honest);
            let unbiased = if k > 1 { (k as f64 / (k as f64 - 1.0)).sqrt() } else { 1.0 };
            sd.iter().map(|&s| (f64::from(s) * unbiased) as f32).collect()
        }
    }
}

/// μ − γ·p
fn shifted_row(mu: &[f32], p: &[f32], gamma: f64) -> Vec<f32> {
    mu.iter().zip(p).map(|(&m, &pj)| (f64::from(m) - gamma * f64::from(pj)) as f32).collect()
}

/// Each value's sign: 1, −1, or 0 for 0 (unlike `f32::signum`, which gives 1 for +0).
fn signs(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&m| {
            if m > 0.0 {
                1.0
            } else if m < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Squared distances between the listed rows (`k × k`, row-major), by Krum's blocked kernel.
fn sq_dists_among(x: &OwnedMatrix, rows: &[usize]) -> Vec<f64> {
    if rows.is_empty() {
        return Vec::new();
    }
    pairwise_sq_dists(x.view().select_rows(rows).view())
}

fn set_rows(x: &mut OwnedMatrix, rows: &[usize], value: &[f32]) {
    for &r in rows {
        x.row_mut(r).copy_from_slice(value);
    }
}

fn rows_mean(x: &OwnedMatrix, rows: &[usize]) -> Vec<f32> {
    let sub = x.view().select_rows(rows);
    weighted_mean(sub.view(), &vec![1.0; rows.len()])
}

/// Per-coordinate mean and population standard deviation of the listed rows (numpy's default
/// `ddof=0`; Baruch et al. do not fix the estimator).
pub fn column_mean_std(x: &OwnedMatrix, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let v: Matrix = x.view();
    let k = rows.len() as f64;
    let mut mu = vec![0f32; x.d];
    let mut sd = vec![0f32; x.d];
    mu.par_chunks_mut(COL_BLOCK).zip(sd.par_chunks_mut(COL_BLOCK)).enumerate().for_each(|(b, (mb, sb))| {
        let c0 = b * COL_BLOCK;
        let len = mb.len();
        let mut s = vec![0f64; len];
        let mut s2 = vec![0f64; len];
        for &r in rows {
            for (j, &val) in v.row(r)[c0..c0 + len].iter().enumerate() {
                s[j] += val as f64;
            }
        }
        for sj in &mut s {
            *sj /= k;
        }
        for &r in rows {
            for (j, &val) in v.row(r)[c0..c0 + len].iter().enumerate() {
                let t = val as f64 - s[j];
                s2[j] += t * t;
            }
        }
        for j in 0..len {
            mb[j] = s[j] as f32;
            sb[j] = (s2[j] / k).sqrt() as f32;
        }
    });
    (mu, sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alie_z_matches_the_paper() {
        // n = 50, f = 24: s = 26 - 24 = 2, z = Φ⁻¹(48/50) = Φ⁻¹(0.96) ≈ 1.7507.
        assert!((alie_z(50, 24).unwrap() - 1.750_686).abs() < 1e-5);
        // n = 10, f = 2: s = 6 - 2 = 4, z = Φ⁻¹(0.6) ≈ 0.2533.
        assert!((alie_z(10, 2).unwrap() - 0.253_347).abs() < 1e-5);
    }
}
