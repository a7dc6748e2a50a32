//! The one registry: every aggregation rule, pre-aggregator, server optimiser, attack and
//! decentralised mixer, with the names users know it by, its parameters (type, default, bounds,
//! description), what it needs of n and f, and the paper it comes from. The CLI, the spec parser,
//! the sweep, the panel and the Python typed objects all read this table.
//!
//! Adding a component means three things: an entry here, its kernel (the `from_config` arm and
//! the code in its own module: `rules/`, `preagg.rs`, `server_opt.rs`, `attacks.rs`), and its
//! tests. Nothing else: `tests/registry.rs` builds every entry through its kernel's
//! `from_config`, and the Python tests check that every entry reaches the typed classes, the
//! command line and the specs.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{Result, VflError};
use crate::params::{Bound, Default, ParamSpec, ParamType, ParamValue};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Turns the (pre-aggregated) update matrix into one update.
    Rule,
    /// Transforms the update matrix before the rule (mixing, bucketing, clipping).
    PreAggregator,
    /// Applies the aggregated update to the global model (momentum, adaptive steps).
    ServerOptimizer,
    /// Replaces the malicious clients' rows of the update matrix.
    UpdateAttack,
    /// Poisons the malicious clients' training data (executed by the Python trainer).
    DataAttack,
    /// How a decentralised worker combines the models it receives (besides any rule).
    Mixer,
}

impl Kind {
    pub fn is_strategy_part(self) -> bool {
        matches!(self, Kind::Rule | Kind::PreAggregator | Kind::ServerOptimizer)
    }
    pub fn is_attack(self) -> bool {
        matches!(self, Kind::UpdateAttack | Kind::DataAttack)
    }
    /// What a component of this kind is, in words (for messages).
    pub fn role(self) -> &'static str {
        match self {
            Kind::Rule => "aggregation rule",
            Kind::PreAggregator => "pre-aggregator",
            Kind::ServerOptimizer => "server optimiser",
            Kind::UpdateAttack => "update attack",
            Kind::DataAttack => "data attack",
            Kind::Mixer => "decentralised mixer",
        }
    }
}

/// The declaration of one component.
#[derive(Debug)]
pub struct ComponentSpec {
    pub name: &'static str,
    /// Other names users know it by (Flower's, ByzFL's, the papers'); matched like the name.
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub summary: &'static str,
    pub reference: &'static str,
    /// The condition on `n` (clients in the round) and `f` the component needs, in words.
    pub requires: &'static str,
    /// Whether the component tolerates NaN/Inf rows (treats them as infinitely far away).
    pub accepts_non_finite: bool,
    pub params: &'static [ParamSpec],
}

impl ComponentSpec {
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "name": self.name,
            "aliases": self.aliases,
            "kind": self.kind,
            "summary": self.summary,
            "reference": self.reference,
            "requires": self.requires,
            "accepts_non_finite": self.accepts_non_finite,
            "params": self.params.iter().map(ParamSpec::to_json).collect::<Vec<_>>(),
        })
    }
}

const fn p(name: &'static str, ty: ParamType, default: Default, min: Bound, max: Bound, description: &'static str) -> ParamSpec {
    ParamSpec { name, ty, default, min, max, choices: &[], description }
}
/// A parameter that takes one of `choices`, `default` among them.
const fn choice(name: &'static str, default: &'static str, choices: &'static [&'static str], description: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        ty: ParamType::Choice,
        default: Default::Value(ParamValue::Choice(default)),
        min: Bound::Unbounded,
        max: Bound::Unbounded,
        choices,
        description,
    }
}
const fn float(v: f64) -> Default {
    Default::Value(ParamValue::Float(v))
}
const fn int(v: i64) -> Default {
    Default::Value(ParamValue::Int(v))
}
use Bound::{Exclusive as Gt, Inclusive as Ge, Unbounded as Any};
// (as an upper bound)
use Bound::{Exclusive as Lt, Inclusive as Le};
use ParamType::{Bool, Float, Int};

/// Min-Max's and Min-Sum's direction p (Shejwalkar & Houmansadr, NDSS 2021, Section IV-B).
const PERTURBATION: ParamSpec = choice(
    "perturbation",
    "unit_vec",
    &["unit_vec", "std", "sign"],
    "direction p: the honest mean's unit vector, the honest updates' coordinate-wise standard deviation, or the mean's sign",
);
/// Their γ search: from gamma_init, the step halved each time until it is below gamma_init·1e-6.
const GAMMA_INIT: ParamSpec =
    p("gamma_init", Float, float(10.0), Gt(0.0), Le(1e30), "first γ tried (the search reaches at most twice this)");

/// How a clustering rule combines the updates it keeps.
const AGG: ParamSpec = choice("agg", "mean", &["mean", "median"], "the kept updates' weighted mean or coordinate-wise median");

const F_PARAM: ParamSpec = p(
    "f",
    Int,
    Default::Derived,
    Ge(0.0),
    Any,
    "number of Byzantine clients tolerated; defaults to the number of malicious clients in the round",
);

pub static REGISTRY: &[ComponentSpec] = &[
    // ---------------------------------------------------------------- aggregation rules
    ComponentSpec {
        name: "FedAvg",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Mean of the updates weighted by the clients' sample counts.",
        reference: "McMahan et al., Communication-Efficient Learning of Deep Networks from Decentralized Data, AISTATS 2017",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[],
    },
    ComponentSpec {
        name: "FedProx",
        aliases: &[],
        kind: Kind::Rule,
        summary: "FedAvg on the server; the clients add the proximal term (mu/2)·||w - w_global||² to their local loss.",
        reference: "Li et al., Federated Optimization in Heterogeneous Networks, MLSys 2020",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[p("mu", Float, float(0.01), Ge(0.0), Any, "weight of the clients' proximal term")],
    },
    ComponentSpec {
        name: "FedMedian",
        aliases: &["Median", "CM", "CoordinateMedian"],
        kind: Kind::Rule,
        summary: "Coordinate-wise median (mean of the two middle values when n is even); ignores weights.",
        reference: "Yin et al., Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates, ICML 2018",
        requires: "n >= 1",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "TrimmedMean",
        aliases: &["FedTrimmedAvg", "TrMean"],
        kind: Kind::Rule,
        summary: "Per coordinate, drop the `f` largest and `f` smallest values (or a fraction `beta` per side) and average the rest.",
        reference: "Yin et al., Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates, ICML 2018",
        requires: "n > 2·trim, where trim = f or floor(beta·n)",
        accepts_non_finite: true,
        params: &[
            F_PARAM,
            p("beta", Float, Default::Derived, Ge(0.0), Lt(0.5), "fraction trimmed per side; give either f or beta"),
        ],
    },
    ComponentSpec {
        name: "Krum",
        aliases: &[],
        kind: Kind::Rule,
        summary: "The update whose summed squared distance to its n-f-2 nearest neighbours is smallest.",
        reference: "Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017",
        requires: "n > 2f + 2",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    ComponentSpec {
        name: "MultiKrum",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Weighted mean of the m updates with the best Krum scores (m defaults to n - f).",
        reference: "Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017",
        requires: "n > 2f + 2 and 1 <= m <= n",
        accepts_non_finite: true,
        params: &[F_PARAM, p("m", Int, Default::Derived, Ge(1.0), Any, "number of updates averaged; defaults to n - f")],
    },
    ComponentSpec {
        name: "Bulyan",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Select θ = n-2f updates by iterated Krum, then per coordinate average the β = θ-2f values closest to the median.",
        reference: "El Mhamdi, Guerraoui, Rouault, The Hidden Vulnerability of Distributed Learning in Byzantium, ICML 2018",
        requires: "n >= 4f + 3",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    ComponentSpec {
        name: "GeometricMedian",
        aliases: &["RFA", "GeoMed"],
        kind: Kind::Rule,
        summary: "Weighted geometric median by the smoothed Weiszfeld algorithm (RFA).",
        reference: "Pillutla, Kakade, Harchaoui, Robust Aggregation for Federated Learning, IEEE TSP 2022",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[
            p("nu", Float, float(1e-6), Gt(0.0), Any, "smoothing: distances below nu count as nu"),
            p("tol", Float, float(1e-6), Gt(0.0), Any, "stop when the smoothed objective changes by less than tol (relative)"),
            p("max_iter", Int, int(100), Ge(1.0), Any, "maximum Weiszfeld iterations"),
        ],
    },
    ComponentSpec {
        name: "CenteredClipping",
        aliases: &["CClip", "CC"],
        kind: Kind::Rule,
        summary: "v ← v + mean_i clip_tau(x_i - v), `iters` times, starting from the previous round's aggregate.",
        reference: "Karimireddy, He, Jaggi, Learning from History for Byzantine Robust Optimization, ICML 2021",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[
            p(
                "tau",
                Float,
                Default::Derived,
                Gt(0.0),
                Any,
                "clipping radius around the centre; defaults each round to the median distance of the updates from the centre (the paper's tau = 10 is for gradients, far larger than model updates: give it to use it)",
            ),
            p("iters", Int, int(1), Ge(1.0), Any, "clipping iterations per round"),
        ],
    },
    ComponentSpec {
        name: "Meamed",
        aliases: &["MeanAroundMedian"],
        kind: Kind::Rule,
        summary: "Per coordinate, the mean of the n-f values closest to the median (ties: the lower value).",
        reference: "Xie, Koyejo, Gupta, Generalized Byzantine-tolerant SGD, arXiv:1802.10116, 2018",
        requires: "n > 2f",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    ComponentSpec {
        name: "MDA",
        aliases: &["MinimumDiameterAveraging"],
        kind: Kind::Rule,
        summary: "The mean of the n-f updates whose largest pairwise distance is smallest; exact over the C(n, f) subsets up to max_subsets, within twice the smallest diameter beyond.",
        reference: "El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, Genuinely Distributed Byzantine Machine Learning, PODC 2020",
        requires: "n > 2f",
        accepts_non_finite: true,
        params: &[
            F_PARAM,
            p("max_subsets", Int, int(100_000), Ge(1.0), Any, "largest C(n, f) searched exactly; beyond it, the n-f nearest to the row with the tightest such ball (diameter at most twice the optimum)"),
        ],
    },
    ComponentSpec {
        name: "SMEA",
        aliases: &["SmallestMaximumEigenvalueAveraging"],
        kind: Kind::Rule,
        summary: "The mean of the n-f updates whose covariance has the smallest largest eigenvalue (exact eigenvalues); exact over the C(n, f) subsets up to max_subsets, greedy beyond.",
        reference: "Allouah, Guerraoui, Gupta, Pinot, Stephan, On the Privacy-Robustness-Utility Trilemma in Distributed Learning, ICML 2023",
        requires: "n > 2f",
        accepts_non_finite: true,
        params: &[
            F_PARAM,
            p("max_subsets", Int, int(10_000), Ge(1.0), Any, "largest C(n, f) searched exactly; beyond it, f greedy removals of the update farthest along the top eigenvector"),
        ],
    },
    ComponentSpec {
        name: "CAF",
        aliases: &["CovarianceBoundAgnosticFilter"],
        kind: Kind::Rule,
        summary: "Down-weight the updates along the weighted covariance's top eigenvector until the weights sum to n-2f; the weighted mean of smallest top eigenvalue seen.",
        reference: "Allouah, Guerraoui, Stephan, Towards Trustworthy Federated Learning with Untrusted Participants, ICML 2025",
        requires: "n > 2f",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    ComponentSpec {
        name: "DnC",
        aliases: &["DivideAndConquer"],
        kind: Kind::Rule,
        summary: "Score the updates by their projection on the top singular direction of random coordinate subsets; average those never among the filter_frac·f highest.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021",
        requires: "n > floor(filter_frac·f)",
        accepts_non_finite: true,
        params: &[
            F_PARAM,
            p("sub_dim", Int, int(10_000), Ge(1.0), Any, "coordinates drawn per iteration (all of them when the update has fewer)"),
            p("iters", Int, int(5), Ge(1.0), Any, "iterations, each with its own coordinate draw"),
            p("filter_frac", Float, float(1.0), Ge(0.0), Any, "c: each iteration drops the floor(c·f) highest scores"),
        ],
    },
    ComponentSpec {
        name: "SignGuard",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Clip the updates to their median norm M, keep those with norm in [lower·M, upper·M] and in the larger k-means cluster of sign statistics, and average them.",
        reference: "Xu, Huang, Song, Lan, SignGuard: Byzantine-robust Federated Learning through Collaborative Malicious Gradient Filtering, ICDCS 2022",
        requires: "n >= 1",
        accepts_non_finite: true,
        params: &[
            p("lower", Float, float(0.1), Ge(0.0), Any, "smallest norm kept, in multiples of the median norm"),
            p("upper", Float, float(3.0), Ge(0.0), Any, "largest norm kept, in multiples of the median norm (after clipping to the median, only lower acts)"),
            AGG,
        ],
    },
    ComponentSpec {
        name: "ClippedClustering",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Clip the updates to the median of every norm seen so far, split them in two by agglomerative clustering on cosine distance, and average the larger cluster.",
        reference: "Li, Sahu, Sharma, Wang, Zhang, An Experimental Study of Byzantine-Robust Aggregation Schemes in Federated Learning, IEEE Transactions on Big Data 2023",
        requires: "n >= 1",
        accepts_non_finite: true,
        params: &[
            p("max_tau", Float, float(1e5), Gt(0.0), Any, "largest clipping radius"),
            choice("linkage", "average", &["average", "single"], "how the distance between two clusters is measured"),
            AGG,
        ],
    },
    ComponentSpec {
        name: "FLAME",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Admit the majority cluster of HDBSCAN on cosine distances, clip it to the median norm S of all updates, average, and add Gaussian noise of standard deviation noise_level·S.",
        reference: "Nguyen et al., FLAME: Taming Backdoors in Federated Learning, USENIX Security 2022",
        requires: "n >= 1",
        accepts_non_finite: true,
        params: &[p("noise_level", Float, float(0.001), Ge(0.0), Any, "λ: the noise's standard deviation in multiples of the clipping bound (the paper's 0.001 for image classification; 0 for none)")],
    },
    ComponentSpec {
        name: "FLTrust",
        aliases: &[],
        kind: Kind::Rule,
        summary: "The server trains on root_size clean examples each round; each client is trusted by the ReLU'd cosine of its update with the server's, rescaled to the server update's norm, and the trust-weighted mean is the aggregate.",
        reference: "Cao, Fang, Liu, Gong, FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping, NDSS 2021",
        requires: "n >= 1; a server update (federated runs train it on the root examples)",
        accepts_non_finite: true,
        params: &[p("root_size", Int, int(100), Ge(1.0), Any, "clean training examples the server holds (a seeded draw from the training set) and trains on each round")],
    },
    ComponentSpec {
        name: "FoolsGold",
        aliases: &[],
        kind: Kind::Rule,
        summary: "Weight each client by how little its summed past updates point the same way as another's (pardoned cosine similarity, logit); sybils that push together get weight 0. Keeps each client's history across rounds.",
        reference: "Fung, Yoon, Beschastnikh, The Limitations of Federated Learning in Sybil Settings, RAID 2020",
        requires: "n >= 1",
        accepts_non_finite: true,
        params: &[p("kappa", Float, float(1.0), Gt(0.0), Any, "confidence κ of the logit κ·(ln(α/(1-α)) + 0.5)")],
    },
    // ---------------------------------------------------------------- server optimisers
    ComponentSpec {
        name: "FedAvgM",
        aliases: &[],
        kind: Kind::ServerOptimizer,
        summary: "Server momentum: v ← momentum·v + Δ; w ← w + server_lr·v.",
        reference: "Hsu, Qi, Brown, Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification, 2019",
        requires: "",
        accepts_non_finite: false,
        params: &[
            p("server_lr", Float, float(1.0), Gt(0.0), Any, "server learning rate"),
            p("momentum", Float, float(0.9), Ge(0.0), Lt(1.0), "server momentum"),
        ],
    },
    ComponentSpec {
        name: "FedAdam",
        aliases: &[],
        kind: Kind::ServerOptimizer,
        summary: "Adam on the server with the aggregate as pseudo-gradient (no bias correction, as in the paper).",
        reference: "Reddi et al., Adaptive Federated Optimization, ICLR 2021",
        requires: "",
        accepts_non_finite: false,
        params: &[
            p("eta", Float, float(0.1), Gt(0.0), Any, "server learning rate"),
            p("beta_1", Float, float(0.9), Ge(0.0), Lt(1.0), "first-moment decay"),
            p("beta_2", Float, float(0.99), Ge(0.0), Lt(1.0), "second-moment decay"),
            p("tau", Float, float(1e-3), Gt(0.0), Any, "adaptivity (added to the root of the second moment)"),
        ],
    },
    ComponentSpec {
        name: "FedYogi",
        aliases: &[],
        kind: Kind::ServerOptimizer,
        summary: "Yogi on the server: v ← v - (1-β2)·Δ²·sign(v - Δ²).",
        reference: "Reddi et al., Adaptive Federated Optimization, ICLR 2021",
        requires: "",
        accepts_non_finite: false,
        params: &[
            p("eta", Float, float(0.01), Gt(0.0), Any, "server learning rate"),
            p("beta_1", Float, float(0.9), Ge(0.0), Lt(1.0), "first-moment decay"),
            p("beta_2", Float, float(0.99), Ge(0.0), Lt(1.0), "second-moment decay"),
            p("tau", Float, float(1e-3), Gt(0.0), Any, "adaptivity (added to the root of the second moment)"),
        ],
    },
    ComponentSpec {
        name: "FedAdagrad",
        aliases: &[],
        kind: Kind::ServerOptimizer,
        summary: "Adagrad on the server: v ← v + Δ².",
        reference: "Reddi et al., Adaptive Federated Optimization, ICLR 2021",
        requires: "",
        accepts_non_finite: false,
        params: &[
            p("eta", Float, float(0.1), Gt(0.0), Any, "server learning rate"),
            p("beta_1", Float, float(0.9), Ge(0.0), Lt(1.0), "first-moment decay"),
            p("tau", Float, float(1e-3), Gt(0.0), Any, "adaptivity (added to the root of the second moment)"),
        ],
    },
    // ---------------------------------------------------------------- pre-aggregators
    ComponentSpec {
        name: "NNM",
        aliases: &["NearestNeighbourMixing", "NearestNeighborMixing"],
        kind: Kind::PreAggregator,
        summary: "Nearest-neighbour mixing: replace each update by the mean of its n-f nearest updates (itself included).",
        reference: "Allouah et al., Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity, AISTATS 2023",
        requires: "n > f",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    ComponentSpec {
        name: "Bucketing",
        aliases: &[],
        kind: Kind::PreAggregator,
        summary: "Shuffle the updates (seeded) and average them in buckets of s.",
        reference: "Karimireddy, He, Jaggi, Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing, ICLR 2022",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[p("s", Int, int(2), Ge(1.0), Any, "bucket size")],
    },
    ComponentSpec {
        name: "Clipping",
        aliases: &[],
        kind: Kind::PreAggregator,
        summary: "L2 clipping: scale every update to norm at most c (the round's median norm unless given).",
        reference: "Karimireddy, He, Jaggi, Learning from History for Byzantine Robust Optimization, ICML 2021 (static clipping baseline)",
        requires: "n >= 1",
        accepts_non_finite: false,
        params: &[p(
            "c",
            Float,
            Default::Derived,
            Gt(0.0),
            Any,
            "clipping threshold (L2 norm); defaults each round to the median norm of the updates",
        )],
    },
    ComponentSpec {
        name: "ARC",
        aliases: &["AdaptiveRobustClipping"],
        kind: Kind::PreAggregator,
        summary: "Adaptive robust clipping: clip the floor(2(f/n)(n-f)) largest-norm updates to the next largest norm.",
        reference: "Allouah et al., Boosting Robustness by Clipping Gradients in Distributed Learning, 2024",
        requires: "n > f",
        accepts_non_finite: true,
        params: &[F_PARAM],
    },
    // ---------------------------------------------------------------- update attacks
    ComponentSpec {
        name: "gaussian_noise",
        aliases: &["Gaussian", "noise"],
        kind: Kind::UpdateAttack,
        summary: "Each malicious client adds N(0, sigma²) noise to every coordinate of its update.",
        reference: "Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017 (Gaussian Byzantine workers)",
        requires: "",
        accepts_non_finite: true,
        // noise is drawn in float32: a larger sigma is infinite there
        params: &[p("sigma", Float, float(1.0), Ge(0.0), Le(f32::MAX as f64), "standard deviation of the added noise")],
    },
    ComponentSpec {
        name: "sign_flip",
        aliases: &["SignFlipping"],
        kind: Kind::UpdateAttack,
        summary: "Each malicious client sends -scale times its own update.",
        reference: "Allen-Zhu et al., Byzantine-Resilient Non-Convex Stochastic Gradient Descent, ICLR 2021; 'bit flipping' in Karimireddy et al., ICLR 2022",
        requires: "",
        accepts_non_finite: true,
        params: &[p("scale", Float, float(1.0), Ge(0.0), Any, "magnitude of the flipped update")],
    },
    ComponentSpec {
        name: "scaling",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Each malicious client sends factor times its own update (explicit boosting).",
        reference: "Bhagoji et al., Analyzing Federated Learning through an Adversarial Lens, ICML 2019",
        requires: "",
        accepts_non_finite: true,
        params: &[p("factor", Float, float(10.0), Any, Any, "multiplier of the update")],
    },
    ComponentSpec {
        name: "model_poisoning",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Blend the own update with the boosted reversal -(n/f)·honest mean: (1-intensity)·x + intensity·(-(n/f)·μ).",
        reference: "Bhagoji et al., Analyzing Federated Learning through an Adversarial Lens, ICML 2019 (explicit boosting)",
        requires: "",
        accepts_non_finite: true,
        params: &[p("intensity", Float, float(1.0), Ge(0.0), Any, "0 sends the honest update, 1 the full boosted reversal")],
    },
    ComponentSpec {
        name: "ipm",
        aliases: &["InnerProductManipulation"],
        kind: Kind::UpdateAttack,
        summary: "Inner-product manipulation: every malicious client sends -epsilon times the honest mean.",
        reference: "Xie, Koyejo, Gupta, Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product Manipulation, UAI 2019",
        requires: "",
        accepts_non_finite: true,
        params: &[p("epsilon", Float, float(0.1), Gt(0.0), Any, "strength (0.1 hides inside the honest cloud; 100 reverses the mean)")],
    },
    ComponentSpec {
        name: "alie",
        aliases: &["ALittleIsEnough"],
        kind: Kind::UpdateAttack,
        summary: "A little is enough: every malicious client sends μ - z·σ (per-coordinate honest mean and population std).",
        reference: "Baruch, Baruch, Goldberg, A Little Is Enough: Circumventing Defenses For Distributed Learning, NeurIPS 2019",
        requires: "",
        accepts_non_finite: true,
        params: &[p(
            "z",
            Float,
            Default::Derived,
            Any,
            Any,
            "deviation in standard deviations; defaults to Φ⁻¹((n-s)/n) with s = floor(n/2) + 1 - f, as in the paper",
        )],
    },
    ComponentSpec {
        name: "mimic",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Every malicious client copies one honest client's update, over-representing it (harmful under non-IID data).",
        reference: "Karimireddy, He, Jaggi, Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing, ICLR 2022",
        requires: "",
        accepts_non_finite: true,
        params: &[p(
            "target",
            Int,
            Default::Derived,
            Ge(0.0),
            Any,
            "client id to copy; by default one honest client of the round, drawn from the seed",
        )],
    },
    ComponentSpec {
        name: "sybil",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Colluding sybils: every malicious client sends the same vector, the mean of their own updates.",
        reference: "Fung, Yoon, Beschastnikh, The Limitations of Federated Learning in Sybil Settings, RAID 2020",
        requires: "",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "nan",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Fault injection: malicious rows are all NaN.",
        reference: "Fault injection (crash / corrupted-update failures)",
        requires: "",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "inf",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Fault injection: malicious rows are all +Inf.",
        reference: "Fault injection (overflowing updates)",
        requires: "",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "adaptive_ipm",
        aliases: &["Optimal_InnerProductManipulation", "optimal_ipm"],
        kind: Kind::UpdateAttack,
        summary: "IPM whose epsilon is line-searched each round to push the defended aggregate furthest from the honest mean.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021",
        requires: "",
        accepts_non_finite: true,
        params: &[
            p("lower", Float, float(0.1), Gt(0.0), Any, "smallest epsilon tried"),
            p("upper", Float, float(100.0), Gt(0.0), Any, "largest epsilon tried"),
            p("steps", Int, int(12), Ge(2.0), Any, "log-spaced candidates between lower and upper"),
        ],
    },
    ComponentSpec {
        name: "adaptive_alie",
        aliases: &["Optimal_ALittleIsEnough", "optimal_alie"],
        kind: Kind::UpdateAttack,
        summary: "ALIE whose z is line-searched each round to push the defended aggregate furthest from the honest mean.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021",
        requires: "",
        accepts_non_finite: true,
        params: &[
            p("lower", Float, float(0.1), Gt(0.0), Any, "smallest z tried"),
            p("upper", Float, float(10.0), Gt(0.0), Any, "largest z tried"),
            p("steps", Int, int(12), Ge(2.0), Any, "log-spaced candidates between lower and upper"),
        ],
    },
    ComponentSpec {
        name: "min_max",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Every malicious client sends μ - γ·p, γ the largest for which its farthest squared distance to an honest update stays within the largest between two honest updates.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-agnostic Min-Max)",
        requires: "",
        accepts_non_finite: true,
        params: &[PERTURBATION, GAMMA_INIT],
    },
    ComponentSpec {
        name: "min_sum",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Every malicious client sends μ - γ·p, γ the largest for which its summed squared distances to the honest updates stay within the smallest such sum of an honest update.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-agnostic Min-Sum)",
        requires: "",
        accepts_non_finite: true,
        params: &[PERTURBATION, GAMMA_INIT],
    },
    ComponentSpec {
        name: "agr_tailored",
        aliases: &["min_max_tailored"],
        kind: Kind::UpdateAttack,
        summary: "Every malicious client sends μ - γ·p, γ searched each round against the run's real defence (pre-aggregators, rule, server optimiser; a Python rule; MoNNA's mixing) to push the outcome furthest from the honest mean's.",
        reference: "Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-tailored attack)",
        requires: "",
        accepts_non_finite: true,
        params: &[
            PERTURBATION,
            GAMMA_INIT,
            p("steps", Int, int(20), Ge(2.0), Le(200.0), "trials of the γ search, each a replay of the defence: half scan [gamma_init/64, 2·gamma_init], half refine the best"),
        ],
    },
    ComponentSpec {
        name: "fang_krum",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Every malicious client sends -λ·sign(μ), λ the largest (halved from the paper's bound) for which Krum selects a malicious update.",
        reference: "Fang, Cao, Jia, Gong, Local Model Poisoning Attacks to Byzantine-Robust Federated Learning, USENIX Security 2020 (attack on Krum, full knowledge)",
        requires: "n > 2f + 2 (Krum's own condition)",
        accepts_non_finite: true,
        params: &[p("threshold", Float, float(1e-5), Gt(0.0), Any, "the smallest λ tried; below it the attack sends -threshold·sign(μ)")],
    },
    ComponentSpec {
        name: "fang_trim",
        aliases: &[],
        kind: Kind::UpdateAttack,
        summary: "Per coordinate, every malicious client sends a value beyond the honest extreme opposite to the honest mean's sign (scaled by a random factor in [1, b]).",
        reference: "Fang, Cao, Jia, Gong, Local Model Poisoning Attacks to Byzantine-Robust Federated Learning, USENIX Security 2020 (attack on trimmed mean and median, full knowledge)",
        requires: "",
        accepts_non_finite: true,
        params: &[p("b", Float, float(2.0), Gt(1.0), Le(1e6), "the largest factor by which a crafted value goes beyond the honest extreme")],
    },
    // ---------------------------------------------------------------- data attacks
    ComponentSpec {
        name: "label_flipping",
        aliases: &[],
        kind: Kind::DataAttack,
        summary: "Malicious clients train on flipped labels y → (C-1) - y.",
        reference: "Tolpegin et al., Data Poisoning Attacks Against Federated Learning Systems, ESORICS 2020",
        requires: "",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "targeted_label_flipping",
        aliases: &[],
        kind: Kind::DataAttack,
        summary: "Malicious clients relabel every example of class `source` as class `target`.",
        reference: "Tolpegin et al., Data Poisoning Attacks Against Federated Learning Systems, ESORICS 2020",
        requires: "",
        accepts_non_finite: true,
        params: &[
            p("source", Int, Default::Required, Ge(0.0), Any, "class whose labels are changed"),
            p("target", Int, Default::Required, Ge(0.0), Any, "label they are changed to"),
        ],
    },
    ComponentSpec {
        name: "backdoor",
        aliases: &["BadNets"],
        kind: Kind::DataAttack,
        summary: "Malicious clients stamp a trigger (a bright corner square on images, high values in the last features of tabular data) on a share of their examples and relabel them as `target`; the attack's success rate is measured every round.",
        reference: "Gu, Dolan-Gavitt, Garg, BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply Chain, 2017; distributed: Xie, Huang, Chen, Li, DBA: Distributed Backdoor Attacks against Federated Learning, ICLR 2020",
        requires: "",
        accepts_non_finite: true,
        params: &[
            p("target", Int, int(0), Ge(0.0), Any, "the class triggered examples are relabelled as"),
            p("size", Int, int(3), Ge(1.0), Any, "the trigger's side in pixels (images) or its number of features (tabular)"),
            p("fraction", Float, float(0.5), Gt(0.0), Le(1.0), "share of each malicious client's examples that carry the trigger"),
            p("distributed", Bool, Default::Value(ParamValue::Bool(false)), Any, Any, "split the trigger among the malicious clients (DBA); the full trigger is tested"),
        ],
    },
    // ---------------------------------------------------------------- decentralised mixers
    ComponentSpec {
        name: "nearest_neighbour",
        aliases: &["NNA", "MoNNA", "nearest_neighbor"],
        kind: Kind::Mixer,
        summary: "MoNNA's nearest-neighbour averaging: each worker keeps the mean of the n - 2f received models closest to its own, itself included.",
        reference: "Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, Robust Collaborative Learning with Linear Gradient Overhead, ICML 2023",
        requires: "n - f > f (an honest majority)",
        accepts_non_finite: true,
        params: &[],
    },
    ComponentSpec {
        name: "average",
        aliases: &["gossip", "mean", "D-SGD"],
        kind: Kind::Mixer,
        summary: "Plain gossip averaging (decentralised SGD): each worker keeps the mean of every model it receives; the non-robust baseline.",
        reference: "Lian et al., Can Decentralized Algorithms Outperform Centralized Algorithms? A Case Study for Decentralized Parallel SGD, NeurIPS 2017",
        requires: "n - f > f (an honest majority)",
        accepts_non_finite: false,
        params: &[],
    },
];

/// Names compare ignoring case, `_`, `-` and spaces: `multi_krum`, `MultiKrum` and `multikrum` agree.
/// The one matching rule for every name: built-in components and the Python ones alike.
pub fn normalise(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, '_' | '-' | ' ')).flat_map(char::to_lowercase).collect()
}

impl ComponentSpec {
    /// Whether `key` (a normalised name) names this component, by its name or an alias.
    fn answers_to(&self, key: &str) -> bool {
        normalise(self.name) == key || self.aliases.iter().any(|a| normalise(a) == key)
    }
}

/// Look a component up by name or alias, restricted to kinds accepted by `want`; `what` names the
/// role in errors.
pub fn lookup(name: &str, what: &str, want: impl Fn(Kind) -> bool) -> Result<&'static ComponentSpec> {
    let key = normalise(name);
    if let Some(spec) = REGISTRY.iter().find(|c| want(c.kind) && c.answers_to(&key)) {
        return Ok(spec);
    }
    let known: Vec<&str> = REGISTRY.iter().filter(|c| want(c.kind)).map(|c| c.name).collect();
    if let Some(other) = REGISTRY.iter().find(|c| c.answers_to(&key)) {
        return Err(VflError::value(format!(
            "'{}' is a {:?}, not a valid {what}; expected one of: {}",
            other.name,
            other.kind,
            known.join(", ")
        )));
    }
    Err(VflError::value(format!("Unknown {what} '{name}'; expected one of: {}", known.join(", "))))
}

pub fn registry_json() -> Json {
    Json::Array(REGISTRY.iter().map(ComponentSpec::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lookup_is_forgiving() {
        let mut seen = std::collections::HashMap::new();
        for c in REGISTRY {
            for n in std::iter::once(&c.name).chain(c.aliases) {
                if let Some(other) = seen.insert(normalise(n), c.name) {
                    panic!("'{n}' names both {other} and {}", c.name);
                }
            }
        }
        assert_eq!(lookup("FedTrimmedAvg", "rule", |k| k == Kind::Rule).unwrap().name, "TrimmedMean");
        assert_eq!(lookup("rfa", "rule", |k| k == Kind::Rule).unwrap().name, "GeometricMedian");
        assert_eq!(lookup("MoNNA", "mixer", |k| k == Kind::Mixer).unwrap().name, "nearest_neighbour");
        assert_eq!(lookup("multi_krum", "rule", |k| k == Kind::Rule).unwrap().name, "MultiKrum");
        assert_eq!(lookup("divide-and-conquer", "rule", |k| k == Kind::Rule).unwrap().name, "DnC");
        assert_eq!(lookup("mda", "rule", |k| k == Kind::Rule).unwrap().name, "MDA");
        assert_eq!(lookup("SIGN-FLIP", "attack", Kind::is_attack).unwrap().name, "sign_flip");
        let err = lookup("Krum", "attack", Kind::is_attack).unwrap_err().to_string();
        assert!(err.contains("not a valid attack"), "{err}");
        let err = lookup("Krumm", "rule", |k| k == Kind::Rule).unwrap_err().to_string();
        assert!(err.contains("Unknown rule 'Krumm'") && err.contains("MultiKrum"), "{err}");
    }

    #[test]
    fn defaults_satisfy_their_own_bounds() {
        for c in REGISTRY {
            for ps in c.params {
                if let Default::Value(v) = ps.default {
                    ps.check(c.name, &v.to_json()).unwrap_or_else(|e| panic!("{}: {e}", c.name));
                }
            }
        }
    }
}
