//! The round orchestrator: attacks, aggregation, the server step and the round history.
//!
//! The orchestrator never invents a metric: `global_loss` and `accuracy` stay NaN (null in JSON)
//! until the caller, who evaluated the model, reports them with `report_metrics`.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::attacks::{attack_round, AttackOutcome, AttackRound, Defence, UpdateAttack};
use crate::error::{Result, VflError};
use crate::matrix::{sq_dist_par, sq_norm_par, sums_and_norms, Matrix, OwnedMatrix};
use crate::spec::{ComponentConfig, StrategySpec};
use crate::strategy::{NonFinite, RoundInputs, Strategy};
use crate::trace::Trace;

/// One round, as recorded.
#[derive(Clone, Debug, Serialize)]
pub struct RoundSummary {
    pub round: usize,
    /// Update rows aggregated this round (the sampled clients).
    pub num_clients: usize,
    pub num_malicious: usize,
    pub malicious_clients: Vec<usize>,
    /// The sampled clients' ids in row order: what `client_shares` and `update_norms` are about.
    pub client_ids: Vec<usize>,
    /// Each row's share of the aggregate (see `crate::trace`); None when the rule cannot say.
    pub client_shares: Option<Vec<f64>>,
    /// ‖update‖ of each row as aggregated, after the attacks: what the defence saw.
    pub update_norms: Vec<f64>,
    /// The loss measured by the caller after this round; NaN (null) until reported.
    pub global_loss: f64,
    pub accuracy: f64,
    pub attacks: Vec<AttackOutcome>,
    /// ‖aggregate − mean of the honest updates‖: how far the attack moved the aggregate.
    pub attack_distance: f64,
    pub honest_mean_norm: f64,
    pub aggregate_norm: f64,
    pub aggregate_finite: bool,
    /// The malicious rows' share of the aggregate (see `crate::trace`): their weight share
    /// under FedAvg, lower when the defence acted against them. NaN when the rule cannot say.
    pub malicious_share: f64,
    /// The malicious rows' share of the weights: what `malicious_share` is when nothing is done.
    pub malicious_weight: f64,
    /// Client ids a selection rule kept (Krum, MultiKrum, Bulyan), and how many were malicious.
    pub selected: Option<Vec<usize>>,
    pub selected_malicious: Option<usize>,
    /// For rules that exclude clients: of the clients excluded, the share that were malicious
    /// (precision), and of the malicious clients, the share excluded (recall).
    pub detection_precision: Option<f64>,
    pub detection_recall: Option<f64>,
    /// Updates clipped this round and the radius used (clipping rules and pre-aggregators).
    pub clipped: Option<usize>,
    pub clip_radius: Option<f64>,
    /// With server-side DP: the standard deviation of the Gaussian noise added to each
    /// coordinate of the aggregate (z·C/n).
    pub server_noise_std: Option<f64>,
    pub attack_ms: f64,
    pub aggregate_ms: f64,
    pub server_ms: f64,
    /// attack + aggregate + server step.
    pub kernel_ms: f64,
}

pub struct OrchestratorConfig {
    pub strategy: StrategySpec,
    pub attacks: Vec<ComponentConfig>,
    /// The size of the federation (client ids are 0..num_clients).
    pub num_clients: usize,
    /// Malicious client ids; drawn from `seed` when `None`.
    pub malicious: Option<Vec<usize>>,
    pub num_malicious: usize,
    pub seed: u64,
    /// Server-side differential privacy (DP-FedAvg); none when `None`.
    pub server_dp: Option<ServerDp>,
}

/// DP-FedAvg's server side (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private
/// Recurrent Language Models", ICLR 2018): every update clipped to norm `clip`, each client
/// counted once (equal weights), and Gaussian noise of standard deviation
/// `noise_multiplier · clip / n` added to the aggregate of the n sampled updates. For the mean
/// that is the Gaussian mechanism on a sum of sensitivity `clip`; a robust rule's output can move
/// further when one client changes, so the noise gives it no such guarantee.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerDp {
    pub clip: f64,
    pub noise_multiplier: f64,
}

impl ServerDp {
    pub fn new(clip: f64, noise_multiplier: f64) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(VflError::expected("server_dp's clip", "a finite value > 0", clip));
        }
        if !(noise_multiplier.is_finite() && noise_multiplier > 0.0) {
            return Err(VflError::expected("server_dp's noise_multiplier", "a finite value > 0", noise_multiplier));
        }
        Ok(ServerDp { clip, noise_multiplier })
    }
}

pub struct Orchestrator {
    strategy: Strategy,
    attacks: Vec<UpdateAttack>,
    attack_configs: Vec<ComponentConfig>,
    num_clients: usize,
    malicious: BTreeSet<usize>,
    seed: u64,
    server_dp: Option<ServerDp>,
    global: Option<Vec<f32>>,
    history: Vec<RoundSummary>,
}

/// Salt of the aggregation's random stream (bucketing's shuffle), apart from the attacks'.
const AGGREGATION_STREAM: u64 = 0xA66E_6A7E_0000_0001;
/// Salt of server-side DP's noise: a stream of its own, so the noise neither shifts the other
/// draws nor is known to an adaptive attack that replays the aggregation.
const PRIVACY_STREAM: u64 = 0xD1FF_0000_0000_0002;

/// SplitMix64 finaliser: decorrelates per-round seeds derived from one run seed.
fn mix(seed: u64, round: u64) -> u64 {
    let mut z = seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Orchestrator {
    pub fn new(cfg: OrchestratorConfig) -> Result<Self> {
        if cfg.num_clients == 0 {
            return Err(VflError::expected("num_clients", "at least 1", 0));
        }
        let malicious: BTreeSet<usize> = match cfg.malicious {
            Some(ids) => {
                if let Some(bad) = ids.iter().find(|&&i| i >= cfg.num_clients) {
                    return Err(VflError::expected("malicious client ids", format!("ids below num_clients = {}", cfg.num_clients), bad));
                }
                ids.into_iter().collect()
            }
            None => {
                if cfg.num_malicious > cfg.num_clients {
                    return Err(VflError::expected(
                        "num_malicious",
                        format!("at most num_clients = {}", cfg.num_clients),
                        cfg.num_malicious,
                    ));
                }
                let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, u64::MAX));
                rand::seq::index::sample(&mut rng, cfg.num_clients, cfg.num_malicious).into_iter().collect()
            }
        };
        let mut attacks = Vec::new();
        for a in &cfg.attacks {
            if !a.kind().is_attack() {
                return Err(VflError::value(format!("Expected an attack, got the {:?} {}", a.kind(), a.name())));
            }
            if let Some(u) = UpdateAttack::from_config(a)? {
                u.check_federation(cfg.num_clients, &malicious)?;
                attacks.push(u);
            }
        }
        let strategy = Strategy::new(cfg.strategy)?;
        let strategy = match cfg.server_dp {
            Some(dp) => strategy.behind_update_clip(ServerDp::new(dp.clip, dp.noise_multiplier)?.clip)?,
            None => strategy,
        };
        Ok(Orchestrator {
            strategy,
            attacks,
            attack_configs: cfg.attacks,
            num_clients: cfg.num_clients,
            malicious,
            seed: cfg.seed,
            server_dp: cfg.server_dp,
            global: None,
            history: Vec::new(),
        })
    }

    pub fn malicious_clients(&self) -> Vec<usize> {
        self.malicious.iter().copied().collect()
    }

    pub fn strategy(&self) -> &StrategySpec {
        &self.strategy.spec
    }

    pub fn attack_configs(&self) -> &[ComponentConfig] {
        &self.attack_configs
    }

    pub fn global_model(&self) -> Option<&[f32]> {
        self.global.as_deref()
    }

    pub fn set_global_model(&mut self, w: Vec<f32>) -> Result<()> {
        if w.is_empty() {
            return Err(VflError::expected("the global model", "at least one parameter", 0));
        }
        self.global = Some(w);
        Ok(())
    }

    pub fn history(&self) -> &[RoundSummary] {
        &self.history
    }

    pub fn server_dp(&self) -> Option<ServerDp> {
        self.server_dp
    }

    /// Run one round on the sampled clients' updates (`n × d`, one row per client).
    /// `server_update`: the server's own update on its root data, for rules that need one (FLTrust).
    pub fn step(
        &mut self,
        x: Matrix,
        weights: Option<&[f64]>,
        client_ids: Option<&[usize]>,
        server_update: Option<&[f32]>,
    ) -> Result<&RoundSummary> {
        let (n, d) = (x.n(), x.d());
        let ids: Vec<usize> = match client_ids {
            Some(ids) => ids.to_vec(),
            None => (0..n).collect(),
        };
        if ids.len() != n {
            return Err(VflError::expected("client_ids", format!("{n} ids (one per update row)"), ids.len()));
        }
        let mut seen = HashSet::with_capacity(n);
        for &id in &ids {
            if id >= self.num_clients {
                return Err(VflError::expected("client ids", format!("ids below num_clients = {}", self.num_clients), id));
            }
            if !seen.insert(id) {
                return Err(VflError::value(format!("Expected distinct client ids, got {id} twice")));
            }
        }
        let global = self.global.get_or_insert_with(|| vec![0.0; d]);
        if global.len() != d {
            return Err(VflError::expected("the update size", format!("{} parameters (the global model)", global.len()), d));
        }
        let round = self.history.len() + 1;
        // DP-FedAvg counts every client once: a weight would scale one client's influence past the clip.
        let weights = if self.server_dp.is_some() { None } else { weights };
        // Separate streams for the attacks and the aggregation, so that an adaptive attack can
        // replay the aggregation exactly, whatever the attacks before it drew.
        let mut attack_rng = ChaCha8Rng::seed_from_u64(mix(self.seed, round as u64));
        let aggregation_rng = ChaCha8Rng::seed_from_u64(mix(self.seed ^ AGGREGATION_STREAM, round as u64));
        let (malicious, honest): (Vec<usize>, Vec<usize>) = (0..n).partition(|&r| self.malicious.contains(&ids[r]));
        let f_default = Some(malicious.len());

        let inputs = RoundInputs { ids: Some(&ids), reference: server_update, ..Default::default() };
        let t0 = Instant::now();
        let (attacked, outcomes) = if malicious.is_empty() || self.attacks.is_empty() {
            (None, Vec::new())
        } else {
            let defence = Defence::Strategy { strategy: &self.strategy, weights, f_default, round: inputs, rng: &aggregation_rng };
            let round = AttackRound { malicious: &malicious, client_ids: &ids, defence };
            let (m, outcomes) = attack_round(x, &self.attacks, &round, &mut attack_rng)?;
            (Some(m), outcomes)
        };
        let t1 = Instant::now();
        let view = attacked.as_ref().map_or(x, OwnedMatrix::view);
        // The round's bookkeeping: the honest clients' mean (the attacks leave their rows as they
        // are; with none, the malicious updates as trained) and every update's norm, in one pass
        // over the updates, after the kernel; a plain mean (FedAvg) is computed in that same pass.
        let reference = if honest.is_empty() { &malicious } else { &honest };
        let mut mean_of_reference = vec![0.0; n];
        reference.iter().for_each(|&r| mean_of_reference[r] = 1.0 / reference.len() as f64);
        let (agg, trace, stats) = match self.strategy.plain_mean_coefficients(weights, n)? {
            Some(c) if !honest.is_empty() => {
                // Equal coefficients (every client honest, equal weights): one sum serves as both.
                let coeffs: &[&[f64]] = if c == mean_of_reference { &[&c] } else { &[&c, &mean_of_reference] };
                let (mut sums, norms) = sums_and_norms(view, coeffs);
                let agg = sums.remove(0);
                let honest_mean = sums.pop().unwrap_or_else(|| agg.clone());
                (agg, Trace { share: Some(c), ..Trace::default() }, Some((honest_mean, norms)))
            }
            _ => {
                let mut rng = aggregation_rng;
                // the honest mean and the norms from the rule's own read of the updates, where it can
                let summed = (!honest.is_empty()).then_some(&mean_of_reference[..]);
                let inputs = RoundInputs { summed, ..inputs };
                let (agg, mut trace) =
                    self.strategy.aggregate_traced(view, weights, f_default, inputs, &mut rng, NonFinite::Propagate, true)?;
                let stats = trace.summed.take().map(|s| (s.sum, s.norms));
                (agg, trace, stats)
            }
        };
        let mut agg = agg;
        let server_noise_std = self.server_dp.map(|dp| {
            let std = dp.noise_multiplier * dp.clip / n as f64;
            let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed ^ PRIVACY_STREAM, round as u64));
            for v in agg.iter_mut() {
                let z: f64 = StandardNormal.sample(&mut rng);
                *v = (*v as f64 + std * z) as f32;
            }
            std
        });
        let t2 = Instant::now();
        let global = self.global.as_mut().expect("initialised above");
        self.strategy.server_step(global, &agg)?;
        let t3 = Instant::now();
        let (honest_mean, update_norms) = stats.unwrap_or_else(|| {
            if honest.is_empty() {
                (sums_and_norms(x, &[&mean_of_reference]).0.remove(0), sums_and_norms(view, &[]).1)
            } else {
                let (mut sums, norms) = sums_and_norms(view, &[&mean_of_reference]);
                (sums.remove(0), norms)
            }
        });

        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        let defence = DefenceSummary::new(&trace, &malicious, &ids, weights);
        self.history.push(RoundSummary {
            round,
            num_clients: n,
            num_malicious: malicious.len(),
            malicious_clients: malicious.iter().map(|&r| ids[r]).collect(),
            client_shares: trace.share.clone(),
            update_norms,
            global_loss: f64::NAN,
            accuracy: f64::NAN,
            attacks: outcomes,
            attack_distance: sq_dist_par(&agg, &honest_mean).sqrt(),
            honest_mean_norm: sq_norm_par(&honest_mean).sqrt(),
            aggregate_norm: sq_norm_par(&agg).sqrt(),
            aggregate_finite: agg.iter().all(|v| v.is_finite()),
            malicious_share: defence.malicious_share,
            malicious_weight: defence.malicious_weight,
            selected: defence.selected,
            selected_malicious: defence.selected_malicious,
            detection_precision: defence.precision,
            detection_recall: defence.recall,
            clipped: trace.clipped,
            clip_radius: trace.radius,
            server_noise_std,
            client_ids: ids,
            attack_ms: ms(t0, t1),
            aggregate_ms: ms(t1, t2),
            server_ms: ms(t2, t3),
            kernel_ms: ms(t0, t3),
        });
        Ok(self.history.last().expect("just pushed"))
    }

    /// Record the loss and accuracy the caller measured for `round` (the latest round if `None`).
    pub fn report_metrics(&mut self, loss: f64, accuracy: Option<f64>, round: Option<usize>) -> Result<()> {
        let count = self.history.len();
        if count == 0 {
            return Err(VflError::value("Expected a finished round to report metrics for, got none yet"));
        }
        let r = round.unwrap_or(count);
        if r == 0 || r > count {
            return Err(VflError::expected("round", format!("1..={count}"), r));
        }
        if let Some(a) = accuracy {
            // NaN: not measured; anything else is a fraction of the test set
            if !(a.is_nan() || (0.0..=1.0).contains(&a)) {
                return Err(VflError::expected("accuracy", "a fraction in [0, 1]", a));
            }
        }
        let s = &mut self.history[r - 1];
        s.global_loss = loss;
        if let Some(a) = accuracy {
            s.accuracy = a;
        }
        Ok(())
    }

    pub fn history_json(&self) -> String {
        serde_json::to_string(&self.history).unwrap_or_else(|_| "[]".into())
    }
}

/// The round's trace read against the known malicious rows.
struct DefenceSummary {
    malicious_share: f64,
    malicious_weight: f64,
    selected: Option<Vec<usize>>,
    selected_malicious: Option<usize>,
    precision: Option<f64>,
    recall: Option<f64>,
}

impl DefenceSummary {
    fn new(trace: &Trace, malicious: &[usize], ids: &[usize], weights: Option<&[f64]>) -> Self {
        let n = ids.len();
        let w = weights.map_or_else(|| vec![1.0; n], <[f64]>::to_vec);
        let total: f64 = w.iter().sum();
        let malicious_weight = malicious.iter().map(|&r| w[r]).sum::<f64>() / total + 0.0;
        // (+ 0.0: an empty float sum is -0.0)
        let malicious_share = trace.share.as_ref().map_or(f64::NAN, |s| malicious.iter().map(|&r| s[r]).sum::<f64>() + 0.0);
        let Some(rows) = &trace.selected else {
            return DefenceSummary {
                malicious_share,
                malicious_weight,
                selected: None,
                selected_malicious: None,
                precision: None,
                recall: None,
            };
        };
        let is_malicious: HashSet<usize> = malicious.iter().copied().collect();
        let kept: HashSet<usize> = rows.iter().copied().collect();
        let excluded = (0..n).filter(|r| !kept.contains(r)).count();
        let caught = malicious.iter().filter(|r| !kept.contains(r)).count();
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        DefenceSummary {
            malicious_share,
            malicious_weight,
            selected: Some(rows.iter().map(|&r| ids[r]).collect()),
            selected_malicious: Some(rows.iter().filter(|r| is_malicious.contains(r)).count()),
            precision: ratio(caught, excluded),
            recall: ratio(caught, malicious.len()),
        }
    }
}
