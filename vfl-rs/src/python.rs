//! PyO3 bindings: `velocity._core`. Arrays are read in place (rust-numpy views of C-contiguous
//! float32 data), the GIL is released while kernels run, and every `VflError` becomes a
//! `ValueError`/`TypeError`. A strategy crosses as a parsed `Strategy` object (parsed once); other
//! structured results cross as JSON text, which the Python layer turns into typed objects.

use std::sync::Mutex;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value as Json;

use crate::attacks::{attack_round, AttackRound, Defence, UpdateAttack};
use crate::error::VflError;
use crate::matrix::{Matrix, OwnedMatrix};
use crate::mixing::Mixer;
use crate::orchestrator::{Orchestrator, OrchestratorConfig, ServerDp};
use crate::registry::{registry_json, Kind};
use crate::spec::{parse_attack, parse_component_of, StrategySpec};
use crate::strategy::{NonFinite, RoundInputs, Strategy};
use crate::widest::Capability;

impl From<VflError> for PyErr {
    fn from(e: VflError) -> PyErr {
        match e {
            VflError::Value(m) => PyValueError::new_err(m),
            VflError::Type(m) => PyTypeError::new_err(m),
        }
    }
}

fn json(text: &str, what: &str) -> PyResult<Json> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("Expected JSON for {what}, got {text:?}: {e}")))
}

fn strategy_from(text: &str) -> PyResult<StrategySpec> {
    Ok(StrategySpec::from_json(&json(text, "the strategy")?)?)
}

fn attacks_from(text: &str) -> PyResult<Vec<crate::spec::ComponentConfig>> {
    match json(text, "the attacks")? {
        Json::Array(items) => Ok(items.iter().map(parse_attack).collect::<Result<Vec<_>, _>>()?),
        Json::Null => Ok(Vec::new()),
        one => Ok(vec![parse_attack(&one)?]),
    }
}

fn matrix<'a>(arr: &'a PyReadonlyArray2<'_, f32>) -> PyResult<Matrix<'a>> {
    let shape = arr.shape();
    let data = arr.as_slice().map_err(|_| PyValueError::new_err("Expected a C-contiguous float32 update matrix, got a strided view"))?;
    Ok(Matrix::new(data, shape[0], shape[1])?)
}

/// The registry of every rule, pre-aggregator, server optimiser and attack, as JSON.
#[pyfunction]
fn registry() -> String {
    registry_json().to_string()
}

/// The key two component names share when they name the same component (case, `_`, `-` and
/// spaces ignored): the core's one matching rule, for names registered from Python too.
#[pyfunction]
fn name_key(name: &str) -> String {
    crate::registry::normalise(name)
}

/// A validated strategy, parsed once and held by the core: `Strategy(json)` takes a string like
/// "Krum(f=2)", a table or a list (as JSON text); `canonical()` is its canonical JSON. The Python
/// `StrategySpec` keeps one, so aggregating many times never re-parses the strategy.
#[pyclass(frozen, name = "Strategy", module = "velocity._core")]
struct PyStrategy {
    spec: StrategySpec,
}

#[pymethods]
impl PyStrategy {
    #[new]
    fn new(spec: &str) -> PyResult<Self> {
        Ok(Self { spec: strategy_from(spec)? })
    }

    fn canonical(&self) -> String {
        self.spec.to_json().to_string()
    }

    /// Pickled as its canonical JSON (sweeps send strategies to worker processes).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((slf.get_type().into_any(), (slf.get().canonical(),)))
    }
}

/// Validate one component of `kind` (the registry's kind names: "rule", "pre_aggregator",
/// "server_optimizer", "update_attack", "data_attack", "mixer") given as JSON text or a table;
/// returns its canonical JSON. Either attack kind parses any attack ("alie(z=1.5)" or
/// {"type": "alie", "z": 1.5}).
#[pyfunction]
fn normalize_component(spec: &str, kind: &str) -> PyResult<String> {
    let kind = parse_kind(kind)?;
    let c = parse_component_of(&json(spec, "the component")?, kind)?;
    let mut out = c.to_json();
    out["text"] = Json::from(c.to_string());
    Ok(out.to_string())
}

/// The registered name of the component of `kind` that `name` (or an alias) names.
#[pyfunction]
fn component_name(name: &str, kind: &str) -> PyResult<String> {
    let kind = parse_kind(kind)?;
    Ok(crate::registry::lookup(name, kind.role(), |k| k == kind)?.name.to_string())
}

fn parse_kind(kind: &str) -> PyResult<Kind> {
    serde_json::from_value(Json::from(kind)).map_err(|_| {
        PyValueError::new_err(format!(
            "Expected a component kind (rule, pre_aggregator, server_optimizer, update_attack, data_attack, mixer), got {kind:?}"
        ))
    })
}

/// How many of the `n − f` received models a decentralised mixer averages.
#[pyfunction]
fn mixer_keep(mixer: &str, n: usize, f: usize) -> PyResult<usize> {
    let c = parse_component_of(&json(mixer, "the mixer")?, Kind::Mixer)?;
    Ok(Mixer::from_config(&c)?.keep(n, f)?)
}

/// Aggregate an `n × d` float32 matrix with a strategy (`reference`: the server's own update,
/// for FLTrust).
#[pyfunction]
#[pyo3(signature = (updates, strategy, weights=None, f=None, seed=0, reference=None))]
fn aggregate<'py>(
    py: Python<'py>,
    updates: PyReadonlyArray2<'py, f32>,
    strategy: &PyStrategy,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    f: Option<usize>,
    seed: u64,
    reference: Option<PyReadonlyArray1<'py, f32>>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let x = matrix(&updates)?;
    let w = weights.as_ref().map(|w| w.as_slice()).transpose()?;
    let r = reference.as_ref().map(|r| r.as_slice()).transpose()?;
    let out = on_pool(py, || {
        let mut s = Strategy::new(strategy.spec.clone())?;
        let round = RoundInputs { reference: r, ..Default::default() };
        s.aggregate_traced(x, w, f, round, &mut ChaCha8Rng::seed_from_u64(seed), NonFinite::Reject, false).map(|(out, _)| out)
    })?;
    Ok(out.into_pyarray(py))
}

/// Apply one update attack to the rows listed in `malicious`; returns the new matrix and what
/// the attack did (JSON). Adaptive attacks optimise against `defence` when given (a callable
/// from the attacked matrix to the defended outputs as a C-contiguous float32 `k × d` array),
/// else against `strategy` (FedAvg when omitted).
#[pyfunction]
#[pyo3(signature = (updates, attack, malicious, strategy=None, weights=None, f=None, seed=0, defence=None))]
#[allow(clippy::too_many_arguments)]
fn apply_attack<'py>(
    py: Python<'py>,
    updates: PyReadonlyArray2<'py, f32>,
    attack: &str,
    malicious: Vec<usize>,
    strategy: Option<&PyStrategy>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    f: Option<usize>,
    seed: u64,
    defence: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, String)> {
    let cfg = parse_attack(&json(attack, "the attack")?)?;
    let Some(attack) = UpdateAttack::from_config(&cfg)? else {
        return Err(PyValueError::new_err(format!(
            "Expected an update attack, got the data attack {} (the trainer applies it to the data)",
            cfg.name()
        )));
    };
    let x = matrix(&updates)?;
    // Here the rows are the clients: ids 0..n, the malicious ones named by their rows.
    attack.check_federation(x.n(), &malicious.iter().copied().collect())?;
    let spec = match strategy {
        Some(s) => s.spec.clone(),
        None => strategy_from("\"FedAvg\"")?,
    };
    let strategy = Strategy::new(spec)?;
    let w = weights.as_ref().map(|w| w.as_slice()).transpose()?;
    // An exception the Python defence raises is kept here and raised as it is.
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let run_defence = |m: &OwnedMatrix| -> Result<OwnedMatrix, VflError> {
        let callable = defence.as_ref().expect("only called with a defence");
        Python::with_gil(|py| {
            let arr = numpy::ndarray::Array2::from_shape_vec((m.n, m.d), m.data.clone()).expect("n × d values").into_pyarray(py);
            let out = callable.call1(py, (arr,)).and_then(|out| {
                let out = out.extract::<PyReadonlyArray2<f32>>(py)?;
                let (shape, data) = (out.shape().to_vec(), out.as_slice().map(<[f32]>::to_vec));
                Ok(data.map(|data| OwnedMatrix { data, n: shape[0], d: shape[1] }))
            });
            match out {
                Ok(Ok(m)) => Ok(m),
                Ok(Err(_)) => Err(VflError::value("Expected the defence to return a C-contiguous float32 array, got a strided view")),
                Err(e) => {
                    *raised.lock().expect("not poisoned") = Some(e);
                    Err(VflError::value("the defence raised an exception"))
                }
            }
        })
    };
    let result = on_pool(py, || -> Result<_, VflError> {
        let ids: Vec<usize> = (0..x.n()).collect();
        let defence = match defence {
            Some(_) => Defence::Outputs(&run_defence),
            None => Defence::Strategy {
                strategy: &strategy,
                weights: w,
                f_default: f.or(Some(malicious.len())),
                round: RoundInputs::default(),
                rng: &ChaCha8Rng::seed_from_u64(seed),
            },
        };
        let round = AttackRound { malicious: &malicious, client_ids: &ids, defence };
        let (m, mut outcomes) = attack_round(x, std::slice::from_ref(&attack), &round, &mut ChaCha8Rng::seed_from_u64(seed))?;
        Ok((m, outcomes.remove(0)))
    });
    if let Some(e) = raised.lock().expect("not poisoned").take() {
        return Err(e);
    }
    let (m, outcome) = result?;
    let arr = numpy::ndarray::Array2::from_shape_vec((m.n, m.d), m.data).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((arr.into_pyarray(py), serde_json::to_string(&outcome).unwrap_or_default()))
}

/// Nearest-neighbour averaging for every worker at once (MoNNA's mixing, Farhadkhani et al.,
/// ICML 2023): row w of the result is the mean of the `keep` rows of `received[w]` (indices into
/// `models`, the worker's own first) closest to its first row, that row included.
#[pyfunction]
fn nearest_neighbour_mix<'py>(
    py: Python<'py>,
    models: PyReadonlyArray2<'py, f32>,
    received: Vec<Vec<usize>>,
    keep: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let x = matrix(&models)?;
    let m = on_pool(py, || crate::mixing::nearest_neighbour_mix(x, &received, keep))?;
    let arr = numpy::ndarray::Array2::from_shape_vec((m.n, m.d), m.data).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// ALIE's default z for n clients of which f are malicious (Baruch et al., NeurIPS 2019).
#[pyfunction]
fn alie_z(n: usize, f: usize) -> PyResult<f64> {
    Ok(crate::attacks::alie_z(n, f)?)
}

/// The vector extensions the kernels use (`avx512`, `avx2` or `baseline`) and the widest this
/// CPU has: they differ when `VELOCITY_CPU_CAPABILITY` asks for less.
#[pyfunction]
fn cpu_capability() -> (&'static str, &'static str) {
    (Capability::in_use().name(), Capability::detected().name())
}

/// The kernels' worker threads and whether each is pinned to a CPU of its own (builds the pool,
/// as a first kernel call would).
#[pyfunction]
fn thread_pool() -> (usize, bool) {
    crate::threads::init_pool();
    (rayon::current_num_threads(), crate::threads::pinned())
}

/// Run `work` without the GIL, on the kernels' pool (built on the first call).
fn on_pool<T: pyo3::marker::Ungil>(py: Python<'_>, work: impl pyo3::marker::Ungil + FnOnce() -> T) -> T {
    crate::threads::init_pool();
    py.allow_threads(work)
}

/// The round orchestrator (see `velocity.Orchestrator` for the typed wrapper).
#[pyclass(name = "Orchestrator", module = "velocity._core")]
struct PyOrchestrator {
    inner: Orchestrator,
}

#[pymethods]
impl PyOrchestrator {
    #[new]
    /// `server_dp`: (clip, noise_multiplier) of DP-FedAvg's server side, or None.
    #[pyo3(signature = (strategy, attacks, num_clients, num_malicious=0, malicious=None, seed=0, server_dp=None))]
    fn new(
        strategy: &PyStrategy,
        attacks: &str,
        num_clients: usize,
        num_malicious: usize,
        malicious: Option<Vec<usize>>,
        seed: u64,
        server_dp: Option<(f64, f64)>,
    ) -> PyResult<Self> {
        let server_dp = server_dp.map(|(clip, z)| ServerDp::new(clip, z)).transpose()?;
        let inner = Orchestrator::new(OrchestratorConfig {
            strategy: strategy.spec.clone(),
            attacks: attacks_from(attacks)?,
            num_clients,
            malicious,
            num_malicious,
            seed,
            server_dp,
        })?;
        Ok(PyOrchestrator { inner })
    }

    /// Run one round; returns the round summary as JSON. `server_update`: the server's own
    /// update on its root data (FLTrust).
    #[pyo3(signature = (updates, weights=None, client_ids=None, server_update=None))]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        updates: PyReadonlyArray2<'py, f32>,
        weights: Option<PyReadonlyArray1<'py, f64>>,
        client_ids: Option<Vec<usize>>,
        server_update: Option<PyReadonlyArray1<'py, f32>>,
    ) -> PyResult<String> {
        let x = matrix(&updates)?;
        let w = weights.as_ref().map(|w| w.as_slice()).transpose()?;
        let g0 = server_update.as_ref().map(|g| g.as_slice()).transpose()?;
        let inner = &mut self.inner;
        let summary = on_pool(py, || inner.step(x, w, client_ids.as_deref(), g0).map(serde_json::to_string))?;
        summary.map_err(|e| PyValueError::new_err(e.to_string()))
    }

    #[pyo3(signature = (loss, accuracy=None, round=None))]
    fn report_metrics(&mut self, loss: f64, accuracy: Option<f64>, round: Option<usize>) -> PyResult<()> {
        Ok(self.inner.report_metrics(loss, accuracy, round)?)
    }

    fn history_json(&self) -> String {
        self.inner.history_json()
    }

    fn global_model<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<f32>>> {
        self.inner.global_model().map(|g| PyArray1::from_slice(py, g))
    }

    fn set_global_model(&mut self, model: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        Ok(self.inner.set_global_model(model.as_slice()?.to_vec())?)
    }

    #[getter]
    fn malicious_clients(&self) -> Vec<usize> {
        self.inner.malicious_clients()
    }

    #[getter]
    fn strategy(&self) -> String {
        self.inner.strategy().to_json().to_string()
    }

    #[getter]
    fn attacks(&self) -> String {
        let list: Vec<Json> = self.inner.attack_configs().iter().map(|a| a.to_json()).collect();
        Json::Array(list).to_string()
    }

    #[getter]
    fn num_rounds(&self) -> usize {
        self.inner.history().len()
    }
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // a misspelt cap would otherwise time or check the wrong code without a word
    Capability::requested().map_err(PyValueError::new_err)?;
    crate::threads::pinning_allowed().map_err(PyValueError::new_err)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(registry, m)?)?;
    m.add_function(wrap_pyfunction!(name_key, m)?)?;
    m.add_class::<PyStrategy>()?;
    m.add_function(wrap_pyfunction!(normalize_component, m)?)?;
    m.add_function(wrap_pyfunction!(mixer_keep, m)?)?;
    m.add_function(wrap_pyfunction!(component_name, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(apply_attack, m)?)?;
    m.add_function(wrap_pyfunction!(alie_z, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_capability, m)?)?;
    m.add_function(wrap_pyfunction!(thread_pool, m)?)?;
    m.add_function(wrap_pyfunction!(nearest_neighbour_mix, m)?)?;
    m.add_class::<PyOrchestrator>()?;
    Ok(())
}
