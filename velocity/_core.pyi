"""Type stubs for the compiled core (vfl-rs/src/python.rs). A strategy crosses as a parsed
``Strategy``; other structured values cross as JSON text."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__version__: str

def registry() -> str:
    """Every registered component as a JSON list (name, kind, summary, reference, requires, params)."""

def name_key(name: str) -> str:
    """The key under which two names name the same component (case, ``_``, ``-`` and spaces ignored)."""

class Strategy:
    """A strategy validated and parsed once by the core (given as JSON: text, table or list)."""

    def __init__(self, spec: str) -> None: ...
    def canonical(self) -> str:
        """Its canonical JSON (``pre``, ``rule``, ``server``, ``text``)."""

def normalize_component(spec: str, kind: str) -> str:
    """Validate one component of the registry's ``kind`` given as JSON; return its canonical JSON."""

def component_name(name: str, kind: str) -> str:
    """The registered name of the component of ``kind`` that ``name`` (or an alias) names."""

def mixer_keep(mixer: str, n: int, f: int) -> int:
    """How many of the ``n − f`` received models the decentralised mixer (JSON) averages."""

def aggregate(
    updates: npt.NDArray[np.float32],
    strategy: Strategy,
    weights: npt.NDArray[np.float64] | None = None,
    f: int | None = None,
    seed: int = 0,
    reference: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Aggregate a C-contiguous ``n × d`` float32 matrix (read in place, GIL released);
    ``reference``: the server's own update (FLTrust)."""

def apply_attack(
    updates: npt.NDArray[np.float32],
    attack: str,
    malicious: list[int],
    strategy: Strategy | None = None,
    weights: npt.NDArray[np.float64] | None = None,
    f: int | None = None,
    seed: int = 0,
    defence: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] | None = None,
) -> tuple[npt.NDArray[np.float32], str]:
    """Apply one update attack to the listed rows of a copy; returns the matrix and the outcome JSON.
    Adaptive attacks optimise against ``defence`` (the attacked matrix in, C-contiguous float32
    ``k × d`` outputs out) when given, else against ``strategy``."""

def alie_z(n: int, f: int) -> float: ...
def cpu_capability() -> tuple[str, str]:
    """The vector extensions the kernels use and the widest this CPU has (``"avx512"``,
    ``"avx2"`` or ``"baseline"``); they differ when ``VELOCITY_CPU_CAPABILITY`` asks for less."""

def thread_pool() -> tuple[int, bool]:
    """The kernels' worker threads (``RAYON_NUM_THREADS`` or the CPUs) and whether each is pinned
    to a CPU of its own (one worker per CPU this process may use, unless ``VELOCITY_PIN_THREADS=0``)."""

def nearest_neighbour_mix(
    models: npt.NDArray[np.float32],
    received: list[list[int]],
    keep: int,
) -> npt.NDArray[np.float32]:
    """Row w: the mean of the ``keep`` rows of ``received[w]`` (row indices into the C-contiguous
    ``models``, the worker's own first) closest to its first row, itself included (GIL released)."""

class Orchestrator:
    def __init__(
        self,
        strategy: Strategy,
        attacks: str,
        num_clients: int,
        num_malicious: int = 0,
        malicious: list[int] | None = None,
        seed: int = 0,
        server_dp: tuple[float, float] | None = None,
    ) -> None: ...
    def step(
        self,
        updates: npt.NDArray[np.float32],
        weights: npt.NDArray[np.float64] | None = None,
        client_ids: list[int] | None = None,
        server_update: npt.NDArray[np.float32] | None = None,
    ) -> str:
        """Run one round; returns the round summary as JSON (``server_update``: FLTrust's reference)."""
    def report_metrics(self, loss: float, accuracy: float | None = None, round: int | None = None) -> None: ...
    def history_json(self) -> str: ...
    def global_model(self) -> npt.NDArray[np.float32] | None: ...
    def set_global_model(self, model: npt.NDArray[np.float32]) -> None: ...
    @property
    def malicious_clients(self) -> list[int]: ...
    @property
    def strategy(self) -> str: ...
    @property
    def attacks(self) -> str: ...
    @property
    def num_rounds(self) -> int: ...
