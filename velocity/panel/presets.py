"""Scenarios a lesson starts from: each sets the panel's controls to a question the literature
asks (the data set, model and training stay the sweep's). Pressing Run then queues them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A named setting of the panel's controls, with what it shows in one line."""

    name: str
    summary: str
    strategies: tuple[str, ...]
    attacks: tuple[str, ...]
    alpha: float | None  # None: iid
    malicious_fraction: float = 0.2
    clients: int | None = None  # None: keep the panel's


PRESETS: tuple[Preset, ...] = (
    Preset(
        "Sign flip: mean vs median",
        "One client in five sends its update negated: the mean follows it, the coordinate-wise median (Yin et al., ICML 2018) does not.",
        ("FedAvg", "FedMedian"),
        ("none", "sign_flip"),
        None,
    ),
    Preset(
        "Heterogeneity alone, no attack",
        "No attacker at all, data split with Dirichlet α = 0.1: robust rules already lose accuracy, "
        "the price of robustness on non-iid data (Karimireddy et al., ICLR 2022).",
        ("FedAvg", "FedMedian", "Krum"),
        ("none",),
        0.1,
    ),
    Preset(
        "ALIE vs Krum at α = 0.1",
        "A little is enough (Baruch et al., NeurIPS 2019): small coordinated shifts within the honest "
        "spread, which Krum cannot tell from honest non-iid updates.",
        ("FedAvg", "Krum"),
        ("none", "alie"),
        0.1,
    ),
    Preset(
        "IPM against robust rules",
        "Inner-product manipulation (Xie et al., UAI 2020): the malicious clients send −0.1 × the honest "
        "mean, hiding inside the honest cloud while pulling the aggregate back.",
        ("FedAvg", "Krum", "FedMedian", "CenteredClipping"),
        ("none", "ipm"),
        1.0,
    ),
    Preset(
        "Bucketing on non-iid data, small",
        "Karimireddy et al. (ICLR 2022): averaging random buckets of s = 2 updates before a robust rule "
        "restores it on non-iid data; 25 clients, 5 of them malicious.",
        ("Krum", "Bucketing + Krum", "FedMedian", "Bucketing + FedMedian"),  # Bucketing's s defaults to 2
        ("none", "alie"),
        0.1,
        clients=25,
    ),
)


def find_preset(name: str) -> Preset:
    """The preset called ``name``; ``ValueError`` naming the others otherwise."""
    for preset in PRESETS:
        if preset.name == name:
            return preset
    raise ValueError(f"Expected one of the presets {', '.join(repr(p.name) for p in PRESETS)}, got {name!r}")
