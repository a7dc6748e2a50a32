//! Model-update attacks (hand cases), ALIE's z, adaptive attacks and the registered data attacks.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use vfl::attacks::{alie_z, attack_round, AttackContext, AttackOutcome, AttackRound, Defence, UpdateAttack};
use vfl::orchestrator::{Orchestrator, OrchestratorConfig, RoundSummary};
use vfl::params::{Default as ParamDefault, ParamType};
use vfl::registry::{lookup, registry_json, Kind, REGISTRY};
use vfl::{parse_attack, OwnedMatrix, Strategy};

fn attack_of(value: serde_json::Value) -> UpdateAttack {
    let c = parse_attack(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
    UpdateAttack::from_config(&c).unwrap().expect("an update attack")
}

/// Apply a non-adaptive attack to a copy of `x`; client ids are the row indices unless given.
fn run(text: &str, x: &OwnedMatrix, malicious: &[usize], ids: Option<&[usize]>, seed: u64) -> (OwnedMatrix, AttackOutcome) {
    let honest: Vec<usize> = (0..x.n).filter(|i| !malicious.contains(i)).collect();
    let default_ids: Vec<usize> = (0..x.n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let strategy = Strategy::new(spec("FedAvg")).unwrap();
    let defence = Defence::Strategy {
        strategy: &strategy,
        weights: None,
        f_default: None,
        round: Default::default(),
        rng: &ChaCha8Rng::seed_from_u64(seed),
    };
    let mut ctx = AttackContext { honest: &honest, malicious, client_ids: ids.unwrap_or(&default_ids), rng: &mut rng, defence: &defence };
    let mut out = x.clone();
    let outcome = attack_of(json!(text)).apply(&mut out, &mut ctx).unwrap_or_else(|e| panic!("{text}: {e}"));
    (out, outcome)
}

/// Honest rows (1, 10) and (3, 10): mean (2, 10), population std (1, 0). Rows 2 and 3 are malicious.
fn four_rows() -> OwnedMatrix {
    mat(&[&[1.0, 10.0], &[3.0, 10.0], &[10.0, 0.0], &[-2.0, 4.0]])
}

#[test]
fn honest_rows_are_never_touched() {
    let x = four_rows();
    for a in ["gaussian_noise", "sign_flip", "scaling", "model_poisoning", "ipm", "alie", "mimic", "sybil", "nan", "inf"] {
        let (out, _) = run(a, &x, &[2, 3], None, 1);
        assert_eq!(&out.data[..4], &x.data[..4], "{a} changed an honest row");
    }
}

#[test]
fn no_malicious_rows_is_a_no_op() {
    let x = four_rows();
    for a in ["gaussian_noise", "sign_flip", "ipm", "alie", "nan"] {
        let (out, outcome) = run(a, &x, &[], None, 1);
        assert_eq!(out, x);
        assert_eq!(outcome.strength, None);
    }
}

#[test]
fn gaussian_noise_statistics() {
    // Two honest rows of zeros, two malicious rows of 5s, d = 100 000; σ = 2.
    let d = 100_000;
    let mut x = OwnedMatrix::zeros(4, d);
    x.data[2 * d..].iter_mut().for_each(|v| *v = 5.0);
    let (out, outcome) = run("gaussian_noise(sigma=2.0)", &x, &[2, 3], None, 42);
    assert_eq!(outcome.strength, Some(2.0));
    let noise: Vec<Vec<f64>> = (2..4).map(|r| out.row(r).iter().map(|&v| v as f64 - 5.0).collect()).collect();
    for e in &noise {
        // Sample mean: standard error 2/√d ≈ 0.006; sample std: standard error ≈ 0.0045.
        let mean = e.iter().sum::<f64>() / d as f64;
        let sd = (e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64).sqrt();
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((sd - 2.0).abs() < 0.03, "sd {sd}");
    }
    // The two malicious rows draw independent noise (correlation ≈ 0 ± 0.003).
    let corr = noise[0].iter().zip(&noise[1]).map(|(a, b)| a * b).sum::<f64>() / (d as f64 * 4.0);
    assert!(corr.abs() < 0.02, "correlation {corr}");
    // Seeded: the same seed repeats the noise, another seed changes it.
    assert_eq!(run("gaussian_noise(sigma=2.0)", &x, &[2, 3], None, 42).0, out);
    assert_ne!(run("gaussian_noise(sigma=2.0)", &x, &[2, 3], None, 43).0, out);
    // σ = 0 adds nothing.
    assert_eq!(run("gaussian_noise(sigma=0.0)", &x, &[2, 3], None, 42).0, x);
}

#[test]
fn sign_flip_and_scaling() {
    let x = four_rows();
    // sign_flip(scale=2): −2·x. Default scale 1: −x.
    let (out, o) = run("sign_flip(scale=2.0)", &x, &[2, 3], None, 0);
    assert_eq!(&out.data[4..], &[-20.0, -0.0, 4.0, -8.0]);
    assert_eq!(o.strength, Some(2.0));
    assert_eq!(&run("sign_flip", &x, &[2], None, 0).0.data[4..6], &[-10.0, -0.0]);
    // scaling(factor=3): 3·x. Default factor 10.
    assert_eq!(&run("scaling(factor=3.0)", &x, &[2, 3], None, 0).0.data[4..], &[30.0, 0.0, -6.0, 12.0]);
    assert_eq!(&run("scaling", &x, &[3], None, 0).0.data[6..], &[-20.0, 40.0]);
}

#[test]
fn model_poisoning_blends_with_the_boosted_reversal() {
    // n = 4, f = 2, honest mean μ = (2, 10), boost n/f = 2.
    // intensity 0.5 on row (10, 0): 0.5·(10, 0) − 0.5·2·(2, 10) = (3, −10).
    let x = four_rows();
    let (out, o) = run("model_poisoning(intensity=0.5)", &x, &[2, 3], None, 0);
    assert_eq!(out.row(2), &[3.0, -10.0]);
    // Row (−2, 4): 0.5·(−2, 4) − (2, 10) = (−3, −8).
    assert_eq!(out.row(3), &[-3.0, -8.0]);
    assert_eq!(o.strength, Some(0.5));
    // Default intensity 1: −(n/f)·μ = (−4, −20) for both rows.
    let (out, _) = run("model_poisoning", &x, &[2, 3], None, 0);
    assert_eq!(&out.data[4..], &[-4.0, -20.0, -4.0, -20.0]);
    // intensity 0 sends the own update.
    assert_eq!(run("model_poisoning(intensity=0.0)", &x, &[2, 3], None, 0).0, x);
}

#[test]
fn ipm_sends_minus_epsilon_times_the_honest_mean() {
    // μ = (2, 10): ε = 0.5 → (−1, −5); default ε = 0.1 → (−0.2, −1).
    let x = four_rows();
    let (out, o) = run("ipm(epsilon=0.5)", &x, &[2, 3], None, 0);
    assert_eq!(&out.data[4..], &[-1.0, -5.0, -1.0, -5.0]);
    assert_eq!(o.strength, Some(0.5));
    let (out, _) = run("ipm", &x, &[2, 3], None, 0);
    assert_close(&out.data[4..], &[-0.2, -1.0, -0.2, -1.0], 1e-6);
}

#[test]
fn alie_with_explicit_z() {
    // μ − z·σ with μ = (2, 10), σ = (1, 0) (population std): z = 1.5 → (0.5, 10).
    let x = four_rows();
    let (out, o) = run("alie(z=1.5)", &x, &[2, 3], None, 0);
    assert_eq!(&out.data[4..], &[0.5, 10.0, 0.5, 10.0]);
    assert_eq!(o.strength, Some(1.5));
    // A negative z pushes the other way: (2 + 1, 10).
    assert_eq!(&run("alie(z=-1.0)", &x, &[2, 3], None, 0).0.data[4..6], &[3.0, 10.0]);
}

#[test]
fn alie_with_z_from_n_and_f() {
    // n = 5, f = 2: s = ⌊5/2⌋ + 1 − 2 = 1, z = Φ⁻¹(4/5) = 0.841621.
    // Honest rows 1, 2, 3: μ = 2, population σ = √(2/3).
    let x = col(&[1.0, 2.0, 3.0, 50.0, -50.0]);
    let (out, o) = run("alie", &x, &[3, 4], None, 0);
    let z = 0.841_621_233_572_914_4;
    assert!((o.strength.unwrap() - z).abs() < 1e-9, "{:?}", o.strength);
    let want = 2.0 - z * (2.0f64 / 3.0).sqrt();
    assert_close(&out.data[3..], &[want, want], 1e-6);
}

#[test]
fn alie_z_matches_baruch_et_al() {
    // z = Φ⁻¹((n − s)/n) with s = ⌊n/2⌋ + 1 − f (Baruch et al. 2019); Φ⁻¹ from Python's
    // statistics.NormalDist().inv_cdf.
    let cases = [
        (20, 4, 0.385_320_466_407_567_6),  // s = 7,  Φ⁻¹(13/20)
        (10, 3, 0.524_400_512_708_040_7),  // s = 3,  Φ⁻¹(0.7)
        (5, 2, 0.841_621_233_572_914_4),   // s = 1,  Φ⁻¹(0.8)
        (100, 20, 0.495_850_347_347_453),  // s = 31, Φ⁻¹(0.69)
        (50, 24, 1.750_686_071_252_169_5), // s = 2,  Φ⁻¹(0.96)
        (10, 0, -0.253_347_103_135_799_8), // s = 6,  Φ⁻¹(0.4): negative when f = 0
        (4, 4, 0.674_489_750_196_081_7),   // s = 3 − 4 < 1 is kept at 1: Φ⁻¹(3/4)
    ];
    for (n, f, want) in cases {
        let z = alie_z(n, f).unwrap();
        assert!((z - want).abs() < 1e-7, "alie_z({n}, {f}) = {z}, want {want}");
    }
}

#[test]
fn alie_z_is_finite_for_one_client() {
    // n = 1: s = 1, (n − s)/n = 0 → −inf. In a round with a single (malicious) client, σ = 0 and
    // μ − (−inf)·0 = NaN.
    assert!(alie_z(1, 1).unwrap().is_finite(), "{:?}", alie_z(1, 1));
    let (out, _) = run("alie", &col(&[3.0]), &[0], None, 0);
    assert!(out.data[0].is_finite(), "{:?}", out.data);
}

#[test]
fn mimic_copies_one_honest_client() {
    // Rows have client ids 7, 1, 3, 9; rows 0..3 honest, row 3 malicious.
    let x = col(&[70.0, 10.0, 30.0, 90.0]);
    let ids = [7, 1, 3, 9];
    let (out, o) = run("mimic(target=1)", &x, &[3], Some(&ids), 0);
    assert_eq!(out.data, vec![70.0, 10.0, 30.0, 10.0]);
    assert_eq!(o.strength, Some(1.0));
    // A target that is not an honest client of the round (9 is malicious, 5 absent): a seeded
    // random honest client.
    for target in [9, 5] {
        let (out, o) = run(&format!("mimic(target={target})"), &x, &[3], Some(&ids), 0);
        let src = o.strength.unwrap() as usize;
        let row = ids.iter().position(|&i| i == src).unwrap();
        assert!(row < 3 && out.data[3] == x.data[row], "copied {src}: {:?}", out.data);
    }
    // No target: seeded, so repeatable.
    let a = run("mimic", &x, &[3], Some(&ids), 5);
    assert_eq!(a, run("mimic", &x, &[3], Some(&ids), 5));
}

#[test]
fn sybil_nan_and_inf() {
    let x = four_rows();
    // sybil: both malicious rows send the mean of their own updates ((10,0) + (−2,4))/2 = (4, 2).
    assert_eq!(&run("sybil", &x, &[2, 3], None, 0).0.data[4..], &[4.0, 2.0, 4.0, 2.0]);
    let (out, _) = run("nan", &x, &[2, 3], None, 0);
    assert!(out.data[4..].iter().all(|v| v.is_nan()));
    let (out, _) = run("inf", &x, &[3], None, 0);
    assert_eq!(&out.data[4..], &[10.0, 0.0, f32::INFINITY, f32::INFINITY]);
}

#[test]
fn every_client_malicious_uses_their_own_updates_as_reference() {
    // No honest rows: ipm's μ is the mean of the attackers' own rows, (1, 2) → −(1, 2).
    let x = mat(&[&[0.0, 0.0], &[2.0, 4.0]]);
    assert_eq!(run("ipm(epsilon=1.0)", &x, &[0, 1], None, 0).0.data, vec![-1.0, -2.0, -1.0, -2.0]);
}

// ------------------------------------------------------------------ adaptive attacks

fn one_round(strategy: &str, attack: serde_json::Value, x: &OwnedMatrix, malicious: &[usize], seed: u64) -> RoundSummary {
    let mut o = Orchestrator::new(OrchestratorConfig {
        strategy: spec(strategy),
        attacks: vec![parse_attack(&attack).unwrap()],
        num_clients: x.n,
        malicious: Some(malicious.to_vec()),
        num_malicious: 0,
        seed,
        server_dp: None,
    })
    .unwrap();
    o.step(x.view(), None, None, None).unwrap_or_else(|e| panic!("{strategy} / {attack}: {e}")).clone()
}

/// The line search's grid: `steps` log-spaced values in [lower, upper] (same formula as the library).
fn grid(lower: f64, upper: f64, steps: usize) -> Vec<f64> {
    let (ll, lu) = (lower.ln(), upper.ln());
    (0..steps).map(|k| (ll + (lu - ll) * k as f64 / (steps - 1) as f64).exp()).collect()
}

const DEFENCES: &[&str] = &[
    "FedAvg",
    "Krum",
    "MultiKrum",
    "FedMedian",
    "TrimmedMean",
    "Bulyan",
    "GeometricMedian",
    "CenteredClipping(tau=1.0)",
    "NNM + Krum",
    "Bucketing(s=2) + FedMedian",
    "ARC + FedAvg",
];

#[test]
fn adaptive_ipm_is_at_least_as_strong_as_every_fixed_epsilon() {
    // n = 15, f = 3 (rows 12..15), honest updates N(1, 1); f comes from the round (Bulyan needs 15).
    let x = gaussian(15, 40, 1.0, 1.0, 3);
    let mal = [12, 13, 14];
    for def in DEFENCES {
        let adaptive = one_round(def, json!("adaptive_ipm(lower=0.1, upper=100.0, steps=4)"), &x, &mal, 9);
        let chosen = adaptive.attacks[0].strength.unwrap();
        let mut best = f64::NEG_INFINITY;
        // The grid {0.1, 1, 10, 100} and the default ε = 0.1.
        for eps in grid(0.1, 100.0, 4).into_iter().chain([0.1]) {
            let fixed = one_round(def, json!({"type": "ipm", "epsilon": eps}), &x, &mal, 9);
            assert!(
                adaptive.attack_distance >= fixed.attack_distance,
                "{def}: adaptive (ε = {chosen}) {} < ipm(ε = {eps}) {}",
                adaptive.attack_distance,
                fixed.attack_distance
            );
            best = best.max(fixed.attack_distance);
        }
        // The line search replays the round's aggregation exactly: it reaches the best candidate.
        assert_eq!(adaptive.attack_distance, best, "{def}");
    }
}

#[test]
fn adaptive_alie_is_at_least_as_strong_as_every_fixed_z_on_its_grid() {
    let x = gaussian(15, 40, 1.0, 1.0, 4);
    let mal = [0, 5, 10];
    for def in DEFENCES {
        let adaptive = one_round(def, json!("adaptive_alie(lower=0.1, upper=10.0, steps=5)"), &x, &mal, 2);
        let chosen = adaptive.attacks[0].strength.unwrap();
        assert!(grid(0.1, 10.0, 5).contains(&chosen), "{def}: chose {chosen}");
        for z in grid(0.1, 10.0, 5) {
            let fixed = one_round(def, json!({"type": "alie", "z": z}), &x, &mal, 2);
            assert!(
                adaptive.attack_distance >= fixed.attack_distance,
                "{def}: adaptive (z = {chosen}) {} < alie(z = {z}) {}",
                adaptive.attack_distance,
                fixed.attack_distance
            );
        }
    }
}

/// The global model after one round of `strategy` under `attack` (it starts at zero).
fn global_after(strategy: &str, attacks: serde_json::Value, x: &OwnedMatrix, malicious: &[usize], seed: u64) -> (Vec<f32>, RoundSummary) {
    let attacks = match attacks {
        serde_json::Value::Array(items) => items.iter().map(|a| parse_attack(a).unwrap()).collect(),
        one => vec![parse_attack(&one).unwrap()],
    };
    let mut o = Orchestrator::new(OrchestratorConfig {
        strategy: spec(strategy),
        attacks,
        num_clients: x.n,
        malicious: Some(malicious.to_vec()),
        num_malicious: 0,
        seed,
        server_dp: None,
    })
    .unwrap();
    let summary = o.step(x.view(), None, None, None).unwrap_or_else(|e| panic!("{strategy}: {e}")).clone();
    (o.global_model().unwrap().to_vec(), summary)
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2)).sum()
}

/// Honest-looking updates whose coordinates differ in scale by four orders of magnitude (as a
/// network's layers do): coordinate j is N(m_j, s_j²) with m_j, s_j = ±10^U(−2, 2).
fn layered(n: usize, d: usize, seed: u64) -> OwnedMatrix {
    let scales = gaussian(2, d, 0.0, 1.0, seed ^ 0xACE);
    let noise = gaussian(n, d, 0.0, 1.0, seed);
    let scale = |v: f32| 10f32.powf((v * 1.5).clamp(-2.0, 2.0));
    let data = (0..n * d)
        .map(|k| {
            let j = k % d;
            let (m, s) = (scales.data[j], scales.data[d + j]);
            m.signum() * scale(m) + scale(s) * noise.data[k]
        })
        .collect();
    OwnedMatrix { data, n, d }
}

#[test]
fn adaptive_attacks_aim_at_the_model_the_server_optimiser_makes_and_replay_bucketing_exactly() {
    // The adaptive attack's pick is the strength whose real round moves the global model furthest
    // from where the honest mean would move it: through the server optimiser (FedAdam's
    // per-coordinate normalisation ranks the candidates differently from the aggregate's
    // distance when a selection rule trades a few large coordinates for many small ones), and
    // with bucketing's shuffle replayed exactly after an attack that drew random numbers first.
    let mal = [2, 7, 12];
    let honest: Vec<usize> = (0..15).filter(|r| !mal.contains(r)).collect();
    for seed in 0..12 {
        let x = layered(15, 30, seed);
        let honest_rows: Vec<Vec<f32>> = honest.iter().map(|&r| x.row(r).to_vec()).collect();
        let honest_only = OwnedMatrix::from_rows(&honest_rows).unwrap();
        for (defence, server) in [
            ("Krum + FedAdam(tau=0.01)", "FedAdam(tau=0.01)"),
            ("MultiKrum + FedYogi(tau=0.01)", "FedYogi(tau=0.01)"),
            ("GeometricMedian + FedAdagrad(tau=0.01)", "FedAdagrad(tau=0.01)"),
            ("Bucketing(s=3) + FedMedian + FedAvgM(server_lr=1.0, momentum=0.9)", "FedAvgM(server_lr=1.0, momentum=0.9)"),
        ] {
            // where the honest mean moves the model: the same server optimiser on the honest rows alone
            let (reference, _) = global_after(server, json!([]), &honest_only, &[], 3);
            for (adaptive, fixed, key, lo, hi) in [
                ("adaptive_ipm(lower=0.1, upper=100.0, steps=5)", "ipm", "epsilon", 0.1, 100.0),
                ("adaptive_alie(lower=0.1, upper=10.0, steps=5)", "alie", "z", 0.1, 10.0),
            ] {
                let before = json!({"type": "gaussian_noise", "sigma": 0.01});
                let (w, summary) = global_after(defence, json!([before, adaptive]), &x, &mal, seed);
                let chosen = summary.attacks[1].strength.unwrap();
                let damage = sq_dist(&w, &reference);
                for s in grid(lo, hi, 5) {
                    let (wf, _) = global_after(defence, json!([before, {"type": fixed, key: s}]), &x, &mal, seed);
                    let other = sq_dist(&wf, &reference);
                    assert!(
                        damage >= other,
                        "seed {seed}, {defence} / {adaptive}: chose {chosen} ({damage}), but {s} moves the model further ({other})"
                    );
                }
            }
        }
    }
}

#[test]
fn agr_tailored_scans_then_refines_the_best_gamma() {
    // Against FedAvg the damage grows with γ: the top of the scan, 2·γ_init, with nothing above to refine.
    let x = four_rows();
    let (out, outcome) = run("agr_tailored(perturbation=std, gamma_init=2.0, steps=3)", &x, &[2, 3], None, 0);
    assert_eq!(outcome.name, "agr_tailored");
    assert_eq!(outcome.strength, Some(4.0));
    // honest mean (2, 10); unbiased std of (1, 3) and (10, 10): (√2, 0); μ − 4·p
    let want = [2.0 - 4.0 * 2f64.sqrt(), 10.0];
    assert_close(&out.data[4..6], &want, 1e-6);
    assert_close(&out.data[6..8], &want, 1e-6);
    assert_eq!(&out.data[..4], &x.data[..4]);
    // Against a defence that drops the attackers beyond γ = 3 (|μ − γ·p| ≥ 3·√2 in the first
    // coordinate), the damage peaks just below 3: a scan of {1/32, 4} (4 is rejected) and 12
    // bisections between them approach 3 from below.
    let edge = |m: &OwnedMatrix| {
        let keep: Vec<Vec<f32>> = (0..m.n).map(|r| m.row(r).to_vec()).filter(|r| (r[0] - 2.0).abs() < 3.0 * 2f32.sqrt()).collect();
        let mean: Vec<f32> = (0..m.d).map(|j| keep.iter().map(|r| r[j]).sum::<f32>() / keep.len() as f32).collect();
        OwnedMatrix::from_rows(&[mean])
    };
    let round = AttackRound { malicious: &[2, 3], client_ids: &[0, 1, 2, 3], defence: Defence::Outputs(&edge) };
    let tailored = attack_of(json!("agr_tailored(perturbation=std, gamma_init=2.0, steps=14)"));
    let (_, outcomes) = attack_round(x.view(), &[tailored], &round, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let gamma = outcomes[0].strength.unwrap();
    assert!((2.99..3.0).contains(&gamma), "γ = {gamma}");
    // the fewest trials: the scan's two ends
    let (_, outcome) = run("agr_tailored(perturbation=std, gamma_init=2.0, steps=2)", &x, &[2, 3], None, 0);
    assert_eq!(outcome.strength, Some(4.0));
}

#[test]
fn agr_tailored_gets_krum_to_pick_a_malicious_update_and_beats_the_agnostic_attacks() {
    // n = 20, f = 4, honest N(1, 1) in 50 dimensions: Krum picks an attacker's update and the
    // aggregate moves further than under Min-Max or Min-Sum with the same direction.
    let x = gaussian(20, 50, 1.0, 1.0, 11);
    let mal = [0, 5, 10, 15];
    for p in ["unit_vec", "std", "sign"] {
        let tailored = one_round("Krum", json!({"type": "agr_tailored", "perturbation": p}), &x, &mal, 1);
        assert_eq!(tailored.selected_malicious, Some(1), "{p}");
        for agnostic in ["min_max", "min_sum"] {
            let other = one_round("Krum", json!({"type": agnostic, "perturbation": p}), &x, &mal, 1);
            let (t, o) = (tailored.attack_distance, other.attack_distance);
            assert!(t > o, "{p}: {agnostic} moved Krum's aggregate {o} from the honest mean, the tailored attack only {t}");
        }
    }
}

#[test]
fn adaptive_attacks_beat_the_default_strengths() {
    // With the default grids (12 steps), compare against ipm's ε = 0.1 and ALIE's z = Φ⁻¹ formula
    // (n = 15, f = 3 → s = 5, z = Φ⁻¹(2/3) ≈ 0.43, which is not on the grid).
    let x = gaussian(15, 40, 1.0, 1.0, 5);
    let mal = [1, 2, 3];
    for def in DEFENCES {
        let ai = one_round(def, json!("adaptive_ipm"), &x, &mal, 1).attack_distance;
        let fi = one_round(def, json!("ipm"), &x, &mal, 1).attack_distance;
        assert!(ai >= fi, "{def}: adaptive_ipm {ai} < ipm {fi}");
        let aa = one_round(def, json!("adaptive_alie"), &x, &mal, 1).attack_distance;
        let fa = one_round(def, json!("alie"), &x, &mal, 1).attack_distance;
        assert!(aa >= fa * (1.0 - 1e-6), "{def}: adaptive_alie {aa} < alie {fa}");
    }
}

#[test]
fn adaptive_attacks_need_a_valid_range_and_a_defence_output_of_the_right_width() {
    let c = parse_attack(&json!("adaptive_alie(lower=2.0, upper=1.0)")).unwrap();
    let e = UpdateAttack::from_config(&c).unwrap_err().to_string();
    assert_eq!(e, "Expected less than upper = 1 for adaptive_alie.lower, got 2");
    let x = four_rows();
    let narrow = |_: &OwnedMatrix| Ok(OwnedMatrix::zeros(1, 1));
    let round = AttackRound { malicious: &[2, 3], client_ids: &[0, 1, 2, 3], defence: Defence::Outputs(&narrow) };
    let e = attack_round(x.view(), &[attack_of(json!("adaptive_ipm"))], &round, &mut ChaCha8Rng::seed_from_u64(0)).unwrap_err();
    assert_eq!(e.to_string(), "Expected at least one row of 2 values for the defence's output, got 1 × 1");
}

// ------------------------------------------------------------------ registry

#[test]
fn data_attacks_are_registered_with_their_parameters() {
    let lf = lookup("label_flipping", "attack", Kind::is_attack).unwrap();
    assert_eq!(lf.kind, Kind::DataAttack);
    assert!(lf.params.is_empty());
    let t = lookup("targeted_label_flipping", "attack", Kind::is_attack).unwrap();
    assert_eq!(t.kind, Kind::DataAttack);
    let names: Vec<&str> = t.params.iter().map(|p| p.name).collect();
    assert_eq!(names, ["source", "target"]);
    for p in t.params {
        assert_eq!(p.ty, ParamType::Int);
        assert!(matches!(p.default, ParamDefault::Required), "{} should be required", p.name);
        assert!(p.check("targeted_label_flipping", &json!(-1)).is_err());
    }
    // Parsed as attacks, but they have no update-attack implementation (the trainer runs them).
    let c = parse_attack(&json!({"type": "targeted_label_flipping", "source": 3, "target": 5})).unwrap();
    assert_eq!(c.to_string(), "targeted_label_flipping(source=3, target=5)");
    assert_eq!(UpdateAttack::from_config(&c).unwrap(), None);
    assert_eq!(UpdateAttack::from_config(&parse_attack(&json!("label_flipping")).unwrap()).unwrap(), None);
    let e = parse_attack(&json!("targeted_label_flipping(source=3)")).unwrap_err().to_string();
    assert_contains(&e, "targeted_label_flipping requires the parameter 'target'");
    // And they appear in the exported registry.
    let j = registry_json();
    let names: Vec<&str> = j.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"label_flipping") && names.contains(&"targeted_label_flipping"));
}

#[test]
fn every_registered_update_attack_is_implemented_under_its_name() {
    for c in REGISTRY.iter().filter(|c| c.kind == Kind::UpdateAttack) {
        let a = attack_of(json!(c.name));
        assert_eq!(a.name(), c.name);
    }
}

/// Honest rows (0, 0), (4, 0), (2, 1), (2, −1): mean μ = (2, 0); rows 4 and 5 are malicious.
/// Squared distances between honest rows: 16 between the first two, 5 from either to the
/// others, 4 between the last two; per row the sums are 26, 26, 14, 14.
fn min_max_rows() -> OwnedMatrix {
    mat(&[&[0.0, 0.0], &[4.0, 0.0], &[2.0, 1.0], &[2.0, -1.0], &[9.0, 9.0], &[-9.0, 9.0]])
}

#[test]
fn min_max_and_min_sum_find_the_largest_gamma_the_bound_allows() {
    let x = min_max_rows();
    // unit vector p = (1, 0): the malicious row (2 − γ, 0).
    // Min-Max: its farthest honest row is (4, 0), (2 + γ)² ≤ 16 ⇒ γ = 2: (0, 0).
    let (out, outcome) = run("min_max", &x, &[4, 5], None, 0);
    let gamma = outcome.strength.unwrap();
    assert!((gamma - 2.0).abs() < 2e-5, "min_max γ = {gamma}"); // the search stops within 10·1e-6 of it
    assert_close(out.row(4), &[2.0 - gamma, 0.0], 1e-6);
    assert_eq!(out.row(4), out.row(5));
    // Min-Sum: (2 − γ)² + (2 + γ)² + 2(γ² + 1) = 10 + 4γ² ≤ 14 ⇒ γ = 1: (1, 0).
    let (out, outcome) = run("min_sum", &x, &[4, 5], None, 0);
    let gamma = outcome.strength.unwrap();
    assert!((gamma - 1.0).abs() < 2e-5, "min_sum γ = {gamma}");
    assert_close(out.row(4), &[2.0 - gamma, 0.0], 1e-6);
    // sign p = (1, 0) here too (μ's second coordinate is 0, its sign 0): the same γ.
    assert!((run("min_max(perturbation=sign)", &x, &[4, 5], None, 0).1.strength.unwrap() - 2.0).abs() < 2e-5);
    // std p = (√(8/3), √(2/3)) (unbiased, as the authors' torch.std): the malicious row
    // (2 − 1.633γ, −0.8165γ); Min-Max's farthest honest row is (4, 0) or (2, 1):
    // (2 + 1.633γ)² + (0.8165γ)² = 4 + 6.532γ + 3.3333γ² ≤ 16 ⇒ γ = 1.0766.
    let (_, outcome) = run("min_max(perturbation=std)", &x, &[4, 5], None, 0);
    let (a, b) = (10.0f64 / 3.0, 4.0 * (8.0f64 / 3.0).sqrt());
    let want = (-b + (b * b + 4.0 * a * 12.0).sqrt()) / (2.0 * a);
    assert!((outcome.strength.unwrap() - want).abs() < 2e-5, "{:?} vs {want}", outcome.strength);
}

#[test]
fn min_max_with_nothing_to_hide_among_sends_the_mean() {
    // One honest row: no honest distance to stay within, γ = 0, the row itself.
    let x = mat(&[&[1.0, 2.0], &[7.0, 7.0]]);
    let (out, outcome) = run("min_max(gamma_init=3.0)", &x, &[1], None, 0);
    assert_eq!(outcome.strength, Some(0.0));
    assert_eq!(out.row(1), &[1.0, 2.0]);
}

#[test]
fn fang_trim_goes_beyond_the_honest_extreme_opposite_to_the_mean() {
    // Honest (1, −2), (3, −4), (2, −3): sums (6, −9), s = (+, −). Coordinate 0: beyond the
    // minimum 1 > 0, so 1/r ∈ [0.5, 1]; coordinate 1: beyond the maximum −2 < 0, so −2/r ∈ [−2, −1].
    let x = mat(&[&[1.0, -2.0], &[3.0, -4.0], &[2.0, -3.0], &[0.0, 0.0], &[0.0, 0.0]]);
    let (out, outcome) = run("fang_trim", &x, &[3, 4], None, 7);
    assert_eq!(outcome.strength, Some(2.0));
    for r in [3, 4] {
        let v = out.row(r);
        assert!((0.5..=1.0).contains(&v[0]) && (-2.0..=-1.0).contains(&v[1]), "row {r}: {v:?}");
    }
    assert_ne!(out.row(3), out.row(4)); // each client draws its own factors
    assert_eq!(run("fang_trim", &x, &[3, 4], None, 7).0, out); // seeded
                                                               // b = 4 widens the interval to [0.25, 1] and [−2, −0.5]; the median now sits below the honest
                                                               // values' in coordinate 0 and above in coordinate 1
    let (out, _) = run("fang_trim(b=4)", &x, &[3, 4], None, 7);
    assert!((0.25..=1.0).contains(&out.row(3)[0]) && (-2.0..=-0.5).contains(&out.row(3)[1]));
}

#[test]
fn fang_krum_halves_lambda_from_the_papers_bound_until_krum_picks_a_malicious_update() {
    // Five honest updates spread around μ = (0.8, 0.8) and two malicious rows: s = (1, 1). (With
    // honest updates tightly packed far from 0, no λ makes Krum pick −λ·s and λ ends at the
    // threshold: the attack needs the honest spread to be comparable to their norm.)
    let honest: [[f32; 2]; 5] = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0], [1.0, 1.0]];
    let rows: Vec<&[f32]> = honest.iter().map(|r| &r[..]).chain([&[0.0f32, 0.0][..], &[0.0, 0.0][..]]).collect();
    let x = mat(&rows);
    let (out, outcome) = run("fang_krum", &x, &[5, 6], None, 0);
    let lambda = outcome.strength.unwrap();
    assert_eq!(out.row(5), out.row(6));
    assert_close(out.row(5), &[-lambda, -lambda], 1e-6);
    // The paper's bound: n = 7, c = 2, d = 2; Γ(i) = the n − c − 2 = 3 honest updates nearest to u_i.
    let dist = |a: &[f32; 2], b: &[f32; 2]| (((a[0] - b[0]) as f64).powi(2) + ((a[1] - b[1]) as f64).powi(2)).sqrt();
    let closest = honest
        .iter()
        .map(|a| {
            let mut ds: Vec<f64> = honest.iter().filter(|b| *b != a).map(|b| dist(a, b)).collect();
            ds.sort_by(f64::total_cmp);
            ds[..3].iter().sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    let farthest = honest.iter().map(|a| dist(a, &[0.0, 0.0])).fold(0.0, f64::max);
    let bound = closest / ((7.0 - 4.0 - 1.0) * 2f64.sqrt()) + farthest / 2f64.sqrt();
    let halvings = (bound / lambda).log2();
    assert!((halvings - halvings.round()).abs() < 1e-9, "λ = bound / 2^k: {bound} / {lambda}");
    // Krum (f = 2) picks a malicious row at λ, not at 2λ (when 2λ is within the bound)
    let picks = |l: f64| {
        let mut y = x.clone();
        for r in [5, 6] {
            y.row_mut(r).copy_from_slice(&[-l as f32, -l as f32]);
        }
        agg(&y, "Krum(f=2)") == vec![-l as f32, -l as f32]
    };
    assert!(picks(lambda));
    if halvings >= 1.0 {
        assert!(!picks(2.0 * lambda));
    }
}
