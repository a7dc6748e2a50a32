//! Property tests against naive float64 reference implementations written here.

mod common;

use common::*;
use proptest::collection::vec as pvec;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use vfl::orchestrator::{Orchestrator, OrchestratorConfig};
use vfl::registry::{Kind, REGISTRY};
use vfl::{aggregate, parse_attack, NonFinite, OwnedMatrix, Strategy as VflStrategy, StrategySpec};

const CASES: u32 = 64;

/// The same cases on every run, so CI is not a lottery; `PROPTEST_RNG_SEED=<n>` explores others.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(CASES);
    if matches!(c.rng_seed, proptest::test_runner::RngSeed::Random) {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5EED_0FF1);
    }
    c
}

// ------------------------------------------------------------------ generators

/// An `n × d` matrix with n in `ns`, d in 1..=dmax and values in [−100, 100].
fn matrix(ns: std::ops::RangeInclusive<usize>, dmax: usize) -> impl Strategy<Value = OwnedMatrix> {
    (ns, 1..=dmax).prop_flat_map(|(n, d)| pvec(-100.0f32..100.0, n * d).prop_map(move |data| OwnedMatrix { data, n, d }))
}

/// A matrix and positive weights (sample counts).
fn weighted(ns: std::ops::RangeInclusive<usize>, dmax: usize) -> impl Strategy<Value = (OwnedMatrix, Vec<f64>)> {
    matrix(ns, dmax).prop_flat_map(|x| {
        let n = x.n;
        (Just(x), pvec(0.01f64..100.0, n))
    })
}

/// A matrix, a permutation of its rows and the permuted matrix.
fn permuted(ns: std::ops::RangeInclusive<usize>, dmax: usize) -> impl Strategy<Value = (OwnedMatrix, Vec<usize>, OwnedMatrix)> {
    matrix(ns, dmax)
        .prop_flat_map(|x| {
            let idx: Vec<usize> = (0..x.n).collect();
            (Just(x), Just(idx).prop_shuffle())
        })
        .prop_map(|(x, p)| {
            let y = x.view().select_rows(&p);
            (x, p, y)
        })
}

/// Ordinary values most of the time, with extremes, zeros, subnormals and non-finite values mixed in.
fn wild_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -1e3f32..1e3,
        2 => prop::sample::select(vec![
            0.0, -0.0, 1.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, 1e30, -1e30, 1e20, -3e19,
            f32::NAN, f32::INFINITY, f32::NEG_INFINITY,
        ]),
        1 => any::<f32>(),
    ]
}

// ------------------------------------------------------------------ naive references (f64)

fn columns(x: &OwnedMatrix) -> Vec<Vec<f32>> {
    (0..x.d).map(|j| (0..x.n).map(|i| x.row(i)[j]).collect()).collect()
}

#[allow(clippy::needless_range_loop)] // the naive loop is the point
fn ref_weighted_mean(x: &OwnedMatrix, w: &[f64]) -> Vec<f64> {
    let total: f64 = w.iter().sum();
    (0..x.d)
        .map(|j| {
            let mut s = 0.0;
            for i in 0..x.n {
                s += w[i] * x.row(i)[j] as f64;
            }
            s / total
        })
        .collect()
}

fn ref_median(x: &OwnedMatrix) -> Vec<f32> {
    columns(x)
        .into_iter()
        .map(|mut c| {
            c.sort_by(f32::total_cmp);
            let n = c.len();
            if n % 2 == 1 {
                c[n / 2]
            } else {
                ((c[n / 2 - 1] as f64 + c[n / 2] as f64) / 2.0) as f32
            }
        })
        .collect()
}

fn ref_trimmed_mean(x: &OwnedMatrix, trim: usize) -> Vec<f64> {
    columns(x)
        .into_iter()
        .map(|mut c| {
            c.sort_by(f32::total_cmp);
            let kept = &c[trim..c.len() - trim];
            kept.iter().map(|&v| v as f64).sum::<f64>() / kept.len() as f64
        })
        .collect()
}

/// Krum scores: for each row, the sum of squared distances to its n − f − 2 nearest other rows.
fn ref_krum_scores(x: &OwnedMatrix, f: usize) -> Vec<f64> {
    let k = x.n - f - 2;
    (0..x.n)
        .map(|i| {
            let mut d: Vec<f64> = (0..x.n)
                .filter(|&j| j != i)
                .map(|j| x.row(i).iter().zip(x.row(j)).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum())
                .collect();
            d.sort_by(f64::total_cmp);
            d[..k].iter().sum()
        })
        .collect()
}

/// Row indices by ascending score, and whether positions `m − 1` and `m` are clearly apart.
fn order_with_gap(scores: &[f64], m: usize) -> (Vec<usize>, bool) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let gap = m >= scores.len() || scores[idx[m]] - scores[idx[m - 1]] > 1e-3 * (1.0 + scores[idx[m]]);
    (idx, gap)
}

#[track_caller]
fn assert_close_prop(got: &[f32], want: &[f64], tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!((g as f64 - w).abs() <= tol * (1.0 + w.abs()), "index {}: got {}, want {}", j, g, w);
    }
    Ok(())
}

fn run(x: &OwnedMatrix, text: &str, w: Option<&[f64]>) -> Vec<f32> {
    aggregate(x.view(), &spec(text), w, None, 0).unwrap_or_else(|e| panic!("{text}: {e}"))
}

// ------------------------------------------------------------------ against the references

proptest! {
    #![proptest_config(config())]

    /// Sorting on integer keys orders the values exactly as `f32::total_cmp` does, bit for bit
    /// (NaN of either sign, ±0, ±inf and subnormals included).
    #[test]
    fn sorting_on_total_order_keys_is_sorting_by_total_cmp(bits_in in pvec(any::<u32>(), 0..200), picks in pvec(0usize..8, 0..50)) {
        let special = [f32::NAN, -f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE / 2.0, -1.5];
        let mut v: Vec<f32> = bits_in.iter().map(|&b| f32::from_bits(b)).chain(picks.iter().map(|&p| special[p])).collect();
        let mut want = v.clone();
        want.sort_unstable_by(f32::total_cmp);
        vfl::matrix::sort_total_order(&mut v);
        prop_assert_eq!(bits(&v), bits(&want));
    }

    #[test]
    fn fedavg_is_the_weighted_mean((x, w) in weighted(1..=20, 50)) {
        assert_close_prop(&run(&x, "FedAvg", Some(&w)), &ref_weighted_mean(&x, &w), 1e-6)?;
        assert_close_prop(&run(&x, "FedAvg", None), &ref_weighted_mean(&x, &vec![1.0; x.n]), 1e-6)?;
    }

    #[test]
    fn fedmedian_is_the_middle_value(x in matrix(1..=20, 50)) {
        prop_assert_eq!(bits(&run(&x, "FedMedian", None)), bits(&ref_median(&x)));
    }

    #[test]
    fn trimmed_mean_drops_f_per_side((x, f) in matrix(1..=20, 50).prop_flat_map(|x| { let n = x.n; (Just(x), 0..=(n - 1) / 2) })) {
        let got = run(&x, &format!("TrimmedMean(f={f})"), None);
        assert_close_prop(&got, &ref_trimmed_mean(&x, f), 1e-6)?;
    }

    #[test]
    fn trimmed_mean_beta_trims_floor_beta_n(x in matrix(1..=20, 30), beta in 0.0f64..0.5) {
        let trim = (beta * x.n as f64).floor() as usize;
        let got = run(&x, &format!("TrimmedMean(beta={beta})"), None);
        assert_close_prop(&got, &ref_trimmed_mean(&x, trim), 1e-6)?;
    }

    #[test]
    fn krum_selects_the_naive_argmin((x, f) in matrix(3..=20, 50).prop_flat_map(|x| { let n = x.n; (Just(x), 0..=(n - 3) / 2) })) {
        let (order, clear) = order_with_gap(&ref_krum_scores(&x, f), 1);
        prop_assume!(clear, "near tie");
        prop_assert_eq!(run(&x, &format!("Krum(f={f})"), None), x.row(order[0]).to_vec());
    }

    #[test]
    fn multi_krum_averages_the_naive_m_best(
        (x, f, m) in matrix(3..=20, 30).prop_flat_map(|x| { let n = x.n; (Just(x), 0..=(n - 3) / 2, 1..=n) })
    ) {
        let (order, clear) = order_with_gap(&ref_krum_scores(&x, f), m);
        prop_assume!(clear, "near tie at the m-th score");
        let sel = x.view().select_rows(&order[..m]);
        let got = run(&x, &format!("MultiKrum(f={f}, m={m})"), None);
        assert_close_prop(&got, &ref_weighted_mean(&sel, &vec![1.0; m]), 1e-6)?;
    }

    #[test]
    fn clipping_scales_each_row_to_at_most_c(x in matrix(1..=20, 50), c in 0.1f64..500.0) {
        let (out, _) = pre(&format!("Clipping(c={c})"), x.view(), &vec![1.0; x.n], None, 0);
        for i in 0..x.n {
            let norm = x.row(i).iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            let s = if norm > c { c / norm } else { 1.0 };
            let want: Vec<f64> = x.row(i).iter().map(|&v| v as f64 * s).collect();
            assert_close_prop(out.row(i), &want, 1e-6)?;
        }
    }
}

// ------------------------------------------------------------------ symmetry and fixed points

proptest! {
    #![proptest_config(config())]

    #[test]
    fn symmetric_rules_ignore_the_row_order((x, p, y) in permuted(1..=20, 30), wseed in 0u64..1000) {
        // Weights travel with their rows.
        let w: Vec<f64> = (0..x.n).map(|i| 1.0 + ((i as u64 * 7919 + wseed) % 13) as f64).collect();
        let wp: Vec<f64> = p.iter().map(|&i| w[i]).collect();
        let n = x.n;
        prop_assert_eq!(bits(&run(&x, "FedMedian", None)), bits(&run(&y, "FedMedian", None)));
        let t = format!("TrimmedMean(f={})", (n - 1) / 2);
        let specs = ["FedAvg", t.as_str(), "CenteredClipping(tau=5.0, iters=3)", "GeometricMedian(tol=1e-12, max_iter=1000)"];
        for text in specs {
            let a = run(&x, text, Some(&w));
            let b: Vec<f64> = run(&y, text, Some(&wp)).iter().map(|&v| v as f64).collect();
            assert_close_prop(&a, &b, 1e-4)?;
        }
        if n >= 3 {
            let f = (n - 3) / 2;
            if order_with_gap(&ref_krum_scores(&x, f), 1).1 {
                prop_assert_eq!(run(&x, &format!("Krum(f={f})"), None), run(&y, &format!("Krum(f={f})"), None));
            }
        }
    }

    #[test]
    fn equal_rows_give_that_row(row in pvec(-100.0f32..100.0, 1..=50), n in 1usize..=20, w in pvec(0.1f64..10.0, 20)) {
        let x = OwnedMatrix { data: row.repeat(n), n, d: row.len() };
        let w = &w[..n];
        let want: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let mut specs = vec![
            "FedAvg".to_string(), "FedProx".into(), "FedMedian".into(), "GeometricMedian".into(),
            "CenteredClipping(tau=1e6)".into(), "FedAdam".into(), "TrimmedMean(beta=0.49)".into(),
            format!("TrimmedMean(f={})", (n - 1) / 2),
            format!("NNM(f={}) + FedAvg", n - 1), "Bucketing(s=3) + FedMedian".into(),
            format!("ARC(f={}) + FedAvg", n - 1), "Clipping(c=1e6) + FedAvg".into(),
        ];
        if n >= 3 {
            specs.push(format!("Krum(f={})", (n - 3) / 2));
            specs.push(format!("MultiKrum(f={})", (n - 3) / 2));
            specs.push(format!("Bulyan(f={})", (n - 3) / 4));
        }
        for text in &specs {
            let got = aggregate(x.view(), &spec(text), Some(w), None, 3).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_close_prop(&got, &want, 1e-6).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        }
    }
}

// ------------------------------------------------------------------ robustness: Ok or Err, never a panic

/// Every strategy component in the registry, with its required parameters filled in.
fn every_strategy() -> Vec<String> {
    let mut out = Vec::new();
    for c in REGISTRY {
        let name = match c.name {
            "Clipping" => "Clipping(c=1.0)",
            n => n,
        };
        match c.kind {
            Kind::Rule | Kind::ServerOptimizer => out.push(name.to_string()),
            Kind::PreAggregator => {
                out.push(format!("{name} + FedAvg"));
                out.push(format!("{name} + Krum"));
            }
            _ => {}
        }
    }
    out
}

fn wild_case() -> impl Strategy<Value = (OwnedMatrix, Option<Vec<f64>>, Option<usize>, u64)> {
    (1usize..=20, 1usize..=50).prop_flat_map(|(n, d)| {
        (
            pvec(wild_value(), n * d).prop_map(move |data| OwnedMatrix { data, n, d }),
            prop::option::of(pvec(prop_oneof![Just(0.0), Just(1e-300), Just(1e300), 0.0f64..100.0], n)),
            prop::option::of(0..=n + 1),
            any::<u64>(),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_strategy_returns_ok_or_err((x, w, f, seed) in wild_case()) {
        for text in every_strategy() {
            let s = StrategySpec::parse(&text).unwrap();
            for mode in [NonFinite::Reject, NonFinite::Propagate] {
                let mut st = VflStrategy::new(s.clone()).unwrap();
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                if let Ok(agg) = st.aggregate(x.view(), w.as_deref(), f, &mut rng, mode) {
                    prop_assert_eq!(agg.len(), x.d, "{}", text);
                    let mut global = vec![0.0; x.d];
                    st.server_step(&mut global, &agg).unwrap();
                    // A second round exercises the carried state (centre, moments).
                    let _ = st.aggregate(x.view(), w.as_deref(), f, &mut rng, mode);
                }
            }
        }
    }

    #[test]
    fn every_attack_round_returns_ok_or_err((x, w, _f, seed) in wild_case(), mal in pvec(any::<bool>(), 20), rule in 0usize..6) {
        let strategies = ["FedAvg", "Krum", "FedMedian", "GeometricMedian", "Bucketing(s=2) + TrimmedMean", "CenteredClipping"];
        let malicious: Vec<usize> = (0..x.n).filter(|&i| mal[i]).collect();
        for c in REGISTRY.iter().filter(|c| c.kind.is_attack()) {
            let attack = match c.name {
                "targeted_label_flipping" => json!("targeted_label_flipping(source=0, target=1)"),
                n => json!(n),
            };
            let mut o = Orchestrator::new(OrchestratorConfig {
                strategy: spec(strategies[rule]),
                attacks: vec![parse_attack(&attack).unwrap()],
                num_clients: x.n,
                malicious: Some(malicious.clone()),
                num_malicious: 0,
                seed,
                server_dp: None,
            }).unwrap();
            let _ = o.step(x.view(), w.as_deref(), None, None);
        }
    }
}
