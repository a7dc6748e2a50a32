# Written by `python -m velocity._stubs` from the registry (vfl-rs/src/registry.rs); do not edit.

from typing import Literal

from velocity.registry import ComponentInfo
from velocity.specs import Component, StrategySpec, parse_strategy

__all__ = ["Component", "StrategySpec", "parse_strategy", "FedAvg", "FedProx", "FedMedian", "TrimmedMean", "Krum", "MultiKrum", "Bulyan", "GeometricMedian", "CenteredClipping", "Meamed", "MDA", "SMEA", "CAF", "DnC", "SignGuard", "ClippedClustering", "FLAME", "FLTrust", "FoolsGold", "FedAvgM", "FedAdam", "FedYogi", "FedAdagrad", "NNM", "Bucketing", "Clipping", "ARC"]

class FedAvg(Component):
    """Mean of the updates weighted by the clients' sample counts.

    Requires: n >= 1.

    References
    ----------
    McMahan et al., Communication-Efficient Learning of Deep Networks from Decentralized Data, AISTATS 2017
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class FedProx(Component):
    """FedAvg on the server; the clients add the proximal term (mu/2)·||w - w_global||² to their local loss.

    Parameters
    ----------
    mu : float, default 0.01, >= 0
        weight of the clients' proximal term

    Requires: n >= 1.

    References
    ----------
    Li et al., Federated Optimization in Heterogeneous Networks, MLSys 2020
    """

    info: ComponentInfo
    def __init__(self, *, mu: float = ...) -> None: ...


class FedMedian(Component):
    """Coordinate-wise median (mean of the two middle values when n is even); ignores weights.

    Requires: n >= 1.

    References
    ----------
    Yin et al., Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates, ICML 2018
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class TrimmedMean(Component):
    """Per coordinate, drop the `f` largest and `f` smallest values (or a fraction `beta` per side) and average the rest.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round
    beta : float, default derived, >= 0, < 0.5
        fraction trimmed per side; give either f or beta

    Requires: n > 2·trim, where trim = f or floor(beta·n).

    References
    ----------
    Yin et al., Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates, ICML 2018
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None, beta: float | None = None) -> None: ...


class Krum(Component):
    """The update whose summed squared distance to its n-f-2 nearest neighbours is smallest.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n > 2f + 2.

    References
    ----------
    Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...


class MultiKrum(Component):
    """Weighted mean of the m updates with the best Krum scores (m defaults to n - f).

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round
    m : int, default derived, >= 1
        number of updates averaged; defaults to n - f

    Requires: n > 2f + 2 and 1 <= m <= n.

    References
    ----------
    Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None, m: int | None = None) -> None: ...


class Bulyan(Component):
    """Select θ = n-2f updates by iterated Krum, then per coordinate average the β = θ-2f values closest to the median.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n >= 4f + 3.

    References
    ----------
    El Mhamdi, Guerraoui, Rouault, The Hidden Vulnerability of Distributed Learning in Byzantium, ICML 2018
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...


class GeometricMedian(Component):
    """Weighted geometric median by the smoothed Weiszfeld algorithm (RFA).

    Parameters
    ----------
    nu : float, default 1e-06, > 0
        smoothing: distances below nu count as nu
    tol : float, default 1e-06, > 0
        stop when the smoothed objective changes by less than tol (relative)
    max_iter : int, default 100, >= 1
        maximum Weiszfeld iterations

    Requires: n >= 1.

    References
    ----------
    Pillutla, Kakade, Harchaoui, Robust Aggregation for Federated Learning, IEEE TSP 2022
    """

    info: ComponentInfo
    def __init__(self, *, nu: float = ..., tol: float = ..., max_iter: int = ...) -> None: ...


class CenteredClipping(Component):
    """v ← v + mean_i clip_tau(x_i - v), `iters` times, starting from the previous round's aggregate.

    Parameters
    ----------
    tau : float, default derived, > 0
        clipping radius around the centre; defaults each round to the median distance of the updates from the centre (the paper's tau = 10 is for gradients, far larger than model updates: give it to use it)
    iters : int, default 1, >= 1
        clipping iterations per round

    Requires: n >= 1.

    References
    ----------
    Karimireddy, He, Jaggi, Learning from History for Byzantine Robust Optimization, ICML 2021
    """

    info: ComponentInfo
    def __init__(self, *, tau: float | None = None, iters: int = ...) -> None: ...


class Meamed(Component):
    """Per coordinate, the mean of the n-f values closest to the median (ties: the lower value).

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n > 2f.

    References
    ----------
    Xie, Koyejo, Gupta, Generalized Byzantine-tolerant SGD, arXiv:1802.10116, 2018
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...


class MDA(Component):
    """The mean of the n-f updates whose largest pairwise distance is smallest; exact over the C(n, f) subsets up to max_subsets, within twice the smallest diameter beyond.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round
    max_subsets : int, default 100000, >= 1
        largest C(n, f) searched exactly; beyond it, the n-f nearest to the row with the tightest such ball (diameter at most twice the optimum)

    Requires: n > 2f.

    References
    ----------
    El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, Genuinely Distributed Byzantine Machine Learning, PODC 2020
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None, max_subsets: int = ...) -> None: ...


class SMEA(Component):
    """The mean of the n-f updates whose covariance has the smallest largest eigenvalue (exact eigenvalues); exact over the C(n, f) subsets up to max_subsets, greedy beyond.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round
    max_subsets : int, default 10000, >= 1
        largest C(n, f) searched exactly; beyond it, f greedy removals of the update farthest along the top eigenvector

    Requires: n > 2f.

    References
    ----------
    Allouah, Guerraoui, Gupta, Pinot, Stephan, On the Privacy-Robustness-Utility Trilemma in Distributed Learning, ICML 2023
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None, max_subsets: int = ...) -> None: ...


class CAF(Component):
    """Down-weight the updates along the weighted covariance's top eigenvector until the weights sum to n-2f; the weighted mean of smallest top eigenvalue seen.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n > 2f.

    References
    ----------
    Allouah, Guerraoui, Stephan, Towards Trustworthy Federated Learning with Untrusted Participants, ICML 2025
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...


class DnC(Component):
    """Score the updates by their projection on the top singular direction of random coordinate subsets; average those never among the filter_frac·f highest.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round
    sub_dim : int, default 10000, >= 1
        coordinates drawn per iteration (all of them when the update has fewer)
    iters : int, default 5, >= 1
        iterations, each with its own coordinate draw
    filter_frac : float, default 1.0, >= 0
        c: each iteration drops the floor(c·f) highest scores

    Requires: n > floor(filter_frac·f).

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None, sub_dim: int = ..., iters: int = ..., filter_frac: float = ...) -> None: ...


class SignGuard(Component):
    """Clip the updates to their median norm M, keep those with norm in [lower·M, upper·M] and in the larger k-means cluster of sign statistics, and average them.

    Parameters
    ----------
    lower : float, default 0.1, >= 0
        smallest norm kept, in multiples of the median norm
    upper : float, default 3.0, >= 0
        largest norm kept, in multiples of the median norm (after clipping to the median, only lower acts)
    agg : choice, default mean, one of mean | median
        the kept updates' weighted mean or coordinate-wise median

    Requires: n >= 1.

    References
    ----------
    Xu, Huang, Song, Lan, SignGuard: Byzantine-robust Federated Learning through Collaborative Malicious Gradient Filtering, ICDCS 2022
    """

    info: ComponentInfo
    def __init__(self, *, lower: float = ..., upper: float = ..., agg: Literal['mean', 'median'] = ...) -> None: ...


class ClippedClustering(Component):
    """Clip the updates to the median of every norm seen so far, split them in two by agglomerative clustering on cosine distance, and average the larger cluster.

    Parameters
    ----------
    max_tau : float, default 100000.0, > 0
        largest clipping radius
    linkage : choice, default average, one of average | single
        how the distance between two clusters is measured
    agg : choice, default mean, one of mean | median
        the kept updates' weighted mean or coordinate-wise median

    Requires: n >= 1.

    References
    ----------
    Li, Sahu, Sharma, Wang, Zhang, An Experimental Study of Byzantine-Robust Aggregation Schemes in Federated Learning, IEEE Transactions on Big Data 2023
    """

    info: ComponentInfo
    def __init__(self, *, max_tau: float = ..., linkage: Literal['average', 'single'] = ..., agg: Literal['mean', 'median'] = ...) -> None: ...


class FLAME(Component):
    """Admit the majority cluster of HDBSCAN on cosine distances, clip it to the median norm S of all updates, average, and add Gaussian noise of standard deviation noise_level·S.

    Parameters
    ----------
    noise_level : float, default 0.001, >= 0
        λ: the noise's standard deviation in multiples of the clipping bound (the paper's 0.001 for image classification; 0 for none)

    Requires: n >= 1.

    References
    ----------
    Nguyen et al., FLAME: Taming Backdoors in Federated Learning, USENIX Security 2022
    """

    info: ComponentInfo
    def __init__(self, *, noise_level: float = ...) -> None: ...


class FLTrust(Component):
    """The server trains on root_size clean examples each round; each client is trusted by the ReLU'd cosine of its update with the server's, rescaled to the server update's norm, and the trust-weighted mean is the aggregate.

    Parameters
    ----------
    root_size : int, default 100, >= 1
        clean training examples the server holds (a seeded draw from the training set) and trains on each round

    Requires: n >= 1; a server update (federated runs train it on the root examples).

    References
    ----------
    Cao, Fang, Liu, Gong, FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping, NDSS 2021
    """

    info: ComponentInfo
    def __init__(self, *, root_size: int = ...) -> None: ...


class FoolsGold(Component):
    """Weight each client by how little its summed past updates point the same way as another's (pardoned cosine similarity, logit); sybils that push together get weight 0. Keeps each client's history across rounds.

    Parameters
    ----------
    kappa : float, default 1.0, > 0
        confidence κ of the logit κ·(ln(α/(1-α)) + 0.5)

    Requires: n >= 1.

    References
    ----------
    Fung, Yoon, Beschastnikh, The Limitations of Federated Learning in Sybil Settings, RAID 2020
    """

    info: ComponentInfo
    def __init__(self, *, kappa: float = ...) -> None: ...


class FedAvgM(Component):
    """Server momentum: v ← momentum·v + Δ; w ← w + server_lr·v.

    Parameters
    ----------
    server_lr : float, default 1.0, > 0
        server learning rate
    momentum : float, default 0.9, >= 0, < 1
        server momentum

    References
    ----------
    Hsu, Qi, Brown, Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification, 2019
    """

    info: ComponentInfo
    def __init__(self, *, server_lr: float = ..., momentum: float = ...) -> None: ...


class FedAdam(Component):
    """Adam on the server with the aggregate as pseudo-gradient (no bias correction, as in the paper).

    Parameters
    ----------
    eta : float, default 0.1, > 0
        server learning rate
    beta_1 : float, default 0.9, >= 0, < 1
        first-moment decay
    beta_2 : float, default 0.99, >= 0, < 1
        second-moment decay
    tau : float, default 0.001, > 0
        adaptivity (added to the root of the second moment)

    References
    ----------
    Reddi et al., Adaptive Federated Optimization, ICLR 2021
    """

    info: ComponentInfo
    def __init__(self, *, eta: float = ..., beta_1: float = ..., beta_2: float = ..., tau: float = ...) -> None: ...


class FedYogi(Component):
    """Yogi on the server: v ← v - (1-β2)·Δ²·sign(v - Δ²).

    Parameters
    ----------
    eta : float, default 0.01, > 0
        server learning rate
    beta_1 : float, default 0.9, >= 0, < 1
        first-moment decay
    beta_2 : float, default 0.99, >= 0, < 1
        second-moment decay
    tau : float, default 0.001, > 0
        adaptivity (added to the root of the second moment)

    References
    ----------
    Reddi et al., Adaptive Federated Optimization, ICLR 2021
    """

    info: ComponentInfo
    def __init__(self, *, eta: float = ..., beta_1: float = ..., beta_2: float = ..., tau: float = ...) -> None: ...


class FedAdagrad(Component):
    """Adagrad on the server: v ← v + Δ².

    Parameters
    ----------
    eta : float, default 0.1, > 0
        server learning rate
    beta_1 : float, default 0.9, >= 0, < 1
        first-moment decay
    tau : float, default 0.001, > 0
        adaptivity (added to the root of the second moment)

    References
    ----------
    Reddi et al., Adaptive Federated Optimization, ICLR 2021
    """

    info: ComponentInfo
    def __init__(self, *, eta: float = ..., beta_1: float = ..., tau: float = ...) -> None: ...


class NNM(Component):
    """Nearest-neighbour mixing: replace each update by the mean of its n-f nearest updates (itself included).

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n > f.

    References
    ----------
    Allouah et al., Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity, AISTATS 2023
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...


class Bucketing(Component):
    """Shuffle the updates (seeded) and average them in buckets of s.

    Parameters
    ----------
    s : int, default 2, >= 1
        bucket size

    Requires: n >= 1.

    References
    ----------
    Karimireddy, He, Jaggi, Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing, ICLR 2022
    """

    info: ComponentInfo
    def __init__(self, *, s: int = ...) -> None: ...


class Clipping(Component):
    """L2 clipping: scale every update to norm at most c (the round's median norm unless given).

    Parameters
    ----------
    c : float, default derived, > 0
        clipping threshold (L2 norm); defaults each round to the median norm of the updates

    Requires: n >= 1.

    References
    ----------
    Karimireddy, He, Jaggi, Learning from History for Byzantine Robust Optimization, ICML 2021 (static clipping baseline)
    """

    info: ComponentInfo
    def __init__(self, *, c: float | None = None) -> None: ...


class ARC(Component):
    """Adaptive robust clipping: clip the floor(2(f/n)(n-f)) largest-norm updates to the next largest norm.

    Parameters
    ----------
    f : int, default derived, >= 0
        number of Byzantine clients tolerated; defaults to the number of malicious clients in the round

    Requires: n > f.

    References
    ----------
    Allouah et al., Boosting Robustness by Clipping Gradients in Distributed Learning, 2024
    """

    info: ComponentInfo
    def __init__(self, *, f: int | None = None) -> None: ...
