# Written by `python -m velocity._stubs` from the registry (vfl-rs/src/registry.rs); do not edit.

from typing import Literal

from velocity.registry import ComponentInfo
from velocity.specs import AttackSpec, Component, parse_attack, parse_attacks

__all__ = ["AttackSpec", "Component", "parse_attack", "parse_attacks", "GaussianNoise", "SignFlip", "Scaling", "ModelPoisoning", "IPM", "ALIE", "Mimic", "Sybil", "NaN", "Inf", "AdaptiveIPM", "AdaptiveALIE", "MinMax", "MinSum", "AGRTailored", "FangKrum", "FangTrim", "LabelFlipping", "TargetedLabelFlipping", "Backdoor"]

class GaussianNoise(Component):
    """Each malicious client adds N(0, sigma²) noise to every coordinate of its update.

    Parameters
    ----------
    sigma : float, default 1.0, >= 0, <= 3.40282e+38
        standard deviation of the added noise

    References
    ----------
    Blanchard et al., Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent, NeurIPS 2017 (Gaussian Byzantine workers)
    """

    info: ComponentInfo
    def __init__(self, *, sigma: float = ...) -> None: ...


class SignFlip(Component):
    """Each malicious client sends -scale times its own update.

    Parameters
    ----------
    scale : float, default 1.0, >= 0
        magnitude of the flipped update

    References
    ----------
    Allen-Zhu et al., Byzantine-Resilient Non-Convex Stochastic Gradient Descent, ICLR 2021; 'bit flipping' in Karimireddy et al., ICLR 2022
    """

    info: ComponentInfo
    def __init__(self, *, scale: float = ...) -> None: ...


class Scaling(Component):
    """Each malicious client sends factor times its own update (explicit boosting).

    Parameters
    ----------
    factor : float, default 10.0
        multiplier of the update

    References
    ----------
    Bhagoji et al., Analyzing Federated Learning through an Adversarial Lens, ICML 2019
    """

    info: ComponentInfo
    def __init__(self, *, factor: float = ...) -> None: ...


class ModelPoisoning(Component):
    """Blend the own update with the boosted reversal -(n/f)·honest mean: (1-intensity)·x + intensity·(-(n/f)·μ).

    Parameters
    ----------
    intensity : float, default 1.0, >= 0
        0 sends the honest update, 1 the full boosted reversal

    References
    ----------
    Bhagoji et al., Analyzing Federated Learning through an Adversarial Lens, ICML 2019 (explicit boosting)
    """

    info: ComponentInfo
    def __init__(self, *, intensity: float = ...) -> None: ...


class IPM(Component):
    """Inner-product manipulation: every malicious client sends -epsilon times the honest mean.

    Parameters
    ----------
    epsilon : float, default 0.1, > 0
        strength (0.1 hides inside the honest cloud; 100 reverses the mean)

    References
    ----------
    Xie, Koyejo, Gupta, Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product Manipulation, UAI 2019
    """

    info: ComponentInfo
    def __init__(self, *, epsilon: float = ...) -> None: ...


class ALIE(Component):
    """A little is enough: every malicious client sends μ - z·σ (per-coordinate honest mean and population std).

    Parameters
    ----------
    z : float, default derived
        deviation in standard deviations; defaults to Φ⁻¹((n-s)/n) with s = floor(n/2) + 1 - f, as in the paper

    References
    ----------
    Baruch, Baruch, Goldberg, A Little Is Enough: Circumventing Defenses For Distributed Learning, NeurIPS 2019
    """

    info: ComponentInfo
    def __init__(self, *, z: float | None = None) -> None: ...


class Mimic(Component):
    """Every malicious client copies one honest client's update, over-representing it (harmful under non-IID data).

    Parameters
    ----------
    target : int, default derived, >= 0
        client id to copy; by default one honest client of the round, drawn from the seed

    References
    ----------
    Karimireddy, He, Jaggi, Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing, ICLR 2022
    """

    info: ComponentInfo
    def __init__(self, *, target: int | None = None) -> None: ...


class Sybil(Component):
    """Colluding sybils: every malicious client sends the same vector, the mean of their own updates.

    References
    ----------
    Fung, Yoon, Beschastnikh, The Limitations of Federated Learning in Sybil Settings, RAID 2020
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class NaN(Component):
    """Fault injection: malicious rows are all NaN.

    References
    ----------
    Fault injection (crash / corrupted-update failures)
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class Inf(Component):
    """Fault injection: malicious rows are all +Inf.

    References
    ----------
    Fault injection (overflowing updates)
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class AdaptiveIPM(Component):
    """IPM whose epsilon is line-searched each round to push the defended aggregate furthest from the honest mean.

    Parameters
    ----------
    lower : float, default 0.1, > 0
        smallest epsilon tried
    upper : float, default 100.0, > 0
        largest epsilon tried
    steps : int, default 12, >= 2
        log-spaced candidates between lower and upper

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021
    """

    info: ComponentInfo
    def __init__(self, *, lower: float = ..., upper: float = ..., steps: int = ...) -> None: ...


class AdaptiveALIE(Component):
    """ALIE whose z is line-searched each round to push the defended aggregate furthest from the honest mean.

    Parameters
    ----------
    lower : float, default 0.1, > 0
        smallest z tried
    upper : float, default 10.0, > 0
        largest z tried
    steps : int, default 12, >= 2
        log-spaced candidates between lower and upper

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021
    """

    info: ComponentInfo
    def __init__(self, *, lower: float = ..., upper: float = ..., steps: int = ...) -> None: ...


class MinMax(Component):
    """Every malicious client sends μ - γ·p, γ the largest for which its farthest squared distance to an honest update stays within the largest between two honest updates.

    Parameters
    ----------
    perturbation : choice, default unit_vec, one of unit_vec | std | sign
        direction p: the honest mean's unit vector, the honest updates' coordinate-wise standard deviation, or the mean's sign
    gamma_init : float, default 10.0, > 0, <= 1e+30
        first γ tried (the search reaches at most twice this)

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-agnostic Min-Max)
    """

    info: ComponentInfo
    def __init__(self, *, perturbation: Literal['unit_vec', 'std', 'sign'] = ..., gamma_init: float = ...) -> None: ...


class MinSum(Component):
    """Every malicious client sends μ - γ·p, γ the largest for which its summed squared distances to the honest updates stay within the smallest such sum of an honest update.

    Parameters
    ----------
    perturbation : choice, default unit_vec, one of unit_vec | std | sign
        direction p: the honest mean's unit vector, the honest updates' coordinate-wise standard deviation, or the mean's sign
    gamma_init : float, default 10.0, > 0, <= 1e+30
        first γ tried (the search reaches at most twice this)

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-agnostic Min-Sum)
    """

    info: ComponentInfo
    def __init__(self, *, perturbation: Literal['unit_vec', 'std', 'sign'] = ..., gamma_init: float = ...) -> None: ...


class AGRTailored(Component):
    """Every malicious client sends μ - γ·p, γ searched each round against the run's real defence (pre-aggregators, rule, server optimiser; a Python rule; MoNNA's mixing) to push the outcome furthest from the honest mean's.

    Parameters
    ----------
    perturbation : choice, default unit_vec, one of unit_vec | std | sign
        direction p: the honest mean's unit vector, the honest updates' coordinate-wise standard deviation, or the mean's sign
    gamma_init : float, default 10.0, > 0, <= 1e+30
        first γ tried (the search reaches at most twice this)
    steps : int, default 20, >= 2, <= 200
        trials of the γ search, each a replay of the defence: half scan [gamma_init/64, 2·gamma_init], half refine the best

    References
    ----------
    Shejwalkar, Houmansadr, Manipulating the Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning, NDSS 2021 (AGR-tailored attack)
    """

    info: ComponentInfo
    def __init__(self, *, perturbation: Literal['unit_vec', 'std', 'sign'] = ..., gamma_init: float = ..., steps: int = ...) -> None: ...


class FangKrum(Component):
    """Every malicious client sends -λ·sign(μ), λ the largest (halved from the paper's bound) for which Krum selects a malicious update.

    Parameters
    ----------
    threshold : float, default 1e-05, > 0
        the smallest λ tried; below it the attack sends -threshold·sign(μ)

    Requires: n > 2f + 2 (Krum's own condition).

    References
    ----------
    Fang, Cao, Jia, Gong, Local Model Poisoning Attacks to Byzantine-Robust Federated Learning, USENIX Security 2020 (attack on Krum, full knowledge)
    """

    info: ComponentInfo
    def __init__(self, *, threshold: float = ...) -> None: ...


class FangTrim(Component):
    """Per coordinate, every malicious client sends a value beyond the honest extreme opposite to the honest mean's sign (scaled by a random factor in [1, b]).

    Parameters
    ----------
    b : float, default 2.0, > 1, <= 1e+06
        the largest factor by which a crafted value goes beyond the honest extreme

    References
    ----------
    Fang, Cao, Jia, Gong, Local Model Poisoning Attacks to Byzantine-Robust Federated Learning, USENIX Security 2020 (attack on trimmed mean and median, full knowledge)
    """

    info: ComponentInfo
    def __init__(self, *, b: float = ...) -> None: ...


class LabelFlipping(Component):
    """Malicious clients train on flipped labels y → (C-1) - y.

    References
    ----------
    Tolpegin et al., Data Poisoning Attacks Against Federated Learning Systems, ESORICS 2020
    """

    info: ComponentInfo
    def __init__(self) -> None: ...


class TargetedLabelFlipping(Component):
    """Malicious clients relabel every example of class `source` as class `target`.

    Parameters
    ----------
    source : int, default required, >= 0
        class whose labels are changed
    target : int, default required, >= 0
        label they are changed to

    References
    ----------
    Tolpegin et al., Data Poisoning Attacks Against Federated Learning Systems, ESORICS 2020
    """

    info: ComponentInfo
    def __init__(self, *, source: int, target: int) -> None: ...


class Backdoor(Component):
    """Malicious clients stamp a trigger (a bright corner square on images, high values in the last features of tabular data) on a share of their examples and relabel them as `target`; the attack's success rate is measured every round.

    Parameters
    ----------
    target : int, default 0, >= 0
        the class triggered examples are relabelled as
    size : int, default 3, >= 1
        the trigger's side in pixels (images) or its number of features (tabular)
    fraction : float, default 0.5, > 0, <= 1
        share of each malicious client's examples that carry the trigger
    distributed : bool, default False
        split the trigger among the malicious clients (DBA); the full trigger is tested

    References
    ----------
    Gu, Dolan-Gavitt, Garg, BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply Chain, 2017; distributed: Xie, Huang, Chen, Li, DBA: Distributed Backdoor Attacks against Federated Learning, ICLR 2020
    """

    info: ComponentInfo
    def __init__(self, *, target: int = ..., size: int = ..., fraction: float = ..., distributed: bool = ...) -> None: ...
