//! Aggregation rules: an `n × d` matrix (and client weights) in, one `d` vector out.

pub mod centered_clipping;
pub mod clustering;
pub mod fltrust;
pub mod foolsgold;
pub mod geometric_median;
pub mod krum;
pub mod median;
pub mod spectral;

use rand_chacha::ChaCha8Rng;

use crate::error::{Result, VflError};
use crate::matrix::{pairwise_sq_dists, weighted_mean, Matrix};
use crate::rules::clustering::{Clustered, Combine};
use crate::spec::ComponentConfig;
use crate::strategy::RoundInputs;
use crate::trace::{normalised, selection_share, Summed, Trace};

/// A configured rule. Stateful rules (centered clipping's centre, ClippedClustering's norm history,
/// FoolsGold's per-client history) keep their state here across rounds.
#[derive(Clone, Debug)]
pub enum Rule {
    Mean,
    Median,
    TrimmedMean {
        f: Option<usize>,
        beta: Option<f64>,
    },
    Krum {
        f: Option<usize>,
    },
    MultiKrum {
        f: Option<usize>,
        m: Option<usize>,
    },
    Bulyan {
        f: Option<usize>,
    },
    GeometricMedian {
        nu: f64,
        tol: f64,
        max_iter: usize,
    },
    /// `tau: None`: each round's radius is the median distance of its updates from the centre.
    CenteredClipping {
        tau: Option<f64>,
        iters: usize,
        center: Option<Vec<f32>>,
    },
    Meamed {
        f: Option<usize>,
    },
    Mda {
        f: Option<usize>,
        max_subsets: u128,
    },
    Smea {
        f: Option<usize>,
        max_subsets: u128,
    },
    Caf {
        f: Option<usize>,
    },
    Dnc {
        f: Option<usize>,
        sub_dim: usize,
        iters: usize,
        frac: f64,
    },
    SignGuard {
        lower: f64,
        upper: f64,
        combine: Combine,
    },
    /// `history`: the norm of every update seen so far (the clipping radius is their median).
    ClippedClustering {
        max_tau: f64,
        linkage: Linkage,
        combine: Combine,
        history: Vec<f64>,
    },
    Flame {
        noise_level: f64,
    },
    /// `history`: each client's summed updates, by client id.
    FoolsGold {
        kappa: f64,
        history: foolsgold::History,
    },
    /// Needs the server's update on its root data (`RoundInputs::reference`).
    FlTrust,
}

/// ClippedClustering's linkage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    Average,
    Single,
}

/// Resolve a rule's `f`: its own parameter, else the caller's default (the orchestrator passes
/// the number of malicious clients in the round).
pub(crate) fn resolve_f(name: &str, own: Option<usize>, default: Option<usize>) -> Result<usize> {
    own.or(default)
        .ok_or_else(|| VflError::value(format!("{name} needs f (the number of Byzantine clients): give it as {name}(f=...) or pass f")))
}

impl Rule {
    pub fn from_config(c: &ComponentConfig) -> Result<Self> {
        let p = &c.params;
        Ok(match c.name() {
            "FedAvg" | "FedProx" => Rule::Mean,
            "FedMedian" => Rule::Median,
            "TrimmedMean" => {
                let (f, beta) = (p.opt_usize("f")?, p.opt_f64("beta")?);
                if f.is_some() && beta.is_some() {
                    return Err(VflError::value("Expected either f or beta for TrimmedMean, got both"));
                }
                Rule::TrimmedMean { f, beta }
            }
            "Krum" => Rule::Krum { f: p.opt_usize("f")? },
            "MultiKrum" => Rule::MultiKrum { f: p.opt_usize("f")?, m: p.opt_usize("m")? },
            "Bulyan" => Rule::Bulyan { f: p.opt_usize("f")? },
            "GeometricMedian" => Rule::GeometricMedian { nu: p.f64("nu")?, tol: p.f64("tol")?, max_iter: p.usize("max_iter")? },
            "CenteredClipping" => Rule::CenteredClipping { tau: p.opt_f64("tau")?, iters: p.usize("iters")?, center: None },
            "Meamed" => Rule::Meamed { f: p.opt_usize("f")? },
            "MDA" => Rule::Mda { f: p.opt_usize("f")?, max_subsets: p.usize("max_subsets")? as u128 },
            "SMEA" => Rule::Smea { f: p.opt_usize("f")?, max_subsets: p.usize("max_subsets")? as u128 },
            "CAF" => Rule::Caf { f: p.opt_usize("f")? },
            "SignGuard" | "ClippedClustering" => {
                let combine = if p.choice("agg")? == "median" { Combine::Median } else { Combine::Mean };
                if c.name() == "SignGuard" {
                    let (lower, upper) = (p.f64("lower")?, p.f64("upper")?);
                    if lower > upper {
                        return Err(VflError::expected("SignGuard.lower", format!("at most upper = {upper}"), lower));
                    }
                    Rule::SignGuard { lower, upper, combine }
                } else {
                    let linkage = if p.choice("linkage")? == "single" { Linkage::Single } else { Linkage::Average };
                    Rule::ClippedClustering { max_tau: p.f64("max_tau")?, linkage, combine, history: Vec::new() }
                }
            }
            "FLTrust" => Rule::FlTrust,
            "FLAME" => Rule::Flame { noise_level: p.f64("noise_level")? },
            "FoolsGold" => Rule::FoolsGold { kappa: p.f64("kappa")?, history: foolsgold::History::new() },
            "DnC" => {
                Rule::Dnc { f: p.opt_usize("f")?, sub_dim: p.usize("sub_dim")?, iters: p.usize("iters")?, frac: p.f64("filter_frac")? }
            }
            other => return Err(VflError::value(format!("{other} is not an aggregation rule"))),
        })
    }

    /// Check `n` against the rule's requirement before any work is done.
    pub fn check(&self, n: usize, f_default: Option<usize>) -> Result<()> {
        match self {
            Rule::TrimmedMean { f, beta } => {
                let trim = Self::trim(n, *f, *beta, f_default)?;
                if n <= trim.saturating_mul(2) {
                    return Err(VflError::expected("TrimmedMean", format!("n > 2·trim = {}", trim.saturating_mul(2)), format!("n = {n}")));
                }
            }
            Rule::Krum { f } | Rule::MultiKrum { f, .. } => {
                let name = if matches!(self, Rule::Krum { .. }) { "Krum" } else { "MultiKrum" };
                let f = resolve_f(name, *f, f_default)?;
                // Saturating: a huge f must fail the check, not wrap around it.
                let bound = f.saturating_mul(2).saturating_add(2);
                if n <= bound {
                    return Err(VflError::expected(format!("{name} with f = {f}"), format!("n > 2f + 2 = {bound}"), format!("n = {n}")));
                }
                if let Rule::MultiKrum { m: Some(m), .. } = self {
                    if *m > n {
                        return Err(VflError::expected("MultiKrum.m", format!("at most n = {n}"), m));
                    }
                }
            }
            Rule::Bulyan { f } => {
                let f = resolve_f("Bulyan", *f, f_default)?;
                let bound = f.saturating_mul(4).saturating_add(3);
                if n < bound {
                    return Err(VflError::expected(format!("Bulyan with f = {f}"), format!("n >= 4f + 3 = {bound}"), format!("n = {n}")));
                }
            }
            Rule::Meamed { f } | Rule::Mda { f, .. } | Rule::Smea { f, .. } | Rule::Caf { f } => {
                let name = self.name();
                let f = resolve_f(name, *f, f_default)?;
                let bound = f.saturating_mul(2);
                if n <= bound {
                    return Err(VflError::expected(format!("{name} with f = {f}"), format!("n > 2f = {bound}"), format!("n = {n}")));
                }
            }
            Rule::Dnc { f, frac, .. } => {
                let f = resolve_f("DnC", *f, f_default)?;
                let dropped = (frac * f as f64).floor() as usize;
                if n <= dropped {
                    return Err(VflError::expected(
                        format!("DnC with f = {f} and filter_frac = {frac}"),
                        format!("n > ⌊filter_frac·f⌋ = {dropped}"),
                        format!("n = {n}"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        match self {
            Rule::Mean => "FedAvg",
            Rule::Median => "FedMedian",
            Rule::TrimmedMean { .. } => "TrimmedMean",
            Rule::Krum { .. } => "Krum",
            Rule::MultiKrum { .. } => "MultiKrum",
            Rule::Bulyan { .. } => "Bulyan",
            Rule::GeometricMedian { .. } => "GeometricMedian",
            Rule::CenteredClipping { .. } => "CenteredClipping",
            Rule::Meamed { .. } => "Meamed",
            Rule::Mda { .. } => "MDA",
            Rule::Smea { .. } => "SMEA",
            Rule::Caf { .. } => "CAF",
            Rule::Dnc { .. } => "DnC",
            Rule::SignGuard { .. } => "SignGuard",
            Rule::ClippedClustering { .. } => "ClippedClustering",
            Rule::Flame { .. } => "FLAME",
            Rule::FoolsGold { .. } => "FoolsGold",
            Rule::FlTrust => "FLTrust",
        }
    }

    fn trim(n: usize, f: Option<usize>, beta: Option<f64>, f_default: Option<usize>) -> Result<usize> {
        match beta {
            Some(b) => Ok((b * n as f64).floor() as usize),
            None => resolve_f("TrimmedMean", f, f_default),
        }
    }

    pub fn aggregate(&mut self, x: Matrix, w: &[f64], f_default: Option<usize>, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        Ok(self.aggregate_traced(x, w, f_default, RoundInputs::default(), rng, false)?.0)
    }

    /// Whether the rule follows clients across rounds by their ids (and so needs each row to be
    /// one client's own update).
    pub fn tracks_clients(&self) -> bool {
        matches!(self, Rule::FoolsGold { .. })
    }

    /// Aggregate, and say what the rule did (see `crate::trace`). Selections, clipping and the
    /// shares that fall out of the computation are always traced; with `trace`, the
    /// coordinate-wise rules also compute their row shares (one more sort per column).
    /// Randomised rules (DnC's coordinate draws) draw from `rng`; see `RoundInputs` for `round`.
    pub fn aggregate_traced(
        &mut self,
        x: Matrix,
        w: &[f64],
        f_default: Option<usize>,
        round: RoundInputs,
        rng: &mut ChaCha8Rng,
        trace: bool,
    ) -> Result<(Vec<f32>, Trace)> {
        let out = self.aggregate_or_stop(x, w, f_default, round, rng, trace, false)?;
        Ok(out.expect("a rule stops at a non-finite row only when asked to"))
    }

    /// Whether the rule's first read of the matrix measures every row's distance to a finite
    /// point, so that a non-finite row shows there (see `aggregate_or_stop`).
    pub fn finds_non_finite_rows(&self) -> bool {
        matches!(self, Rule::GeometricMedian { .. } | Rule::CenteredClipping { .. })
    }

    /// `aggregate_traced`; with `stop_at_non_finite`, for a caller that must refuse non-finite
    /// rows and a rule that `finds_non_finite_rows`: `None` (and the rule's state unchanged) when
    /// its first pass met a non-finite distance, for the caller to look for the row then. One read
    /// of the matrix instead of a scan before the rule.
    #[allow(clippy::too_many_arguments)]
    pub fn aggregate_or_stop(
        &mut self,
        x: Matrix,
        w: &[f64],
        f_default: Option<usize>,
        round: RoundInputs,
        rng: &mut ChaCha8Rng,
        trace: bool,
        stop_at_non_finite: bool,
    ) -> Result<Option<(Vec<f32>, Trace)>> {
        let n = x.n();
        self.check(n, f_default)?;
        // a coordinate-wise rule traced: its output and the shares in one pass
        let coordinate =
            |(out, share, summed): (Vec<f32>, Vec<f64>, Option<Summed>)| (out, Trace { share: Some(share), summed, ..Trace::default() });
        Ok(Some(match self {
            Rule::Mean => (weighted_mean(x, w), Trace { share: normalised(w), ..Trace::default() }),
            Rule::Median => {
                if trace {
                    coordinate(median::coordinate_median_traced(x, round.summed))
                } else {
                    (median::coordinate_median(x), Trace::default())
                }
            }
            Rule::TrimmedMean { f, beta } => {
                let trim = Self::trim(n, *f, *beta, f_default)?;
                if trace {
                    coordinate(median::trimmed_mean_traced(x, trim, round.summed))
                } else {
                    (median::trimmed_mean(x, trim), Trace::default())
                }
            }
            Rule::Krum { f } => selection(x, w, resolve_f("Krum", *f, f_default)?, |_| 1),
            Rule::MultiKrum { f, m } => {
                let m = *m;
                selection(x, w, resolve_f("MultiKrum", *f, f_default)?, |f| m.unwrap_or(n - f))
            }
            Rule::Bulyan { f } => {
                let f = resolve_f("Bulyan", *f, f_default)?;
                let (out, chosen, share) = krum::bulyan(x, &pairwise_sq_dists(x), f, trace);
                (out, Trace { share, selected: Some(chosen), ..Trace::default() })
            }
            Rule::GeometricMedian { nu, tol, max_iter } => {
                let Some((out, _, share)) = geometric_median::geometric_median(x, w, *nu, *tol, *max_iter, stop_at_non_finite) else {
                    return Ok(None);
                };
                (out, Trace { share: Some(share), ..Trace::default() })
            }
            Rule::CenteredClipping { tau, iters, center } => {
                let d = x.d();
                let v = center.get_or_insert_with(|| vec![0.0; d]);
                if v.len() != d {
                    return Err(VflError::expected(
                        "CenteredClipping's update size (it keeps its centre across rounds)",
                        format!("{} parameters", v.len()),
                        d,
                    ));
                }
                let Some(t) = centered_clipping::centered_clipping(x, w, v, *tau, *iters, stop_at_non_finite) else {
                    return Ok(None);
                };
                (v.clone(), t)
            }
            Rule::Meamed { f } => {
                let f = resolve_f("Meamed", *f, f_default)?;
                let (out, share) = median::mean_around_median(x, n - f, trace);
                (out, Trace { share, ..Trace::default() })
            }
            Rule::Mda { f, max_subsets } => chosen(x, w, spectral::mda(x, w, resolve_f("MDA", *f, f_default)?, *max_subsets)),
            Rule::Smea { f, max_subsets } => chosen(x, w, spectral::smea(x, w, resolve_f("SMEA", *f, f_default)?, *max_subsets)?),
            Rule::Caf { f } => {
                let (out, share) = spectral::caf(x, w, resolve_f("CAF", *f, f_default)?)?;
                (out, Trace { share: Some(share), ..Trace::default() })
            }
            Rule::Dnc { f, sub_dim, iters, frac } => {
                let f = resolve_f("DnC", *f, f_default)?;
                chosen(x, w, spectral::dnc(x, w, f, *sub_dim, *iters, *frac, rng)?)
            }
            Rule::SignGuard { lower, upper, combine } => clustered(x, w, clustering::sign_guard(x, w, *lower, *upper, *combine, rng)?),
            Rule::ClippedClustering { max_tau, linkage, combine, history } => {
                let method = match linkage {
                    Linkage::Average => kodama::Method::Average,
                    Linkage::Single => kodama::Method::Single,
                };
                clustered(x, w, clustering::clipped_clustering(x, w, history, *max_tau, method, *combine)?)
            }
            Rule::Flame { noise_level } => clustered(x, w, clustering::flame(x, w, *noise_level, rng)?),
            Rule::FlTrust => {
                let Some(server) = round.reference else {
                    return Err(VflError::value(
                        "FLTrust needs the server's update on its root data: run it in a federated run (the server trains on its root examples each round) or pass reference=",
                    ));
                };
                if server.len() != x.d() {
                    return Err(VflError::expected(
                        "FLTrust's reference update",
                        format!("{} values (the updates' size)", x.d()),
                        server.len(),
                    ));
                }
                let (out, trust) = fltrust::fltrust(x, server);
                (out, trusted(&trust))
            }
            Rule::FoolsGold { kappa, history } => {
                let rows: Vec<usize> = (0..n).collect();
                let ids = round.ids.unwrap_or(&rows);
                if ids.len() != n {
                    return Err(VflError::expected("client ids", format!("{n} (one per update row)"), ids.len()));
                }
                let (out, weight) = foolsgold::foolsgold(x, w, ids, *kappa, history);
                (out, trusted(&weight))
            }
        }))
    }
}

/// MultiKrum's mean of the `m(f)` best-scored rows (Krum: one), traced as its selection.
fn selection(x: Matrix, w: &[f64], f: usize, m: impl Fn(usize) -> usize) -> (Vec<f32>, Trace) {
    let (out, chosen) = krum::multi_krum(x, w, &pairwise_sq_dists(x), f, m(f));
    let share = selection_share(x.n(), &chosen, w);
    (out, Trace { share, selected: Some(chosen), ..Trace::default() })
}

/// A rule's mean of the rows it kept, traced as its selection.
fn chosen(x: Matrix, w: &[f64], (out, rows): (Vec<f32>, Vec<usize>)) -> (Vec<f32>, Trace) {
    let share = selection_share(x.n(), &rows, w);
    (out, Trace { share, selected: Some(rows), ..Trace::default() })
}

/// A clustering rule's result, traced as its selection and its clipping.
fn clustered(x: Matrix, w: &[f64], c: Clustered) -> (Vec<f32>, Trace) {
    let (out, mut t) = chosen(x, w, (c.out, c.kept));
    (t.clipped, t.radius) = (Some(c.clipped), Some(c.radius));
    (out, t)
}

/// A trust-weighting rule's trace (FLTrust, FoolsGold): each row's share of the weights, the rows
/// of non-zero weight as its selection; when nobody is trusted, no row has a share.
fn trusted(weight: &[f64]) -> Trace {
    let n = weight.len();
    let kept: Vec<usize> = (0..n).filter(|&i| weight[i] > 0.0).collect();
    let share = normalised(weight).or(Some(vec![0.0; n]));
    Trace { share, selected: Some(kept), ..Trace::default() }
}
