//! Meamed, MDA, SMEA, CAF and DnC on hand-computed cases (the worked examples of ByzFL's and
//! fedlib's implementations, checked against them), their requirements and their traces.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vfl::strategy::RoundInputs;
use vfl::{NonFinite, OwnedMatrix, Strategy};

/// x1 = (0, 0), x2 = (4, 0), x3 = (1, 3), x4 = (3, 1), x5 = (9, 5): x5 is the outlier.
fn dataset_a() -> OwnedMatrix {
    mat(&[&[0.0, 0.0], &[4.0, 0.0], &[1.0, 3.0], &[3.0, 1.0], &[9.0, 5.0]])
}

/// ByzFL's docstring example: (1, 2, 3), (4, 5, 6), (7, 8, 9).
fn byzfl_rows() -> OwnedMatrix {
    mat(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], &[7.0, 8.0, 9.0]])
}

fn traced(x: &OwnedMatrix, text: &str) -> (Vec<f32>, vfl::trace::Trace) {
    let mut s = Strategy::new(spec(text)).unwrap();
    s.aggregate_traced(x.view(), None, None, RoundInputs::default(), &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Reject, true)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn meamed_averages_the_values_nearest_each_coordinates_median() {
    // column 1: median 3, nearest four 3, 4, 1, 0 → 2; column 2: median 1, nearest 1, 0, 0, 3 → 1
    // (trimmed mean with f = 1 would give (2.667, 1.333))
    assert_close(&agg(&dataset_a(), "Meamed(f=1)"), &[2.0, 1.0], 1e-6);
    // even n: (0, 1, 2, 10), median 1.5, nearest three 1, 2, 0 → 1
    assert_close(&agg(&col(&[0.0, 1.0, 2.0, 10.0]), "Meamed(f=1)"), &[1.0], 1e-6);
    // a tie at the edge (1 and 7 are both 3 from the median 4) keeps the lower value, as ByzFL's example
    assert_close(&agg(&byzfl_rows(), "Meamed(f=1)"), &[2.5, 3.5, 4.5], 1e-6);
    // f = 0 is the mean
    assert_close(&agg(&dataset_a(), "Meamed(f=0)"), &[3.4, 1.8], 1e-6);
}

#[test]
fn mda_averages_the_subset_of_smallest_diameter() {
    // {1,2,3,4} has diameter √18 (x2–x3); every subset with x5 is wider
    let (out, t) = traced(&dataset_a(), "MDA(f=1)");
    assert_close(&out, &[2.0, 1.0], 1e-6);
    assert_eq!(t.selected, Some(vec![0, 1, 2, 3]));
    assert_eq!(t.share, Some(vec![0.25, 0.25, 0.25, 0.25, 0.0]));
    // {1,2} and {2,3} tie at √27: the first in lexicographic order wins, as ByzFL's example
    assert_close(&agg(&byzfl_rows(), "MDA(f=1)"), &[2.5, 3.5, 4.5], 1e-6);
    // beyond max_subsets: the tightest ball of four rows is around x4 (radius √10: x2, x3, x1)
    assert_close(&agg(&dataset_a(), "MDA(f=1, max_subsets=1)"), &[2.0, 1.0], 1e-6);
}

#[test]
fn smea_averages_the_subset_of_smallest_top_eigenvalue() {
    // λ_max of {1,2,3,4}'s covariance [[2.5, −0.5], [−0.5, 1.5]] is 2 + √0.5 ≈ 2.707, the
    // smallest of the five subsets (the next, {2,3,4,5}, has 10.24)
    let (out, t) = traced(&dataset_a(), "SMEA(f=1)");
    assert_close(&out, &[2.0, 1.0], 1e-6);
    assert_eq!(t.selected, Some(vec![0, 1, 2, 3]));
    // greedy: x5 lies farthest along the top eigenvector of all five
    assert_close(&agg(&dataset_a(), "SMEA(f=1, max_subsets=1)"), &[2.0, 1.0], 1e-6);
    // a subset with no spread has λ = 0 and is chosen (ByzFL's power step gives NaN and skips it)
    let x = mat(&[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0], &[50.0, -3.0]]);
    assert_close(&agg(&x, "SMEA(f=1)"), &[1.0, 1.0], 1e-6);
}

#[test]
fn caf_filters_along_the_top_eigenvector_and_keeps_the_flattest_mean() {
    // iteration 1: μ = (3.4, 1.8), λ = 11.888, x5 weighted out; iteration 2: μ = (2.212948,
    // 1.065590), λ = 2.768; then Σc ≈ 2.906 ≤ n − 2f = 3 ends the loop (the exact-eigenvector
    // numbers of the reference's algorithm)
    let (out, t) = traced(&dataset_a(), "CAF(f=1)");
    assert_close(&out, &[2.212_948, 1.065_590], 1e-5);
    let share = t.share.unwrap();
    assert_eq!(share[4], 0.0);
    assert!((share.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // ByzFL's example: both extremes get weight 0 at once, leaving the middle row
    assert_close(&agg(&byzfl_rows(), "CAF(f=1)"), &[4.0, 5.0, 6.0], 1e-6);
    // f = 0 is the mean (ByzFL returns None)
    assert_close(&agg(&dataset_a(), "CAF(f=0)"), &[3.4, 1.8], 1e-6);
}

#[test]
fn dnc_drops_the_rows_farthest_along_the_top_singular_direction() {
    // x1 = (1, 2), x2 = (2, 1), x3 = (1.5, 2.5), x4 = (3, 2), x5 = (6, 2): on both coordinates
    // the scores are (2.89, 0.50, 1.43, 0.09, 10.89)·const; x5 goes
    let x = mat(&[&[1.0, 2.0], &[2.0, 1.0], &[1.5, 2.5], &[3.0, 2.0], &[6.0, 2.0]]);
    let (out, t) = traced(&x, "DnC(f=1)");
    assert_close(&out, &[1.875, 1.875], 1e-6);
    assert_eq!(t.selected, Some(vec![0, 1, 2, 3]));
    // fedlib's test: rows (1,2,3), (−1,4,−1), (2,2,3), (3,1,3), two coordinates of three drawn
    // at random, one iteration: every draw drops (−1, 4, −1)
    let y = mat(&[&[1.0, 2.0, 3.0], &[-1.0, 4.0, -1.0], &[2.0, 2.0, 3.0], &[3.0, 1.0, 3.0]]);
    for seed in 0..8 {
        let mut s = Strategy::new(spec("DnC(f=1, sub_dim=2, iters=1)")).unwrap();
        let out = s.aggregate(y.view(), None, None, &mut ChaCha8Rng::seed_from_u64(seed), NonFinite::Reject).unwrap();
        assert_close(&out, &[2.0, 5.0 / 3.0, 3.0], 1e-6);
    }
    // filter_frac = 0 keeps everyone: the mean
    assert_close(&agg(&x, "DnC(f=1, filter_frac=0.0)"), &[2.7, 1.9], 1e-6);
}

#[test]
fn non_finite_rows_are_left_out_first() {
    let mut x = dataset_a();
    x.data[8] = f32::NAN; // x5 = (NaN, 5)
    for rule in ["Meamed(f=1)", "MDA(f=1)", "SMEA(f=1)", "DnC(f=1)"] {
        let mut s = Strategy::new(spec(rule)).unwrap();
        let out = s.aggregate(x.view(), None, None, &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Propagate).unwrap();
        assert_close(&out, &[2.0, 1.0], 1e-6);
    }
    let mut s = Strategy::new(spec("CAF(f=1)")).unwrap();
    let out = s.aggregate(x.view(), None, None, &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Propagate).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
}

#[test]
fn requirements_are_checked_before_any_work() {
    let x = gaussian(4, 3, 0.0, 1.0, 1);
    for rule in ["Meamed", "MDA", "SMEA", "CAF"] {
        assert_eq!(err(&x, &format!("{rule}(f=2)"), None, None), format!("Expected n > 2f = 4 for {rule} with f = 2, got n = 4"));
    }
    assert_eq!(err(&x, "DnC(f=4)", None, None), "Expected n > ⌊filter_frac·f⌋ = 4 for DnC with f = 4 and filter_frac = 1, got n = 4");
    assert!(err(&x, "MDA", None, None).contains("MDA needs f"));
}

#[test]
fn sign_guard_keeps_the_norm_band_and_the_majority_sign_pattern() {
    // x1–x4 benign; x5 sign-flipped; x6 tiny; x7 huge in the benign direction. M = √7 (the
    // median norm): x5 and x7 are clipped to it; x6 falls under 0.1·M; the sign statistics put x5
    // alone in the smaller cluster. The mean of x1–x4 and the clipped x7 (fedlib's numbers).
    let x = mat(&[
        &[1.0, 2.0, -1.0, 0.5],
        &[2.0, 1.0, -1.0, 1.0],
        &[1.5, 1.5, -0.5, 0.5],
        &[1.0, 1.0, -2.0, 1.0],
        &[-2.0, -2.0, 1.0, -1.0],
        &[0.01, 0.02, -0.01, 0.0],
        &[20.0, 20.0, -20.0, 20.0],
    ]);
    let (out, t) = traced(&x, "SignGuard");
    assert_close(&out, &[1.364_575, 1.364_575, -1.164_575, 0.864_575], 1e-5);
    assert_eq!(t.selected, Some(vec![0, 1, 2, 3, 6]));
    assert_eq!(t.clipped, Some(2));
    assert!((t.radius.unwrap() - 7f64.sqrt()).abs() < 1e-6);
    // the coordinate-wise median of the same kept, clipped updates
    let (med, _) = traced(&x, "SignGuard(agg=median)");
    assert_close(&med, &[1.322_876, 1.322_876, -1.0, 1.0], 1e-5);
}

#[test]
fn clipped_clustering_clips_to_the_median_of_every_norm_seen_and_keeps_the_larger_cluster() {
    // (a) fresh: τ = 2.915476 (the median of five norms); x4 and x5 clipped; average linkage on
    // 1 − cos puts x5 alone: the mean of x1..x4 as clipped (fedlib's numbers)
    let a = mat(&[&[1.0, 2.0], &[2.0, 1.0], &[1.5, 2.5], &[3.0, 2.0], &[-4.0, 6.0]]);
    let mut s = Strategy::new(spec("ClippedClustering")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (out, t) = s.aggregate_traced(a.view(), None, None, RoundInputs::default(), &mut rng, NonFinite::Reject, true).unwrap();
    assert_close(&out, &[1.731_455, 1.779_304], 1e-5);
    assert_eq!((t.selected, t.clipped), (Some(vec![0, 1, 2, 3]), Some(2)));
    // (b) the same instance again: ten norms remembered, τ = (3.605551 + 4.472136)/2
    let b = mat(&[&[2.0, 4.0], &[4.0, 2.0], &[3.0, 5.0], &[6.0, 4.0], &[1.0, -1.0]]);
    let (out, t) = s.aggregate_traced(b.view(), None, None, RoundInputs::default(), &mut rng, NonFinite::Reject, true).unwrap();
    assert_close(&out, &[2.714_291, 2.780_576], 1e-5);
    assert!((t.radius.unwrap() - 4.038_844).abs() < 1e-5);
    // (c) a 2 : 2 split keeps the cluster formed later ({x3, x4}, merged at the larger distance)
    let c = mat(&[&[1.0, 0.01], &[1.0, -0.01], &[-1.0, 0.3], &[-1.0, -0.3]]);
    assert_close(&agg(&c, "ClippedClustering"), &[-0.978_936, 0.0], 1e-5);
    // (d) fedlib's test
    let d = mat(&[&[1.0, 2.0, 3.0], &[-1.0, 4.0, -1.0], &[2.0, 2.0, 3.0], &[3.0, 1.0, 3.0]]);
    assert_close(&agg(&d, "ClippedClustering"), &[1.9596, 1.6532, 2.9596], 1e-4);
}

#[test]
fn clustering_rules_leave_non_finite_updates_out() {
    let mut x = mat(&[&[1.0, 2.0], &[2.0, 1.0], &[1.5, 2.5], &[3.0, 2.0], &[-4.0, 6.0]]);
    x.data[9] = f32::INFINITY;
    for rule in ["SignGuard", "ClippedClustering", "FLAME"] {
        let mut s = Strategy::new(spec(rule)).unwrap();
        let (out, t) = s
            .aggregate_traced(x.view(), None, None, RoundInputs::default(), &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Propagate, true)
            .unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{rule}: {out:?}");
        assert!(!t.selected.unwrap().contains(&4), "{rule}");
    }
}

#[test]
fn foolsgold_gives_sybils_that_push_together_no_weight_and_follows_clients_by_id() {
    // round 1: honest (1, 0) and (0, 1), two sybils at (1, 1). cs(honest, sybil) = 1/√2, pardoned
    // by 1/√2 (the sybils' largest similarity is 1) to 0.5; α = (0.5, 0.5, 0, 0) → rescaled
    // (1, 1, 0, 0) → 0.99 → logit ln 99 + 0.5 > 1 → 1: the honest mean
    let x = mat(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[1.0, 1.0]]);
    let mut s = Strategy::new(spec("FoolsGold")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ids = [0, 1, 2, 3];
    let (out, t) = s
        .aggregate_traced(x.view(), None, None, RoundInputs { ids: Some(&ids), ..Default::default() }, &mut rng, NonFinite::Reject, true)
        .unwrap();
    assert_close(&out, &[0.5, 0.5], 1e-6);
    assert_eq!(t.selected, Some(vec![0, 1]));
    assert_eq!(t.share, Some(vec![0.5, 0.5, 0.0, 0.0]));
    // round 2, the rows in another order: the histories follow the ids, not the rows
    let y = mat(&[&[1.0, 1.0], &[0.0, 1.0], &[1.0, 1.0], &[1.0, 0.0]]);
    let ids = [3, 1, 2, 0];
    let (out, t) = s
        .aggregate_traced(y.view(), None, None, RoundInputs { ids: Some(&ids), ..Default::default() }, &mut rng, NonFinite::Reject, true)
        .unwrap();
    assert_close(&out, &[0.5, 0.5], 1e-6);
    assert_eq!(t.selected, Some(vec![1, 3]));
    // every client with a twin: nobody is trusted, the round moves nothing
    let twins = mat(&[&[1.0, 2.0], &[1.0, 2.0], &[-3.0, 0.5], &[-3.0, 0.5]]);
    let (out, t) = traced(&twins, "FoolsGold");
    assert_eq!(out, vec![0.0, 0.0]);
    assert_eq!((t.selected, t.share), (Some(vec![]), Some(vec![0.0; 4])));
}

#[test]
fn foolsgold_catches_the_sybil_attack_in_a_round_and_refuses_bucketing() {
    use vfl::orchestrator::{Orchestrator, OrchestratorConfig};
    let x = gaussian(10, 30, 0.5, 1.0, 3);
    let mut o = Orchestrator::new(OrchestratorConfig {
        strategy: spec("FoolsGold"),
        attacks: vec![vfl::parse_attack(&serde_json::json!("sybil")).unwrap()],
        num_clients: 10,
        malicious: Some(vec![2, 5, 7]),
        num_malicious: 0,
        seed: 1,
        server_dp: None,
    })
    .unwrap();
    for _ in 0..3 {
        let s = o.step(x.view(), None, None, None).unwrap();
        assert_eq!((s.detection_recall, s.malicious_share), (Some(1.0), 0.0));
    }
    let e = Strategy::new(spec("Bucketing(s=2) + FoolsGold")).unwrap_err().to_string();
    assert_eq!(
        e,
        "Expected pre-aggregators that keep one row per client before FoolsGold, which follows clients across rounds, got Bucketing"
    );
}

#[test]
fn fltrust_trusts_updates_by_their_direction_against_the_servers_and_rescales_them() {
    // g_0 = (1, 0): trust (1, 0, 0, 1/√2); rescaled to ‖g_0‖ = 1: (1, 0) and (1/√2, 1/√2);
    // (1·(1, 0) + (1/√2)·(1/√2, 1/√2)) / (1 + 1/√2)
    let x = mat(&[&[2.0, 0.0], &[0.0, 3.0], &[-1.0, 0.0], &[1.0, 1.0]]);
    let server = [1.0f32, 0.0];
    let mut s = Strategy::new(spec("FLTrust")).unwrap();
    let round = RoundInputs { reference: Some(&server), ..Default::default() };
    let (out, t) = s.aggregate_traced(x.view(), None, None, round, &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Reject, true).unwrap();
    let r = 1.0 + 0.5f64.sqrt();
    assert_close(&out, &[1.5 / r, 0.5 / r], 1e-6);
    assert_eq!(t.selected, Some(vec![0, 3]));
    // nobody points the server's way: nothing moves
    let (out, _) = s
        .aggregate_traced(
            x.view(),
            None,
            None,
            RoundInputs { reference: Some(&[0.0, -1.0]), ..Default::default() },
            &mut ChaCha8Rng::seed_from_u64(0),
            NonFinite::Reject,
            true,
        )
        .unwrap();
    assert_close(&out, &[0.0, 0.0], 0.0);
    assert!(err(&x, "FLTrust", None, None).starts_with("FLTrust needs the server's update on its root data"));
    let e = s
        .aggregate_traced(
            x.view(),
            None,
            None,
            RoundInputs { reference: Some(&[1.0]), ..Default::default() },
            &mut ChaCha8Rng::seed_from_u64(0),
            NonFinite::Reject,
            true,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Expected 2 values (the updates' size) for FLTrust's reference update, got 1");
}

/// Unit vector at `deg` degrees, scaled by `r`.
fn polar(r: f32, deg: f32) -> [f32; 2] {
    let a = deg.to_radians();
    [r * a.cos(), r * a.sin()]
}

#[test]
fn flame_admits_the_majority_cluster_clips_to_the_median_norm_and_adds_noise_of_that_scale() {
    // benign at 0°, 10°, 20° (norms 1, 2, 3), attackers at 170°, 180° (norm 0.5). Single linkage on
    // 1 − cos joins each trio/pair at 1 − cos 10° and the two groups at 1 − cos 150°; with
    // min_cluster_size ⌊5/2⌋ + 1 = 3 the pair falls out as noise there and the trio stays to the
    // end: admitted. S = median(1, 2, 3, 0.5, 0.5) = 1 clips the 2 and the 3 to unit length; the
    // mean of the unit vectors at 0°, 10°, 20°.
    let rows = [polar(1.0, 0.0), polar(2.0, 10.0), polar(3.0, 20.0), polar(0.5, 170.0), polar(0.5, 180.0)];
    let x = mat(&rows.iter().map(|r| &r[..]).collect::<Vec<_>>());
    let (out, t) = traced(&x, "FLAME(noise_level=0)");
    let (c10, c20, s10, s20) = (10f64.to_radians().cos(), 20f64.to_radians().cos(), 10f64.to_radians().sin(), 20f64.to_radians().sin());
    assert_close(&out, &[(1.0 + c10 + c20) / 3.0, (s10 + s20) / 3.0], 1e-6);
    assert_eq!((t.selected, t.clipped), (Some(vec![0, 1, 2]), Some(2)));
    assert!((t.radius.unwrap() - 1.0).abs() < 1e-6);
    // identical updates (every distance 0) are one cluster; one update is its own aggregate
    assert_close(&agg(&mat(&[&[1.0, 2.0], &[1.0, 2.0], &[1.0, 2.0]]), "FLAME(noise_level=0)"), &[1.0, 2.0], 1e-6);
    assert_close(&agg(&mat(&[&[3.0, 4.0]]), "FLAME(noise_level=0)"), &[3.0, 4.0], 1e-6);

    // the noise: N(0, (λ·S)²) per coordinate, drawn from the round's stream. Over d = 20 000
    // coordinates the sample standard deviation is within 3 % of λ·S (its relative standard
    // error is 1/√(2d) = 0.5 %) and the sample mean within 5·λS/√d of 0.
    let d = 20_000;
    let x = gaussian(7, d, 0.1, 1.0, 3);
    let clean = agg(&x, "FLAME(noise_level=0)");
    let (noisy, t) = traced(&x, "FLAME(noise_level=0.5)");
    let sigma = 0.5 * t.radius.unwrap();
    let diff: Vec<f64> = noisy.iter().zip(&clean).map(|(a, b)| (a - b) as f64).collect();
    let mean = diff.iter().sum::<f64>() / d as f64;
    let sd = (diff.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d - 1) as f64).sqrt();
    assert!((sd / sigma - 1.0).abs() < 0.03, "noise sd {sd}, expected {sigma}");
    assert!(mean.abs() < 5.0 * sigma / (d as f64).sqrt(), "noise mean {mean}");
    assert_eq!(bits(&noisy), bits(&traced(&x, "FLAME(noise_level=0.5)").0), "the same stream gives the same noise");
}
