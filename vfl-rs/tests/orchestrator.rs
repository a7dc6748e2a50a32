//! The round orchestrator: malicious clients, attacks, f from the round, server step, history.

mod common;

use common::*;
use serde_json::json;
use vfl::orchestrator::{Orchestrator, OrchestratorConfig, RoundSummary};
use vfl::{parse_attack, OwnedMatrix};

fn orch(
    strategy: &str,
    attacks: &[&str],
    num_clients: usize,
    malicious: Option<Vec<usize>>,
    num_malicious: usize,
    seed: u64,
) -> Orchestrator {
    Orchestrator::new(OrchestratorConfig {
        strategy: spec(strategy),
        attacks: attacks.iter().map(|a| parse_attack(&json!(a)).unwrap()).collect(),
        num_clients,
        malicious,
        num_malicious,
        seed,
        server_dp: None,
    })
    .unwrap()
}

fn new_err(num_clients: usize, malicious: Option<Vec<usize>>, num_malicious: usize, attacks: Vec<vfl::ComponentConfig>) -> String {
    let cfg = OrchestratorConfig { strategy: spec("FedAvg"), attacks, num_clients, malicious, num_malicious, seed: 0, server_dp: None };
    match Orchestrator::new(cfg) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn step(o: &mut Orchestrator, x: &OwnedMatrix) -> RoundSummary {
    o.step(x.view(), None, None, None).unwrap().clone()
}

#[test]
fn malicious_clients_are_drawn_from_the_seed() {
    let a = orch("FedAvg", &[], 20, None, 5, 11).malicious_clients();
    assert_eq!(a.len(), 5);
    assert!(a.iter().all(|&i| i < 20) && a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
    assert_eq!(orch("FedAvg", &[], 20, None, 5, 11).malicious_clients(), a);
    let others: Vec<Vec<usize>> = (12..17).map(|s| orch("FedAvg", &[], 20, None, 5, s).malicious_clients()).collect();
    assert!(others.iter().any(|o| *o != a), "five other seeds all drew {a:?}");
    // An explicit list wins over num_malicious.
    assert_eq!(orch("FedAvg", &[], 20, Some(vec![3, 1]), 5, 11).malicious_clients(), vec![1, 3]);
}

#[test]
fn a_sign_flip_round_by_hand() {
    // Clients 0..4 send 1, 2, 3, 4; client 3 is malicious and sends −4 instead.
    // FedAvg = (1 + 2 + 3 − 4)/4 = 0.5; honest mean = 2; attack distance 1.5.
    let mut o = orch("FedAvg", &["sign_flip"], 4, Some(vec![3]), 0, 0);
    let s = step(&mut o, &col(&[1.0, 2.0, 3.0, 4.0]));
    assert_eq!((s.round, s.num_clients, s.num_malicious), (1, 4, 1));
    assert_eq!(s.malicious_clients, vec![3]);
    assert_eq!(s.attacks.len(), 1);
    assert_eq!((s.attacks[0].name, s.attacks[0].strength), ("sign_flip", Some(1.0)));
    assert!((s.attack_distance - 1.5).abs() < 1e-6);
    assert!((s.honest_mean_norm - 2.0).abs() < 1e-6);
    assert!((s.aggregate_norm - 0.5).abs() < 1e-6);
    assert!(s.aggregate_finite);
    assert!(s.kernel_ms >= 0.0 && s.global_loss.is_nan() && s.accuracy.is_nan());
    // The global model starts at 0 and moves by the aggregate.
    assert_eq!(o.global_model().unwrap(), &[0.5]);
}

#[test]
fn client_ids_select_who_is_in_the_round() {
    // Federation of 10, malicious {2, 7}; this round samples clients 7, 0, 5: one malicious.
    let mut o = orch("FedAvg", &["ipm(epsilon=1.0)"], 10, Some(vec![2, 7]), 0, 0);
    let x = col(&[100.0, 2.0, 4.0]);
    let s = o.step(x.view(), None, Some(&[7, 0, 5]), None).unwrap().clone();
    assert_eq!((s.num_malicious, s.malicious_clients.clone()), (1, vec![7]));
    // ipm(ε = 1): row 0 becomes −mean(2, 4) = −3 → FedAvg (−3 + 2 + 4)/3 = 1; honest mean 3.
    assert!((s.attack_distance - 2.0).abs() < 1e-6, "{}", s.attack_distance);
    // A round with no malicious client runs no attack.
    let s = o.step(x.view(), None, Some(&[1, 3, 4]), None).unwrap().clone();
    assert_eq!(s.num_malicious, 0);
    assert!(s.attacks.is_empty());
    assert_eq!(s.attack_distance, 0.0);
}

#[test]
fn f_defaults_to_the_number_of_malicious_clients_in_the_round() {
    // Krum without f: with 2 malicious clients among 7 it runs as Krum(f=2); among 6 it needs n > 6.
    let x = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut o = orch("Krum", &[], 10, Some(vec![0, 1]), 0, 0);
    assert!(o.step(x.view(), None, None, None).is_ok());
    let y = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let e = o.step(y.view(), None, None, None).unwrap_err().to_string();
    assert_eq!(e, "Expected n > 2f + 2 = 6 for Krum with f = 2, got n = 6");
    // A failed round is not recorded.
    assert_eq!(o.history().len(), 1);
    // TrimmedMean without f over the same round trims 2 per side: mean of {2, 3, 4} = 3.
    let mut o = orch("TrimmedMean", &[], 10, Some(vec![0, 1]), 0, 0);
    step(&mut o, &col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_eq!(o.global_model().unwrap(), &[3.0]);
}

#[test]
fn server_optimiser_moves_the_global_model_across_rounds() {
    // FedAvgM(server_lr=1, momentum=0.5): Δ = 2 then 2 → v = 2, 3 → w = 2, 5.
    let mut o = orch("FedAvgM(server_lr=1.0, momentum=0.5)", &[], 3, None, 0, 0);
    let x = col(&[1.0, 2.0, 3.0]);
    step(&mut o, &x);
    assert_eq!(o.global_model().unwrap(), &[2.0]);
    step(&mut o, &x);
    assert_eq!(o.global_model().unwrap(), &[5.0]);
    // A model set by the caller is the starting point.
    let mut o = orch("FedAvg", &[], 3, None, 0, 0);
    o.set_global_model(vec![10.0]).unwrap();
    step(&mut o, &x);
    assert_eq!(o.global_model().unwrap(), &[12.0]);
    let e = o.step(mat(&[&[1.0, 2.0]]).view(), None, Some(&[0]), None).unwrap_err().to_string();
    assert_eq!(e, "Expected 1 parameters (the global model) for the update size, got 2");
}

#[test]
fn centered_clipping_state_persists_across_orchestrator_rounds() {
    // One client at (3, 4), τ = 1: the aggregate walks 1 per round along (0.6, 0.8) and the plain
    // server step adds it: w = (0.6, 0.8), then + (1.2, 1.6) = (1.8, 2.4).
    let mut o = orch("CenteredClipping(tau=1.0)", &[], 1, None, 0, 0);
    let x = mat(&[&[3.0, 4.0]]);
    step(&mut o, &x);
    step(&mut o, &x);
    assert_close(o.global_model().unwrap(), &[1.8, 2.4], 1e-5);
}

#[test]
fn a_nan_attack_poisons_fedavg_but_not_the_median() {
    let x = col(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let mut o = orch("FedAvg", &["nan"], 5, Some(vec![4]), 0, 0);
    let s = step(&mut o, &x);
    assert!(!s.aggregate_finite && s.attack_distance.is_nan());
    assert!(o.global_model().unwrap()[0].is_nan());
    let mut o = orch("FedMedian", &["nan"], 5, Some(vec![4]), 0, 0);
    let s = step(&mut o, &x);
    // Median of {1, 2, 3, 4, NaN} = 3 (NaN sorts last); honest mean 2.5.
    assert!(s.aggregate_finite);
    assert_eq!(o.global_model().unwrap(), &[3.0]);
    assert!((s.attack_distance - 0.5).abs() < 1e-6);
}

#[test]
fn runs_are_reproducible_and_rounds_use_fresh_randomness() {
    let x = gaussian(6, 200, 0.0, 1.0, 1);
    let run = || {
        let mut o = orch("Bucketing(s=2) + FedMedian", &["gaussian_noise(sigma=3.0)"], 6, None, 2, 99);
        let a = step(&mut o, &x);
        let b = step(&mut o, &x);
        (o.global_model().unwrap().to_vec(), a.attack_distance, b.attack_distance)
    };
    let (w, d1, d2) = run();
    assert_eq!(run(), (w.clone(), d1, d2));
    // Round 2 draws new noise and a new shuffle for the same input.
    assert_ne!(d1, d2);
}

#[test]
fn data_attacks_leave_the_updates_alone() {
    // The trainer runs label flipping; the orchestrator records it but changes no row.
    let mut o = orch("FedAvg", &["label_flipping", "targeted_label_flipping(source=1, target=7)"], 3, Some(vec![0]), 0, 0);
    assert_eq!(o.attack_configs().len(), 2);
    let s = step(&mut o, &col(&[3.0, 1.0, 2.0]));
    assert!(s.attacks.is_empty());
    assert_eq!(o.global_model().unwrap(), &[2.0]);
}

#[test]
fn metrics_are_reported_by_the_caller() {
    let mut o = orch("FedAvg", &[], 2, None, 0, 0);
    assert_eq!(o.report_metrics(1.0, None, None).unwrap_err().to_string(), "Expected a finished round to report metrics for, got none yet");
    let x = col(&[1.0, 2.0]);
    step(&mut o, &x);
    step(&mut o, &x);
    // Not yet reported: null in JSON.
    let j: serde_json::Value = serde_json::from_str(&o.history_json()).unwrap();
    assert!(j[0]["global_loss"].is_null() && j[1]["accuracy"].is_null());
    o.report_metrics(0.5, Some(0.9), Some(1)).unwrap();
    o.report_metrics(0.25, None, None).unwrap();
    let h = o.history();
    assert_eq!((h[0].global_loss, h[0].accuracy), (0.5, 0.9));
    assert_eq!(h[1].global_loss, 0.25);
    assert!(h[1].accuracy.is_nan());
    assert_eq!(o.report_metrics(1.0, None, Some(3)).unwrap_err().to_string(), "Expected 1..=2 for round, got 3");
    assert_eq!(o.report_metrics(1.0, None, Some(0)).unwrap_err().to_string(), "Expected 1..=2 for round, got 0");
    let j: serde_json::Value = serde_json::from_str(&o.history_json()).unwrap();
    assert_eq!(j[0]["global_loss"], json!(0.5));
    assert_eq!(j[1]["round"], json!(2));
}

#[test]
fn configuration_and_step_errors() {
    assert_eq!(new_err(0, None, 0, vec![]), "Expected at least 1 for num_clients, got 0");
    assert_eq!(new_err(5, Some(vec![1, 5]), 0, vec![]), "Expected ids below num_clients = 5 for malicious client ids, got 5");
    assert_eq!(new_err(5, None, 6, vec![]), "Expected at most num_clients = 5 for num_malicious, got 6");
    let bad = spec("Krum(f=1)").rule;
    assert_eq!(new_err(5, None, 0, vec![bad]), "Expected an attack, got the Rule Krum");
    let bad_range = parse_attack(&json!("adaptive_ipm(lower=3.0, upper=2.0)")).unwrap();
    assert_eq!(new_err(5, None, 1, vec![bad_range]), "Expected less than upper = 2 for adaptive_ipm.lower, got 3");

    let mut o = orch("FedAvg", &[], 5, None, 0, 0);
    let x = col(&[1.0, 2.0]);
    let e = |o: &mut Orchestrator, ids: &[usize]| o.step(x.view(), None, Some(ids), None).unwrap_err().to_string();
    assert_eq!(e(&mut o, &[0]), "Expected 2 ids (one per update row) for client_ids, got 1");
    assert_eq!(e(&mut o, &[1, 1]), "Expected distinct client ids, got 1 twice");
    assert_eq!(e(&mut o, &[0, 5]), "Expected ids below num_clients = 5 for client ids, got 5");
    assert_eq!(
        o.step(x.view(), Some(&[1.0]), None, None).unwrap_err().to_string(),
        "Expected 2 values (one per update row) for weights, got 1 values"
    );
    assert_eq!(o.set_global_model(vec![]).unwrap_err().to_string(), "Expected at least one parameter for the global model, got 0");
    assert!(o.history().is_empty());
}

/// A FedAvg round computes the aggregate, the honest mean and the norms in one pass; each must be
/// what the separate computations give: the strategy's own aggregate (to the bit), the honest
/// rows' mean and each sent row's norm (float64 references over float32 data: within 1e-6 of
/// their magnitude), the attack distance between the two. Also when every client is malicious.
#[test]
fn a_fedavg_round_gets_its_statistics_from_the_same_pass() {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use vfl::{NonFinite, Strategy};

    let x = gaussian(12, 5000, 0.2, 1.0, 3);
    let w: Vec<f64> = (0..12).map(|i| 10.0 + i as f64).collect();
    for (malicious, attack) in [(vec![2, 5, 7], "sign_flip"), ((0..12).collect::<Vec<_>>(), "scaling")] {
        let mut o = orch("FedAvg", &[attack], 12, Some(malicious.clone()), 0, 0);
        let s = o.step(x.view(), Some(&w), None, None).unwrap().clone();
        let mut sent = x.clone();
        let factor = if attack == "sign_flip" { -1.0 } else { 10.0 }; // the attacks' defaults
        malicious.iter().for_each(|&r| sent.row_mut(r).iter_mut().for_each(|v| *v *= factor));
        let want = Strategy::new(spec("FedAvg"))
            .unwrap()
            .aggregate(sent.view(), Some(&w), None, &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Reject)
            .unwrap();
        assert_eq!(bits(o.global_model().unwrap()), bits(&want), "{attack}");
        let honest: Vec<usize> = (0..12).filter(|r| !malicious.contains(r) || malicious.len() == 12).collect();
        let mean: Vec<f64> = (0..5000).map(|j| honest.iter().map(|&r| x.row(r)[j] as f64).sum::<f64>() / honest.len() as f64).collect();
        let dist = want.iter().zip(&mean).map(|(a, b)| (*a as f64 - b).powi(2)).sum::<f64>().sqrt();
        assert!((s.attack_distance - dist).abs() <= 1e-6 * dist, "{attack}: {} vs {dist}", s.attack_distance);
        for r in 0..12 {
            let norm = sent.row(r).iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            assert!((s.update_norms[r] - norm).abs() <= 1e-6 * norm, "{attack}, row {r}");
        }
        assert_eq!(s.client_shares.as_ref().unwrap().len(), 12);
    }
}

/// The round's bookkeeping (every update's norm, the honest clients' mean) is the same whether
/// it comes from its own pass, from the plain mean's pass, or from the coordinate-wise kernel's
/// read of the updates (above the sorting networks' 128 rows): checked against float64 by hand.
/// The norms' float32 lanes sum at most a few hundred squares each: relative error well below
/// 1e-5; the honest mean is a float64 sum rounded once to float32.
#[test]
fn every_path_keeps_the_same_books() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let d = 700;
    for n in [20usize, 150] {
        let rows: Vec<Vec<f32>> = (0..n).map(|i| (0..d).map(|_| rng.random::<f32>() * (1 + i % 7) as f32 - 0.5).collect()).collect();
        let x = OwnedMatrix::from_rows(&rows).unwrap();
        let malicious: Vec<usize> = (0..n).step_by(5).collect();
        let honest: Vec<usize> = (0..n).filter(|i| i % 5 != 0).collect();
        let mean: Vec<f64> = (0..d).map(|j| honest.iter().map(|&i| rows[i][j] as f64).sum::<f64>() / honest.len() as f64).collect();
        for strategy in ["FedAvg", "FedMedian", "TrimmedMean(f=3)", "Krum(f=3)"] {
            for malicious in [vec![], malicious.clone()] {
                let all_honest = malicious.is_empty();
                let mut o = orch(strategy, &[], n, Some(malicious), 0, 0);
                let s = step(&mut o, &x);
                for (i, row) in rows.iter().enumerate() {
                    let want = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                    assert!(
                        (s.update_norms[i] - want).abs() <= 1e-5 * want,
                        "{strategy}, n = {n}, row {i}: {} vs {want}",
                        s.update_norms[i]
                    );
                }
                let honest_mean: Vec<f64> = if all_honest {
                    (0..d).map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / n as f64).collect()
                } else {
                    mean.clone()
                };
                let want = honest_mean.iter().map(|v| v * v).sum::<f64>().sqrt();
                assert!((s.honest_mean_norm - want).abs() <= 1e-5 * want, "{strategy}, n = {n}: {} vs {want}", s.honest_mean_norm);
            }
        }
    }
}

fn private(strategy: &str, attacks: &[&str], num_clients: usize, malicious: Vec<usize>, clip: f64, z: f64, seed: u64) -> Orchestrator {
    Orchestrator::new(OrchestratorConfig {
        strategy: spec(strategy),
        attacks: attacks.iter().map(|a| parse_attack(&json!(a)).unwrap()).collect(),
        num_clients,
        malicious: Some(malicious),
        num_malicious: 0,
        seed,
        server_dp: Some(vfl::orchestrator::ServerDp { clip, noise_multiplier: z }),
    })
    .unwrap()
}

/// Rows of norm `scale · (i + 1)`, each a different direction (seeded).
fn spread_rows(n: usize, d: usize, scale: f64) -> OwnedMatrix {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut m = OwnedMatrix::zeros(n, d);
    for i in 0..n {
        let row: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (o, v) in m.row_mut(i).iter_mut().zip(&row) {
            *o = (v / norm * scale * (i + 1) as f64) as f32;
        }
    }
    m
}

#[test]
fn server_dp_clips_every_update_and_adds_noise_of_the_stated_scale() {
    // n = 8 rows of norms 0.5, 1.0, …, 4.0 and clip C = 1.25: rows 2..7 are clipped. With the
    // global model at 0, the new model is mean(clipped) + N(0, (zC/n)²) per coordinate; the
    // client weights are ignored (each client counts once).
    let (n, d, clip, z) = (8, 200_000, 1.25, 2.0);
    let x = spread_rows(n, d, 0.5);
    let mut o = private("FedAvg", &[], n, vec![], clip, z, 3);
    o.set_global_model(vec![0.0; d]).unwrap();
    let weights: Vec<f64> = (1..=n).map(|i| i as f64 * 10.0).collect();
    let s = o.step(x.view(), Some(&weights), None, None).unwrap().clone();
    assert_eq!((s.clipped, s.clip_radius), (Some(6), Some(clip)));
    let std = z * clip / n as f64;
    assert_eq!(s.server_noise_std, Some(std));
    let mean_clipped: Vec<f64> = (0..d)
        .map(|j| {
            (0..n)
                .map(|i| {
                    let norm = 0.5 * (i + 1) as f64;
                    x.row(i)[j] as f64 * (clip / norm).min(1.0)
                })
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let noise: Vec<f64> = o.global_model().unwrap().iter().zip(&mean_clipped).map(|(&g, m)| g as f64 - m).collect();
    let mean = noise.iter().sum::<f64>() / d as f64;
    let sd = (noise.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d - 1) as f64).sqrt();
    // The sample mean has sd std/√d and the sample sd has sd ≈ std/√(2d) (0.16 % at this d):
    // five of those either way, with float32 rounding (~1e-7 relative) far below.
    assert!(mean.abs() < 5.0 * std / (d as f64).sqrt(), "noise mean {mean} for std {std}");
    assert!((sd / std - 1.0).abs() < 5.0 / (2.0 * d as f64).sqrt(), "noise sd {sd}, want {std}");
    // a Gaussian's kurtosis is 3: a uniform (1.8) or a Laplace (6) would fail it
    let kurtosis = noise.iter().map(|v| ((v - mean) / sd).powi(4)).sum::<f64>() / d as f64;
    assert!((kurtosis - 3.0).abs() < 0.1, "kurtosis {kurtosis}");
}

#[test]
fn server_dp_noise_is_seeded_per_round_and_apart_from_the_rule() {
    let x = spread_rows(6, 1000, 1.0);
    let run = |seed: u64| {
        let mut o = private("FedAvg", &[], 6, vec![], 1.0, 1.0, seed);
        o.set_global_model(vec![0.0; 1000]).unwrap();
        o.step(x.view(), None, None, None).unwrap();
        let first = o.global_model().unwrap().to_vec();
        o.step(x.view(), None, None, None).unwrap();
        let second: Vec<f32> = o.global_model().unwrap().iter().zip(&first).map(|(b, a)| b - a).collect();
        (first, second)
    };
    let (a1, a2) = run(5);
    assert_eq!(run(5), (a1.clone(), a2.clone()), "same seed, same noise");
    assert_ne!(a1, a2, "a new round draws new noise");
    assert_ne!(run(6).0, a1, "another seed, other noise");
}

#[test]
fn server_dp_composes_with_robust_rules_and_attacks() {
    // Krum behind the clip: the attacker's huge update is clipped like any other before Krum
    // sees it, the round still names who Krum kept, and the noise is on top of Krum's choice.
    let n = 7;
    let x = spread_rows(n, 500, 0.1);
    let mut o = private("Krum(f=1)", &["scaling(factor=1000)"], n, vec![6], 0.25, 0.5, 0);
    let s = step(&mut o, &x);
    assert!(s.selected.as_ref().is_some_and(|k| k.len() == 1), "{:?}", s.selected);
    // rows of norms 0.1, …, 0.7 (the last one scaled by 1000): the five above 0.25 are clipped
    assert_eq!((s.clipped, s.clip_radius), (Some(5), Some(0.25)));
    assert_eq!(s.server_noise_std, Some(0.5 * 0.25 / n as f64));
    // what the defence saw is reported before the clip: the attacker's norm is its own
    assert!(s.update_norms[6] > 100.0, "{:?}", s.update_norms);
    let plain = step(&mut orch("Krum(f=1)", &[], n, None, 0, 0), &x);
    assert_eq!(plain.server_noise_std, None);
}

#[test]
fn server_dp_refuses_a_clip_or_noise_that_is_not_positive() {
    for (clip, z, part) in
        [(0.0, 1.0, "clip"), (-1.0, 1.0, "clip"), (f64::NAN, 1.0, "clip"), (1.0, 0.0, "noise_multiplier"), (1.0, -2.0, "noise_multiplier")]
    {
        let cfg = OrchestratorConfig {
            strategy: spec("FedAvg"),
            attacks: vec![],
            num_clients: 3,
            malicious: None,
            num_malicious: 0,
            seed: 0,
            server_dp: Some(vfl::orchestrator::ServerDp { clip, noise_multiplier: z }),
        };
        match Orchestrator::new(cfg) {
            Ok(_) => panic!("clip {clip}, z {z} accepted"),
            Err(e) => {
                assert_contains(&e.to_string(), part);
                assert_contains(&e.to_string(), "Expected");
            }
        }
    }
}
