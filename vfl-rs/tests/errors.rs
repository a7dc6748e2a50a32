//! Errors a caller can cause: each is a `VflError` whose message says what was expected and what was given.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use vfl::attacks::{alie_z, UpdateAttack};
use vfl::{parse_attack, Matrix, NonFinite, OwnedMatrix, Strategy, StrategySpec, VflError};

fn parse_err(text: &str) -> String {
    match StrategySpec::parse(text) {
        Ok(s) => match Strategy::new(s) {
            Ok(_) => panic!("{text}: expected an error"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn attack_err(text: &str) -> String {
    match parse_attack(&json!(text)) {
        Ok(c) => UpdateAttack::from_config(&c).map(|_| ()).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn krum_and_multikrum_need_n_above_2f_plus_2() {
    let x = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(err(&x, "Krum(f=2)", None, None), "Expected n > 2f + 2 = 6 for Krum with f = 2, got n = 6");
    assert_eq!(err(&x, "MultiKrum", None, Some(2)), "Expected n > 2f + 2 = 6 for MultiKrum with f = 2, got n = 6");
    // n = 7 is enough.
    let y = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(try_agg(&y, "Krum(f=2)", None, None).is_ok());
    // MultiKrum's m is at most n.
    assert_eq!(err(&y, "MultiKrum(f=1, m=8)", None, None), "Expected at most n = 7 for MultiKrum.m, got 8");
}

#[test]
fn bulyan_needs_n_at_least_4f_plus_3() {
    let x = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(err(&x, "Bulyan(f=1)", None, None), "Expected n >= 4f + 3 = 7 for Bulyan with f = 1, got n = 6");
}

#[test]
fn trimmed_mean_needs_n_above_twice_the_trim() {
    let x = col(&[0.0, 1.0, 2.0, 3.0]);
    assert_eq!(err(&x, "TrimmedMean(f=2)", None, None), "Expected n > 2·trim = 4 for TrimmedMean, got n = 4");
    assert_eq!(err(&x, "TrimmedMean", None, Some(3)), "Expected n > 2·trim = 6 for TrimmedMean, got n = 4");
    assert_eq!(parse_err("TrimmedMean(f=1, beta=0.1)"), "Expected either f or beta for TrimmedMean, got both");
}

#[test]
fn rules_without_f_say_how_to_give_it() {
    let x = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    for name in ["Krum", "MultiKrum", "Bulyan", "TrimmedMean"] {
        assert_eq!(
            err(&x, name, None, None),
            format!("{name} needs f (the number of Byzantine clients): give it as {name}(f=...) or pass f")
        );
    }
    for name in ["NNM", "ARC"] {
        assert_contains(&err(&x, &format!("{name} + FedAvg"), None, None), &format!("{name} needs f"));
    }
}

#[test]
fn pre_aggregators_need_n_above_f() {
    let x = col(&[0.0, 1.0, 2.0]);
    assert_eq!(err(&x, "NNM(f=3) + FedAvg", None, None), "Expected n > f = 3 for NNM with f = 3, got n = 3");
    assert_eq!(err(&x, "ARC(f=3) + FedAvg", None, None), "Expected n > f = 3 for ARC with f = 3, got n = 3");
    // After bucketing the rule sees fewer rows: 7 rows in buckets of 2 → 4 rows, too few for Krum(f=1).
    let y = col(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(err(&y, "Bucketing(s=2) + Krum(f=1)", None, None), "Expected n > 2f + 2 = 4 for Krum with f = 1, got n = 4");
}

#[test]
fn non_finite_rows_are_rejected_by_rules_that_cannot_take_them() {
    let x = mat(&[&[0.0, 1.0, 2.0], &[3.0, 4.0, f32::NAN], &[6.0, 7.0, 8.0], &[0.0, 0.0, 0.0]]);
    let msg = err(&x, "FedAvg", None, None);
    assert_contains(&msg, "Expected finite updates for FedAvg, got NaN in row 1 at index 2");
    for s in ["FedProx", "GeometricMedian", "CenteredClipping", "FedAdam", "Clipping(c=1.0) + FedMedian", "Bucketing + FedMedian"] {
        assert_contains(&err(&x, s, None, None), "Expected finite updates for ");
    }
    let y = mat(&[&[0.0, f32::NEG_INFINITY], &[1.0, 1.0], &[2.0, 2.0], &[3.0, 3.0]]);
    assert_contains(&err(&y, "GeometricMedian", None, None), "got -inf in row 0 at index 1");
    // Rules that treat non-finite rows as far away accept them.
    for s in ["FedMedian", "TrimmedMean(f=1)", "Krum(f=0)", "NNM(f=1) + Krum(f=0)", "ARC(f=1) + FedMedian"] {
        assert!(try_agg(&x, s, None, None).is_ok(), "{s} should accept NaN");
        assert!(try_agg(&y, s, None, None).is_ok(), "{s} should accept -inf");
    }
    // ... up to what they can absorb: MultiKrum with f = 0 averages all four rows, the NaN one too.
    assert_eq!(
        err(&x, "MultiKrum(f=0)", None, None),
        "Expected MultiKrum(f=0) to absorb the non-finite rows, got a non-finite aggregate: 1 of 4 rows are not finite"
    );
    // In a simulation (NonFinite::Propagate) FedAvg lets the NaN through.
    let mut s = Strategy::new(spec("FedAvg")).unwrap();
    let out = s.aggregate(x.view(), None, None, &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Propagate).unwrap();
    assert!(out[2].is_nan() && out[0] == 2.25);
}

#[test]
fn weights_are_checked() {
    let x = col(&[0.0, 1.0, 2.0]);
    assert_eq!(err(&x, "FedAvg", Some(&[1.0, 2.0]), None), "Expected 3 values (one per update row) for weights, got 2 values");
    assert_eq!(err(&x, "FedMedian", Some(&[1.0; 4]), None), "Expected 3 values (one per update row) for weights, got 4 values");
    assert_eq!(err(&x, "FedAvg", Some(&[1.0, -1.0, 1.0]), None), "Expected a finite value >= 0 for weights[1], got -1");
    assert_eq!(err(&x, "FedAvg", Some(&[1.0, 1.0, f64::NAN]), None), "Expected a finite value >= 0 for weights[2], got NaN");
    assert_eq!(err(&x, "FedAvg", Some(&[f64::INFINITY, 1.0, 1.0]), None), "Expected a finite value >= 0 for weights[0], got inf");
    assert_eq!(err(&x, "FedAvg", Some(&[0.0, 0.0, 0.0]), None), "Expected a positive, finite total for weights, got 0");
}

#[test]
fn weights_with_an_infinite_total_are_rejected_or_averaged() {
    // Each weight is finite, but 1e308 + 1e308 = inf: the mean of {1, 3} comes out as 0, not 2.
    let x = col(&[1.0, 3.0]);
    match try_agg(&x, "FedAvg", Some(&[1e308, 1e308]), None) {
        Ok(v) => assert_eq!(v, vec![2.0]),
        Err(e) => assert_contains(&e.to_string(), "weights"),
    }
}

#[test]
fn empty_or_malformed_matrices_are_rejected() {
    let e = Matrix::new(&[], 0, 3).unwrap_err().to_string();
    assert_eq!(e, "Expected at least one row (client) for the update matrix, got 0 rows");
    let e = Matrix::new(&[], 3, 0).unwrap_err().to_string();
    assert_eq!(e, "Expected at least one column (parameter) for the update matrix, got 0 columns");
    let e = Matrix::new(&[1.0; 5], 2, 3).unwrap_err().to_string();
    assert_eq!(e, "Expected 6 values (2 × 3) for the update matrix buffer, got 5");
    let e = OwnedMatrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err().to_string();
    assert_eq!(e, "Expected 2 values for row 1, got 1");
    assert!(Matrix::new(&[1.0; 6], 2, 3).is_ok());
}

/// GeometricMedian and CenteredClipping find a non-finite row by its distance in their own first
/// pass, not by a scan before it: the same error (a row of weight 0 too), and CenteredClipping's
/// centre, which it keeps across calls, as it was before the refused call.
#[test]
fn rules_that_measure_every_distance_refuse_non_finite_rows_as_the_scan_does() {
    let x = mat(&[&[0.0, 1.0, 2.0], &[3.0, 4.0, f32::NAN], &[6.0, 7.0, 8.0], &[0.0, 0.0, 0.0]]);
    let y = mat(&[&[0.0, 1.0, 2.0], &[3.0, 4.0, 5.0], &[6.0, f32::INFINITY, 8.0], &[0.0, 0.0, 0.0]]);
    for s in ["GeometricMedian", "CenteredClipping", "CenteredClipping(tau=0.5, iters=1)"] {
        for w in [None, Some(&[1.0, 0.0, 1.0, 1.0][..]), Some(&[1.0, 1.0, 0.0, 1.0][..])] {
            assert_contains(&err(&x, s, w, None), "got NaN in row 1 at index 2;");
            assert_contains(&err(&y, s, w, None), "got inf in row 2 at index 1;");
        }
    }
    let good = mat(&[&[1.0, 2.0], &[2.0, 0.0], &[0.5, 1.0], &[9.0, 9.0]]);
    let bad = mat(&[&[1.0, 2.0], &[2.0, 0.0], &[0.5, f32::NEG_INFINITY], &[9.0, 9.0]]);
    let calls = |xs: &[&OwnedMatrix]| {
        let mut s = Strategy::new(spec("CenteredClipping")).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        xs.iter().map(|x| s.aggregate(x.view(), None, None, &mut rng, NonFinite::Reject).map_err(|e| e.to_string())).collect::<Vec<_>>()
    };
    let (refused, plain) = (calls(&[&good, &bad, &good]), calls(&[&good, &good]));
    assert_contains(refused[1].as_ref().unwrap_err(), "got -inf in row 2 at index 1;");
    assert_ne!(plain[0], plain[1], "the centre moves between calls, so the check below can fail");
    assert_eq!(refused[2], plain[1]);
}

#[test]
fn empty_owned_matrices_are_rejected_not_aggregated() {
    assert!(OwnedMatrix::from_rows(&[]).is_err(), "from_rows(&[]) accepted an empty matrix");
    let z = OwnedMatrix::zeros(0, 5);
    for s in ["FedAvg", "FedMedian", "GeometricMedian", "CenteredClipping"] {
        let r = std::panic::catch_unwind(|| try_agg(&z, s, None, None));
        assert!(matches!(r, Ok(Err(_))), "{s} on a 0 × 5 matrix: {:?}", r.map_err(|_| "panicked"));
    }
}

#[test]
fn unknown_names_list_the_known_ones() {
    let e = parse_err("Krumm");
    assert!(e.starts_with("Unknown strategy component 'Krumm'; expected one of: FedAvg, FedProx, FedMedian"), "{e}");
    assert_contains(&e, "MultiKrum");
    assert_contains(&e, "NNM");
    assert_contains(&parse_err("sign_flip"), "'sign_flip' is a UpdateAttack, not a valid strategy component");
    let e = StrategySpec::from_json(&json!({"rule": "Medain"})).unwrap_err().to_string();
    assert!(e.starts_with("Unknown aggregation rule 'Medain'; expected one of: FedAvg"), "{e}");
    let e = StrategySpec::from_json(&json!({"pre": ["Krum"], "rule": "FedAvg"})).unwrap_err().to_string();
    assert_contains(&e, "'Krum' is a Rule, not a valid pre-aggregator; expected one of: NNM, Bucketing, Clipping, ARC");
    assert_contains(&attack_err("signflip_x"), "Unknown attack 'signflip_x'; expected one of: gaussian_noise");
    assert_contains(&attack_err("Krum"), "'Krum' is a Rule, not a valid attack");
    // Names are forgiving about case, '_' and '-'.
    assert_eq!(spec("multi_krum(f=1)").rule.name(), "MultiKrum");
    assert_eq!(spec("fed-median").rule.name(), "FedMedian");
}

#[test]
fn out_of_bounds_parameters() {
    let cases = [
        ("TrimmedMean(beta=0.5)", "Expected a value >= 0 and < 0.5 for TrimmedMean.beta, got 0.5"),
        ("TrimmedMean(beta=-0.1)", "Expected a value >= 0 and < 0.5 for TrimmedMean.beta, got -0.1"),
        ("Krum(f=-1)", "Expected a value >= 0 for Krum.f, got -1"),
        ("MultiKrum(m=0)", "Expected a value >= 1 for MultiKrum.m, got 0"),
        ("GeometricMedian(nu=0)", "Expected a value > 0 for GeometricMedian.nu, got 0.0"),
        ("GeometricMedian(tol=-1e-3)", "Expected a value > 0 for GeometricMedian.tol, got -0.001"),
        ("GeometricMedian(max_iter=0)", "Expected a value >= 1 for GeometricMedian.max_iter, got 0"),
        ("CenteredClipping(tau=0.0)", "Expected a value > 0 for CenteredClipping.tau, got 0.0"),
        ("CenteredClipping(iters=0)", "Expected a value >= 1 for CenteredClipping.iters, got 0"),
        ("FedProx(mu=-1)", "Expected a value >= 0 for FedProx.mu, got -1.0"),
        ("FedAvgM(momentum=1.0)", "Expected a value >= 0 and < 1 for FedAvgM.momentum, got 1.0"),
        ("FedAvgM(server_lr=0)", "Expected a value > 0 for FedAvgM.server_lr, got 0.0"),
        ("FedAdam(beta_2=1.5)", "Expected a value >= 0 and < 1 for FedAdam.beta_2, got 1.5"),
        ("FedYogi(tau=0)", "Expected a value > 0 for FedYogi.tau, got 0.0"),
        ("FedAdagrad(eta=-0.1)", "Expected a value > 0 for FedAdagrad.eta, got -0.1"),
        ("Bucketing(s=0) + FedAvg", "Expected a value >= 1 for Bucketing.s, got 0"),
        ("Clipping(c=0) + FedAvg", "Expected a value > 0 for Clipping.c, got 0.0"),
        ("NNM(f=-2) + FedAvg", "Expected a value >= 0 for NNM.f, got -2"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text), want, "{text}");
    }
    let attack_cases = [
        ("gaussian_noise(sigma=-1)", "Expected a value >= 0 and <= 3.4028234663852886e38 for gaussian_noise.sigma, got -1.0"),
        ("ipm(epsilon=0)", "Expected a value > 0 for ipm.epsilon, got 0.0"),
        ("mimic(target=-1)", "Expected a value >= 0 for mimic.target, got -1"),
        ("adaptive_ipm(steps=1)", "Expected a value >= 2 for adaptive_ipm.steps, got 1"),
        ("agr_tailored(steps=1)", "Expected a value >= 2 and <= 200 for agr_tailored.steps, got 1"),
        ("adaptive_alie(lower=0)", "Expected a value > 0 for adaptive_alie.lower, got 0.0"),
        ("adaptive_ipm(lower=5.0, upper=5.0)", "Expected less than upper = 5 for adaptive_ipm.lower, got 5"),
        ("targeted_label_flipping(source=-1, target=2)", "Expected a value >= 0 for targeted_label_flipping.source, got -1"),
    ];
    for (text, want) in attack_cases {
        assert_eq!(attack_err(text), want, "{text}");
    }
}

#[test]
fn wrong_parameter_types_and_names() {
    assert_eq!(parse_err("Krum(f=1.5)"), "Expected an integer for Krum.f, got 1.5");
    assert_eq!(parse_err("Krum(f=abc)"), "Expected an integer for Krum.f, got \"abc\"");
    assert_eq!(parse_err("GeometricMedian(nu=true)"), "Expected a number for GeometricMedian.nu, got true");
    assert_eq!(parse_err("Krum(g=1)"), "Unknown parameter 'g' for Krum: expected one of: f");
    assert_eq!(parse_err("FedAvg(f=1)"), "Unknown parameter 'f' for FedAvg: expected no parameters");
    assert!(matches!(StrategySpec::parse("Krum(f=1.5)").unwrap_err(), VflError::Type(_)));
    assert!(matches!(StrategySpec::parse("Krum(f=-1)").unwrap_err(), VflError::Value(_)));
}

#[test]
fn nan_parameters_are_rejected() {
    // "nan" parses as f64 NaN, serde_json turns NaN into null, and null means "not given": so
    // GeometricMedian(nu=nan) is GeometricMedian, and scaling(factor=nan) is scaling(factor=10).
    for text in ["GeometricMedian(nu=nan)", "CenteredClipping(tau=NaN)", "FedAdam(eta=nan)", "Krum(f=nan)"] {
        assert!(StrategySpec::parse(text).is_err(), "{text} was accepted as {}", StrategySpec::parse(text).unwrap());
    }
    assert!(parse_attack(&json!("scaling(factor=nan)")).is_err());
}

#[test]
fn huge_f_is_an_error_not_a_panic() {
    let x = col(&[0.0, 1.0, 2.0, 3.0, 4.0]);
    let cases: [(&str, Option<usize>); 5] = [
        ("Krum(f=9223372036854775807)", None),
        ("Krum", Some(usize::MAX)),
        ("MultiKrum", Some(usize::MAX / 2 + 1)),
        ("Bulyan", Some(usize::MAX / 4 + 1)),
        ("TrimmedMean", Some(usize::MAX / 2 + 1)),
    ];
    let mut bad = Vec::new();
    for (text, f) in cases {
        let r = std::panic::catch_unwind(|| try_agg(&x, text, None, f));
        if !matches!(r, Ok(Err(_))) {
            bad.push(format!("{text} with f = {f:?}: {:?}", r.map_err(|_| "panicked")));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn strategy_structure_errors() {
    assert_contains(&parse_err("Krum + FedMedian"), "expected one aggregation rule before any server optimiser, got another: FedMedian");
    assert_contains(&parse_err("Krum + NNM(f=1)"), "pre-aggregator NNM must come before the aggregation rule");
    assert_contains(&parse_err("FedAdam + FedYogi"), "expected at most one server optimiser, got another: FedYogi");
    assert_contains(&parse_err("NNM(f=1)"), "expected an aggregation rule (e.g. FedAvg, Krum(f=2)), got only pre-aggregators");
    assert_contains(&parse_err("Krum +"), "Expected a strategy like \"NNM(f=2) + Krum(f=2)\", got 'Krum +'");
}

#[test]
fn centered_clipping_and_server_state_keep_their_size() {
    let mut s = Strategy::new(spec("CenteredClipping")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    s.aggregate(mat(&[&[1.0, 2.0]]).view(), None, None, &mut rng, NonFinite::Reject).unwrap();
    let e = s.aggregate(mat(&[&[1.0, 2.0, 3.0]]).view(), None, None, &mut rng, NonFinite::Reject).unwrap_err();
    assert_eq!(e.to_string(), "Expected 2 parameters for CenteredClipping's update size (it keeps its centre across rounds), got 3");
    let mut w = vec![0.0; 3];
    let e = Strategy::new(spec("FedAdam")).unwrap().server_step(&mut w, &[1.0, 2.0]).unwrap_err();
    assert_eq!(e.to_string(), "Expected 3 values (the global model) for the aggregated update, got 2");
}

#[test]
fn alie_z_bounds() {
    assert_eq!(alie_z(0, 0).unwrap_err().to_string(), "Expected 0 <= f <= n and n >= 1 for ALIE's n and f, got n = 0, f = 0");
    assert_eq!(alie_z(3, 4).unwrap_err().to_string(), "Expected 0 <= f <= n and n >= 1 for ALIE's n and f, got n = 3, f = 4");
}

#[test]
fn an_attacks_rows_are_checked_once_for_every_caller() {
    use vfl::attacks::{attack_round, AttackRound, Defence};
    let x = OwnedMatrix::from_rows(&[vec![1.0], vec![2.0], vec![3.0], vec![4.0]]).unwrap();
    let alie = UpdateAttack::from_config(&parse_attack(&json!("alie")).unwrap()).unwrap().unwrap();
    let strategy = Strategy::new(StrategySpec::parse("FedAvg").unwrap()).unwrap();
    let ids = [0, 1, 2, 3];
    let run = |malicious: &[usize]| {
        let rng = ChaCha8Rng::seed_from_u64(0);
        let defence = Defence::Strategy { strategy: &strategy, weights: None, f_default: None, round: Default::default(), rng: &rng };
        let round = AttackRound { malicious, client_ids: &ids, defence };
        attack_round(x.view(), std::slice::from_ref(&alie), &round, &mut ChaCha8Rng::seed_from_u64(0)).map(|(m, _)| m)
    };
    // a duplicate row used to count twice in ALIE's f (and so in its z)
    assert_eq!(run(&[0, 0]).unwrap_err().to_string(), "Expected distinct malicious rows, got 0 twice");
    assert_eq!(run(&[4]).unwrap_err().to_string(), "Expected indices below n = 4 for malicious row indices, got 4");
    assert!(run(&[3]).is_ok());
}
