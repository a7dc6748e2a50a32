//! Hand-computed cases for every aggregation rule, pre-aggregator and server optimiser.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vfl::{NonFinite, OwnedMatrix, Strategy};

// ------------------------------------------------------------------ FedAvg / FedProx

#[test]
fn fedavg_weights_by_sample_counts() {
    let x = mat(&[&[0.0, 10.0], &[1.0, 20.0], &[2.0, 30.0]]);
    // Weights 10:30:60 → (0·0.1 + 1·0.3 + 2·0.6, 10·0.1 + 20·0.3 + 30·0.6) = (1.5, 25).
    assert_close(&agg_w(&x, "FedAvg", &[10.0, 30.0, 60.0]), &[1.5, 25.0], 1e-6);
    // Only the proportions matter.
    assert_close(&agg_w(&x, "FedAvg", &[1.0, 3.0, 6.0]), &[1.5, 25.0], 1e-6);
    // No weights: the plain mean (1, 20).
    assert_close(&agg(&x, "FedAvg"), &[1.0, 20.0], 1e-6);
    // A client with zero samples does not count: mean of rows 1 and 2.
    assert_close(&agg_w(&x, "FedAvg", &[0.0, 1.0, 1.0]), &[1.5, 25.0], 1e-6);
}

#[test]
fn fedprox_aggregates_like_fedavg() {
    // The proximal term lives on the clients; the server takes the same weighted mean.
    let x = mat(&[&[0.0, 10.0], &[1.0, 20.0], &[2.0, 30.0]]);
    let w = [10.0, 30.0, 60.0];
    assert_eq!(agg_w(&x, "FedProx(mu=0.5)", &w), agg_w(&x, "FedAvg", &w));
    assert_eq!(spec("FedProx(mu=0.5)").rule.params.f64("mu").unwrap(), 0.5);
    assert_eq!(spec("FedProx").rule.params.f64("mu").unwrap(), 0.01);
}

// ------------------------------------------------------------------ FedMedian

#[test]
fn fedmedian_odd_and_even() {
    // Odd n: per column the middle of {1,5,3} = 3 and of {-5,0,7} = 0.
    let x = mat(&[&[1.0, -5.0], &[5.0, 0.0], &[3.0, 7.0]]);
    assert_eq!(agg(&x, "FedMedian"), vec![3.0, 0.0]);
    // Weights are ignored.
    assert_eq!(agg_w(&x, "FedMedian", &[100.0, 1.0, 1.0]), vec![3.0, 0.0]);
    // Even n: mean of the two middle values of {1,2,10,4} = (2+4)/2 = 3 (numpy's convention).
    assert_eq!(agg(&col(&[1.0, 2.0, 10.0, 4.0]), "FedMedian"), vec![3.0]);
    // n = 2: the mean; n = 1: the row.
    assert_eq!(agg(&col(&[1.0, 2.0]), "FedMedian"), vec![1.5]);
    assert_eq!(agg(&col(&[-7.0]), "FedMedian"), vec![-7.0]);
}

#[test]
fn fedmedian_discards_non_finite_rows_as_extremes() {
    // NaN sorts above +inf: {1, 2, NaN} → 2; {-inf, 1, 2} → 1.
    assert_eq!(agg(&col(&[1.0, f32::NAN, 2.0]), "FedMedian"), vec![2.0]);
    assert_eq!(agg(&col(&[1.0, f32::NEG_INFINITY, 2.0]), "FedMedian"), vec![1.0]);
}

// ------------------------------------------------------------------ TrimmedMean

#[test]
fn trimmed_mean_with_f_and_beta() {
    let x = col(&[1.0, 100.0, 3.0, 2.0, 4.0]);
    // f = 1: drop 1 and 100, mean of {2,3,4} = 3.
    assert_eq!(agg(&x, "TrimmedMean(f=1)"), vec![3.0]);
    // f = 2: only the middle value 3 is left.
    assert_eq!(agg(&x, "TrimmedMean(f=2)"), vec![3.0]);
    // f = 0: the mean, 110/5 = 22.
    assert_eq!(agg(&x, "TrimmedMean(f=0)"), vec![22.0]);
    // beta = 0.2: trim ⌊0.2·5⌋ = 1 per side → 3.
    assert_eq!(agg(&x, "TrimmedMean(beta=0.2)"), vec![3.0]);
    // beta = 0.1: ⌊0.5⌋ = 0 → the mean 22.
    assert_eq!(agg(&x, "TrimmedMean(beta=0.1)"), vec![22.0]);
    // f from the caller when the spec leaves it out.
    assert_eq!(try_agg(&x, "TrimmedMean", None, Some(1)).unwrap(), vec![3.0]);
    // Weights are ignored.
    assert_eq!(agg_w(&x, "TrimmedMean(f=1)", &[1.0, 50.0, 1.0, 1.0, 1.0]), vec![3.0]);
    // n = 8, beta = 0.25: trim 2 per side of {-1000,1,2,3,4,5,6,1000} → (2+3+4+5)/4 = 3.5.
    let y = col(&[6.0, -1000.0, 2.0, 1000.0, 3.0, 1.0, 5.0, 4.0]);
    assert_eq!(agg(&y, "TrimmedMean(beta=0.25)"), vec![3.5]);
}

#[test]
fn trimmed_mean_is_per_coordinate() {
    // Column 0 trims {0, 9} → mean{1,2,3} = 2; column 1 trims {-9, 5} → mean{0,1,2} = 1.
    let x = mat(&[&[0.0, 5.0], &[1.0, 0.0], &[2.0, 1.0], &[3.0, 2.0], &[9.0, -9.0]]);
    assert_eq!(agg(&x, "TrimmedMean(f=1)"), vec![2.0, 1.0]);
}

// ------------------------------------------------------------------ Krum / MultiKrum

/// 1-D points 0, 1, 6, 9, 13 with f = 1 (n − f − 2 = 2 neighbours). Squared distances to the two
/// nearest others: 0 → 1+36 = 37, 1 → 1+25 = 26, 6 → 9+25 = 34, 9 → 9+16 = 25, 13 → 16+49 = 65.
/// The paper's score picks 9. ByzFL's n − f − 1 = 3 neighbours would give (118, 90, 70, 89, 209)
/// and pick 6; unsquared distances over 2 neighbours (7, 6, 8, 7, 11) would pick 1.
fn krum_points() -> OwnedMatrix {
    col(&[0.0, 1.0, 6.0, 9.0, 13.0])
}

#[test]
fn krum_uses_the_papers_score() {
    let x = krum_points();
    assert_eq!(agg(&x, "Krum(f=1)"), vec![9.0]);
    // f from the caller.
    assert_eq!(try_agg(&x, "Krum", None, Some(1)).unwrap(), vec![9.0]);
    // Krum returns the selected row itself, whatever its (positive) weight.
    assert_eq!(agg_w(&x, "Krum(f=1)", &[5.0, 1.0, 2.0, 0.5, 9.0]), vec![9.0]);
    // The scores are order-independent: reversing the rows selects the same point.
    assert_eq!(agg(&col(&[13.0, 9.0, 6.0, 1.0, 0.0]), "Krum(f=1)"), vec![9.0]);
}

#[test]
fn krum_selects_a_whole_row() {
    // 2-D: rows 0..3 form a unit square around (0.5, 0.5) plus its centre; row 5 is far.
    // f = 1, n − f − 2 = 3 neighbours; the centre (row 4) is at squared distance 0.5 from all
    // four corners → score 1.5; a corner has 0.5 + 1 + 1 = 2.5.
    let x = mat(&[&[0.0, 0.0], &[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[0.5, 0.5], &[50.0, -50.0]]);
    assert_eq!(agg(&x, "Krum(f=1)"), vec![0.5, 0.5]);
}

#[test]
fn krum_ties_go_to_the_earliest_row() {
    // f = 0, n = 3: one neighbour; 0 and 1 both score 1 → row 0.
    assert_eq!(agg(&col(&[0.0, 1.0, 10.0]), "Krum(f=0)"), vec![0.0]);
    assert_eq!(agg(&col(&[1.0, 0.0, 10.0]), "Krum(f=0)"), vec![1.0]);
}

#[test]
fn multi_krum_averages_the_m_best() {
    let x = krum_points();
    // Scores (37, 26, 34, 25, 65): the best two are 9 and 1 → 5.
    assert_eq!(agg(&x, "MultiKrum(f=1, m=2)"), vec![5.0]);
    // Best three: 9, 1, 6 → 16/3.
    assert_close(&agg(&x, "MultiKrum(f=1, m=3)"), &[16.0 / 3.0], 1e-6);
    // Default m = n − f = 4: drop 13 → (0+1+6+9)/4 = 4.
    assert_eq!(agg(&x, "MultiKrum(f=1)"), vec![4.0]);
    // Weighted mean of the selection {9 (w=3), 1 (w=1)} → 28/4 = 7.
    assert_eq!(agg_w(&x, "MultiKrum(f=1, m=2)", &[1.0, 1.0, 1.0, 3.0, 1.0]), vec![7.0]);
    // m = 1 is Krum.
    assert_eq!(agg(&x, "MultiKrum(f=1, m=1)"), agg(&x, "Krum(f=1)"));
}

#[test]
fn krum_with_a_zero_weight_selected_row_stays_finite() {
    // Weights of 0 are accepted (only the total must be positive). Krum selects row 3 (value 9);
    // with w[3] = 0 its 'weighted mean' is 0·9/0 = NaN instead of 9 (or an error).
    let x = krum_points();
    let got = try_agg(&x, "Krum(f=1)", Some(&[1.0, 1.0, 1.0, 0.0, 1.0]), None);
    let ok = matches!(&got, Ok(v) if v.iter().all(|v| v.is_finite())) || got.is_err();
    assert!(ok, "got {got:?}");
}

// ------------------------------------------------------------------ Bulyan

#[test]
fn bulyan_hand_case() {
    // n = 7, f = 1: θ = n − 2f = 5 rows by iterated Krum, then β = θ − 2f = 3 values per coordinate.
    // Iterated Krum (scores checked with a Python transcription of the paper) picks rows 2, 1, 3,
    // 0, 4 — the two outliers are never chosen (the last step ties with the nearer outlier and
    // goes to the lower index).
    // Column 0 of the chosen rows {0,1,2,3,4}: median 2, the 3 closest {1,2,3} → 2.
    // Column 1 {0, 0.2, 0.1, 2.5, 0.5}: median 0.2, the 3 closest {0.2, 0.1, 0} → 0.1.
    let x = mat(&[&[0.0, 0.0], &[1.0, 0.2], &[2.0, 0.1], &[3.0, 2.5], &[4.0, 0.5], &[100.0, 100.0], &[-100.0, -100.0]]);
    assert_close(&agg(&x, "Bulyan(f=1)"), &[2.0, 0.1], 1e-6);
    assert_close(&try_agg(&x, "Bulyan", None, Some(1)).unwrap(), &[2.0, 0.1], 1e-6);
}

#[test]
fn bulyan_with_f0_is_the_mean() {
    // f = 0: θ = n and β = n, so every value of every coordinate is averaged.
    let x = mat(&[&[0.0, 3.0], &[1.0, -3.0], &[5.0, 9.0]]);
    assert_close(&agg(&x, "Bulyan(f=0)"), &[2.0, 3.0], 1e-6);
}

// ------------------------------------------------------------------ GeometricMedian

#[test]
fn geometric_median_collinear_points() {
    // On a line the geometric median is the median: {0, 1, 10} → 1.
    assert_close(&agg(&col(&[0.0, 1.0, 10.0]), "GeometricMedian"), &[1.0], 1e-3);
    // Weighted: 10 carries 3/5 of the weight, more than half → 10.
    assert_close(&agg_w(&col(&[0.0, 1.0, 10.0]), "GeometricMedian", &[1.0, 1.0, 3.0]), &[10.0], 1e-3);
    // Even n: every point of [1, 2] is a geometric median of {0, 1, 2, 100}.
    let g = agg(&col(&[0.0, 1.0, 2.0, 100.0]), "GeometricMedian")[0];
    assert!((1.0 - 1e-3..=2.0 + 1e-3).contains(&g), "got {g}");
}

#[test]
fn geometric_median_of_a_convex_quadrilateral_is_the_diagonals_crossing() {
    // A(0,0) B(2,0) C(3,3) D(0,1): AC = t(3,3), BD = (2,0) + s(−2,1) cross at t = 2/9 → (2/3, 2/3)
    // (the mean would be (1.25, 1)).
    let x = mat(&[&[0.0, 0.0], &[2.0, 0.0], &[3.0, 3.0], &[0.0, 1.0]]);
    assert_close(&agg(&x, "GeometricMedian(tol=1e-12, max_iter=10000)"), &[2.0 / 3.0, 2.0 / 3.0], 1e-4);
    // Default tolerance: within a few thousandths.
    assert_close(&agg(&x, "GeometricMedian"), &[2.0 / 3.0, 2.0 / 3.0], 5e-3);
}

#[test]
fn geometric_median_obtuse_triangle_is_the_obtuse_vertex() {
    // The angle at (0,0) between (1,0) and (−1,0.1) is ≈ 174° ≥ 120° → the Fermat point is (0,0).
    let x = mat(&[&[0.0, 0.0], &[1.0, 0.0], &[-1.0, 0.1]]);
    assert_close(&agg(&x, "GeometricMedian"), &[0.0, 0.0], 1e-4);
}

#[test]
fn geometric_median_at_a_heavy_point_is_that_point() {
    // (6,6) twice, (5,0) and (6,0): at (6,6) the other two pull with unit vectors (−1,−6)/√37 and
    // (0,−1), each weighted 1/4: ‖pull‖ = ¼·‖(−0.164, −1.986)‖ ≈ 0.498 ≤ ½, the weight sitting at
    // (6,6). So (6,6) is the geometric median. Weiszfeld crawls towards it (each step shrinks the
    // distance by a factor ≈ 0.997) and was still at (5.97, 5.65) after 500 iterations; the
    // optimality check of the nearest point returns (6,6) itself.
    let x = mat(&[&[5.0, 0.0], &[6.0, 6.0], &[6.0, 0.0], &[6.0, 6.0]]);
    assert_eq!(agg(&x, "GeometricMedian(nu=1e-9, tol=1e-10, max_iter=500)"), vec![6.0, 6.0]);
    assert_eq!(agg(&x, "GeometricMedian"), vec![6.0, 6.0]);
    // With ν larger than the points' spread the smoothed objective's minimiser is elsewhere (here
    // the mean), so the check does not apply.
    assert_close(&agg(&x, "GeometricMedian(nu=100.0, max_iter=1)"), &[5.75, 3.0], 1e-6);
}

#[test]
fn geometric_median_one_weiszfeld_step() {
    // (0,0), (4,0), (0,4): every angle is below 120°, so no vertex is the median and one step is
    // returned as it is. From the mean (4/3, 4/3) the distances are √32/3 and √80/3 (twice);
    // weights ∝ 3/√32, 3/√80, 3/√80, so z = 4·(3/√80) / (3/√32 + 6/√80) per coordinate.
    let x = mat(&[&[0.0, 0.0], &[4.0, 0.0], &[0.0, 4.0]]);
    let (a, b) = (3.0 / 32f64.sqrt(), 3.0 / 80f64.sqrt());
    let z = 4.0 * b / (a + 2.0 * b);
    assert_close(&agg(&x, "GeometricMedian(max_iter=1)"), &[z, z], 1e-6);
}

#[test]
fn geometric_median_with_a_large_nu_is_the_mean() {
    // Distances below ν all count as ν, so every Weiszfeld step is the plain mean (0+1+5)/3 = 2.
    assert_close(&agg(&col(&[0.0, 1.0, 5.0]), "GeometricMedian(nu=100.0)"), &[2.0], 1e-6);
}

#[test]
fn geometric_median_resists_one_huge_finite_row() {
    // Four honest rows ≈ 1 and one finite outlier at 1e18 per coordinate (d = 64). The objective
    // is dominated by the outlier's distance, so its relative change drops below tol while the
    // estimate is still ~6e10 away from the honest rows. At 1e20 the f32 lane overflow described
    // in `clipping_of_a_huge_finite_row` makes every distance inf and the result is the mean.
    for big in [1e18f32, 1e20] {
        let mut rows: Vec<Vec<f32>> = (0..4).map(|i| vec![1.0 + 0.1 * i as f32; 64]).collect();
        rows.push(vec![big; 64]);
        let x = OwnedMatrix::from_rows(&rows).unwrap();
        let g = agg(&x, "GeometricMedian");
        assert!(g.iter().all(|v| (0.9..=1.5).contains(v)), "outlier {big:e}: got {}", g[0]);
    }
}

// ------------------------------------------------------------------ CenteredClipping

#[test]
fn centered_clipping_one_and_two_iterations() {
    let x = col(&[3.0, 0.5, -4.0]);
    // From v = 0 with τ = 1: clip(3) = 1, clip(0.5) = 0.5, clip(−4) = −1 → v = 0.5/3 = 1/6.
    assert_close(&agg(&x, "CenteredClipping(tau=1.0)"), &[1.0 / 6.0], 1e-6);
    // Second iteration from 1/6: +1, +1/3, −1 → v = 1/6 + (1/3)/3 = 5/18.
    assert_close(&agg(&x, "CenteredClipping(tau=1.0, iters=2)"), &[5.0 / 18.0], 1e-6);
    // τ larger than every distance: the mean (3 + 0.5 − 4)/3 = −1/6.
    assert_close(&agg(&x, "CenteredClipping(tau=100.0)"), &[-1.0 / 6.0], 1e-6);
}

#[test]
fn centered_clipping_clips_the_l2_norm_and_uses_weights() {
    // One row (3,4), norm 5, τ = 1: each iteration moves 1 along (0.6, 0.8).
    let x = mat(&[&[3.0, 4.0]]);
    assert_close(&agg(&x, "CenteredClipping(tau=1.0)"), &[0.6, 0.8], 1e-6);
    assert_close(&agg(&x, "CenteredClipping(tau=1.0, iters=3)"), &[1.8, 2.4], 1e-5);
    // Weights 2:1 on {0, 3}: τ = 10 → weighted mean 1; τ = 1 → (2·0 + 1·1)/3 = 1/3.
    let y = col(&[0.0, 3.0]);
    assert_close(&agg_w(&y, "CenteredClipping(tau=10.0)", &[2.0, 1.0]), &[1.0], 1e-6);
    assert_close(&agg_w(&y, "CenteredClipping(tau=1.0)", &[2.0, 1.0]), &[1.0 / 3.0], 1e-6);
}

#[test]
fn centered_clipping_carries_its_centre_across_rounds() {
    let x = mat(&[&[3.0, 4.0]]);
    let mut s = Strategy::new(spec("CenteredClipping(tau=1.0)")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut round = |s: &mut Strategy| s.aggregate(x.view(), None, None, &mut rng, NonFinite::Reject).unwrap();
    // Round 1 from 0 → (0.6, 0.8); round 2 starts there → (1.2, 1.6); round 3 → (1.8, 2.4).
    assert_close(&round(&mut s), &[0.6, 0.8], 1e-6);
    assert_close(&round(&mut s), &[1.2, 1.6], 1e-6);
    assert_close(&round(&mut s), &[1.8, 2.4], 1e-5);
    // The stateless `aggregate` starts from zero every time.
    assert_close(&agg(&x, "CenteredClipping(tau=1.0)"), &[0.6, 0.8], 1e-6);
    // A clone carries the state; a new Strategy does not.
    let mut c = s.clone();
    let mut rng2 = ChaCha8Rng::seed_from_u64(0);
    let next = c.aggregate(x.view(), None, None, &mut rng2, NonFinite::Reject).unwrap();
    assert_close(&next, &[2.4, 3.2], 1e-5);
}

// ------------------------------------------------------------------ server optimisers

/// Two server steps with `text`, from w = 0; returns w after each step.
fn two_steps(text: &str, d1: &[f32], d2: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut s = Strategy::new(spec(text)).unwrap();
    let mut w = vec![0.0; d1.len()];
    s.server_step(&mut w, d1).unwrap();
    let w1 = w.clone();
    s.server_step(&mut w, d2).unwrap();
    (w1, w)
}

#[test]
fn plain_server_step_adds_the_aggregate() {
    let (w1, w2) = two_steps("FedAvg", &[1.0, -2.0], &[0.5, 0.5]);
    assert_eq!(w1, vec![1.0, -2.0]);
    assert_eq!(w2, vec![1.5, -1.5]);
}

#[test]
fn fedavgm_momentum() {
    // v ← 0.9·v + Δ, w ← w + 0.5·v. Δ = 1: v = 1, w = 0.5. Δ = 1: v = 1.9, w = 0.5 + 0.95 = 1.45.
    let (w1, w2) = two_steps("FedAvgM(server_lr=0.5, momentum=0.9)", &[1.0], &[1.0]);
    assert_close(&w1, &[0.5], 1e-6);
    assert_close(&w2, &[1.45], 1e-6);
    // FedAvgM alone runs on FedAvg.
    assert_eq!(spec("FedAvgM").rule.name(), "FedAvg");
}

#[test]
fn fedadam_two_steps() {
    // η = 1, β1 = 0.5, β2 = 0.5, τ = 1, v starts at τ² = 1, m at 0.
    // Step 1, Δ = (1, 0): m = (0.5, 0), v = (0.5 + 0.5, 0.5) = (1, 0.5), w = 0.5/(1+1) = (0.25, 0).
    // Step 2, Δ = (−1, 0): m = (0.25 − 0.5, 0) = (−0.25, 0), v = (1, 0.25), w = 0.25 − 0.25/2 = 0.125.
    let (w1, w2) = two_steps("FedAdam(eta=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)", &[1.0, 0.0], &[-1.0, 0.0]);
    assert_close(&w1, &[0.25, 0.0], 1e-6);
    assert_close(&w2, &[0.125, 0.0], 1e-6);
}

#[test]
fn fedadam_defaults() {
    // η = 0.1, β1 = 0.9, β2 = 0.99, τ = 1e-3; Δ = 1: m = 0.1, v = 0.99·1e-6 + 0.01.
    let (w1, _) = two_steps("FedAdam", &[1.0], &[0.0]);
    let v = 0.99 * 1e-6 + 0.01;
    assert_close(&w1, &[0.1 * 0.1 / (f64::sqrt(v) + 1e-3)], 1e-6);
}

#[test]
fn fedyogi_two_steps() {
    // η = 1, β1 = 0.5, β2 = 0.5, τ = 1, v0 = 1. v ← v − (1−β2)·Δ²·sign(v − Δ²).
    // Step 1, Δ = (1, 2): coordinate 0 has v = Δ² → sign 0 → v = 1; coordinate 1: sign(1−4) = −1
    //   → v = 1 + 0.5·4 = 3. m = (0.5, 1). w = (0.5/(1+1), 1/(√3+1)) = (0.25, 0.3660).
    // Step 2, Δ = (1, 0): v = (1, 3 − 0) ; m = (0.75, 0.5); w = (0.25 + 0.75/2, 1.5/(√3+1)).
    let (w1, w2) = two_steps("FedYogi(eta=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)", &[1.0, 2.0], &[1.0, 0.0]);
    let r3 = 3f64.sqrt() + 1.0;
    assert_close(&w1, &[0.25, 1.0 / r3], 1e-6);
    assert_close(&w2, &[0.625, 1.5 / r3], 1e-6);
    // Adam on the same first step differs in coordinate 1: v = 0.5 + 0.5·4 = 2.5.
    let (a1, _) = two_steps("FedAdam(eta=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)", &[1.0, 2.0], &[1.0, 0.0]);
    assert_close(&a1, &[0.25, 1.0 / (2.5f64.sqrt() + 1.0)], 1e-6);
}

#[test]
fn fedadagrad_two_steps() {
    // η = 1, β1 = 0.5, τ = 1, v0 = 1; v ← v + Δ².
    // Step 1, Δ = (1, 2): v = (2, 5), m = (0.5, 1), w = (0.5/(√2+1), 1/(√5+1)).
    // Step 2, Δ = (1, 0): v = (3, 5), m = (0.75, 0.5), w += (0.75/(√3+1), 0.5/(√5+1)).
    let (w1, w2) = two_steps("FedAdagrad(eta=1.0, beta_1=0.5, tau=1.0)", &[1.0, 2.0], &[1.0, 0.0]);
    let s = |v: f64| v.sqrt() + 1.0;
    assert_close(&w1, &[0.5 / s(2.0), 1.0 / s(5.0)], 1e-6);
    assert_close(&w2, &[0.5 / s(2.0) + 0.75 / s(3.0), 1.5 / s(5.0)], 1e-6);
}

#[test]
fn server_optimiser_does_not_change_the_aggregate() {
    // "FedAdam" alone is FedAvg + FedAdam: `aggregate` returns the mean; the optimiser only moves w.
    let x = col(&[1.0, 2.0, 6.0]);
    assert_eq!(agg(&x, "FedAdam"), vec![3.0]);
    assert_eq!(agg(&x, "FedMedian + FedYogi"), vec![2.0]);
}

// ------------------------------------------------------------------ pre-aggregators

#[test]
fn nnm_mixes_each_row_with_its_nearest() {
    // f = 1, n − f = 2: each row is averaged with its nearest other row.
    // 0 ↔ 1 → 0.5; 1 ↔ 0 → 0.5; 10 ↔ 1 → 5.5. Weights pass through.
    let x = col(&[0.0, 1.0, 10.0]);
    let (m, w) = pre("NNM(f=1)", x.view(), &[1.0, 2.0, 3.0], None, 0);
    assert_eq!(m.data, vec![0.5, 0.5, 5.5]);
    assert_eq!(w, vec![1.0, 2.0, 3.0]);
    // f from the caller; f = 0 averages everything: each row becomes the mean 11/3.
    let (m, _) = pre("NNM", x.view(), &[1.0; 3], Some(1), 0);
    assert_eq!(m.data, vec![0.5, 0.5, 5.5]);
    let (m, _) = pre("NNM(f=0)", x.view(), &[1.0; 3], None, 0);
    assert_close(&m.data, &[11.0 / 3.0; 3], 1e-6);
    // In a strategy: median of the mixed rows {0.5, 0.5, 5.5} = 0.5.
    assert_eq!(agg(&x, "NNM(f=1) + FedMedian"), vec![0.5]);
    // Mixed vectors are whole rows: (0,0) and (2,2) → (1,1); (9,9) ↔ (2,2) → (5.5, 5.5).
    let y = mat(&[&[0.0, 0.0], &[2.0, 2.0], &[9.0, 9.0]]);
    assert_eq!(pre("NNM(f=1)", y.view(), &[1.0; 3], None, 0).0.data, vec![1.0, 1.0, 1.0, 1.0, 5.5, 5.5]);
}

#[test]
fn bucketing_averages_shuffled_buckets() {
    // Rows 1, 2, 4, 8 with weights 1..4: two buckets of two; each output row is the weighted mean
    // of its bucket and carries the bucket's total weight.
    let x = col(&[1.0, 2.0, 4.0, 8.0]);
    let w = [1.0, 2.0, 3.0, 4.0];
    let (m, bw) = pre("Bucketing(s=2)", x.view(), &w, None, 7);
    assert_eq!((m.n, bw.len()), (2, 2));
    assert_eq!(bw.iter().sum::<f64>(), 10.0);
    // Recover the pairs: with weights 1..4 every pair {i, j} has a distinct total.
    let mut pairs = Vec::new();
    for (g, &total) in bw.iter().enumerate() {
        let pair: Vec<usize> = (0..4)
            .flat_map(|i| (i + 1..4).map(move |j| (i, j)))
            .find(|&(i, j)| {
                w[i] + w[j] == total && {
                    let mean = (w[i] * x.data[i] as f64 + w[j] * x.data[j] as f64) / total;
                    (m.data[g] as f64 - mean).abs() < 1e-6
                }
            })
            .map(|(i, j)| vec![i, j])
            .unwrap_or_else(|| panic!("bucket {g}: {} (w {total}) is no pair", m.data[g]));
        pairs.extend(pair);
    }
    pairs.sort();
    assert_eq!(pairs, vec![0, 1, 2, 3], "buckets overlap");
    // The same seed gives the same buckets.
    assert_eq!(pre("Bucketing(s=2)", x.view(), &w, None, 7), (m, bw));
    // Bucketing keeps the weighted mean: Bucketing + FedAvg = FedAvg = (1+4+12+32)/10 = 4.9.
    for seed in 0..5 {
        let got = vfl::aggregate(x.view(), &spec("Bucketing(s=2) + FedAvg"), Some(&w), None, seed).unwrap();
        assert_close(&got, &[4.9], 1e-6);
    }
}

#[test]
fn bucketing_sizes_and_seeds() {
    let x = col(&[1.0, 2.0, 4.0, 8.0, 16.0]);
    // s = 1: a permutation of the rows.
    let (m, _) = pre("Bucketing(s=1)", x.view(), &[1.0; 5], None, 3);
    let mut v = m.data.clone();
    v.sort_by(f32::total_cmp);
    assert_eq!(v, x.data);
    // s ≥ n: one bucket, the mean 31/5.
    let (m, w) = pre("Bucketing(s=9)", x.view(), &[1.0; 5], None, 3);
    assert_close(&m.data, &[6.2], 1e-6);
    assert_eq!(w, vec![5.0]);
    // n = 5, s = 2: buckets of 2, 2 and 1.
    let (m, w) = pre("Bucketing(s=2)", x.view(), &[1.0; 5], None, 3);
    assert_eq!(m.n, 3);
    assert_eq!(w, vec![2.0, 2.0, 1.0]);
    // The shuffle depends on the seed: several seeds give several different bucketings.
    let distinct: std::collections::HashSet<Vec<u32>> =
        (0..20).map(|s| bits(&pre("Bucketing(s=2)", x.view(), &[1.0; 5], None, s).0.data)).collect();
    assert!(distinct.len() > 3, "{} distinct bucketings over 20 seeds", distinct.len());
}

#[test]
fn clipping_scales_rows_to_norm_c() {
    // (3,4) has norm 5 → (0.6, 0.8) with c = 1; (0.3, 0.4) and (0, 0) are within c.
    let x = mat(&[&[3.0, 4.0], &[0.3, 0.4], &[0.0, 0.0]]);
    let (m, w) = pre("Clipping(c=1.0)", x.view(), &[1.0, 2.0, 3.0], None, 0);
    assert_close(&m.data, &[0.6, 0.8, 0.3, 0.4, 0.0, 0.0], 1e-6);
    assert_eq!(w, vec![1.0, 2.0, 3.0]);
    // Clipping + FedAvg = mean of the clipped rows = (0.3, 0.4).
    assert_close(&agg(&x, "Clipping(c=1.0) + FedAvg"), &[0.3, 0.4], 1e-6);
}

#[test]
fn clipping_of_a_huge_finite_row() {
    // d = 8 (one full 8-lane chunk): every coordinate 1e20, norm √8·1e20 (finite as f64). Clipped to
    // c = 1 it should be (1/√8, …, 1/√8) ≈ 0.3536; the f32 lanes overflow to inf and c/inf = 0.
    let x = mat(&[&[1e20; 8]]);
    let (m, _) = pre("Clipping(c=1.0)", x.view(), &[1.0], None, 0);
    assert_close(&m.data, &[1.0 / 8f64.sqrt(); 8], 1e-6);
    // CenteredClipping should move the centre by τ = 1 towards the row; it stays at 0.
    assert_close(&agg(&x, "CenteredClipping(tau=1.0)"), &[1.0 / 8f64.sqrt(); 8], 1e-6);
    // ARC(f=1), n = 3: k = ⌊2·(1/3)·2⌋ = 1 → the largest row (4e20) is clipped to the next norm (2e20).
    // Every norm overflows to inf, so row 0 (the first of the ties) is zeroed instead.
    let y = mat(&[&[1e20; 8], &[2e20; 8], &[4e20; 8]]);
    let (m, _) = pre("ARC(f=1)", y.view(), &[1.0; 3], None, 0);
    assert_close(&m.data[..8], &[1e20; 8], 1e14);
    assert_close(&m.data[16..], &[2e20; 8], 1e14);
}

#[test]
fn arc_clips_the_largest_rows_to_the_next_norm() {
    let x = col(&[1.0, 2.0, -3.0, 4.0, -10.0]);
    // f = 1, n = 5: k = ⌊2·(1/5)·4⌋ = ⌊1.6⌋ = 1 → −10 is clipped to the next largest norm, 4.
    assert_eq!(pre("ARC(f=1)", x.view(), &[1.0; 5], None, 0).0.data, vec![1.0, 2.0, -3.0, 4.0, -4.0]);
    // f = 2: k = ⌊2·(2/5)·3⌋ = ⌊2.4⌋ = 2 → −10 and 4 are clipped to norm 3 (signs kept).
    assert_eq!(pre("ARC(f=2)", x.view(), &[1.0; 5], None, 0).0.data, vec![1.0, 2.0, -3.0, 3.0, -3.0]);
    // f = 0: k = 0, nothing changes; f from the caller.
    assert_eq!(pre("ARC(f=0)", x.view(), &[1.0; 5], None, 0).0.data, x.data);
    assert_eq!(pre("ARC", x.view(), &[1.0; 5], Some(1), 0).0.data, vec![1.0, 2.0, -3.0, 4.0, -4.0]);
    // L2 norms of whole rows: (6,8) has norm 10 → clipped to norm 5 of (3,4) → (3, 4).
    let y = mat(&[&[0.0, 1.0], &[3.0, 4.0], &[6.0, 8.0], &[1.0, 0.0], &[0.5, 0.5]]);
    assert_close(&pre("ARC(f=1)", y.view(), &[1.0; 5], None, 0).0.data[4..6], &[3.0, 4.0], 1e-6);
}

#[test]
fn pre_aggregators_chain_in_order() {
    // Clipping(c=2) first: {1, 3, 10} → {1, 2, 2}; then NNM(f=1): 1 ↔ 2 → 1.5, 2 ↔ 2 → 2, 2 ↔ 2 → 2;
    // mean 5.5/3. The other order: NNM → {2, 2, 6.5} → Clipping(c=2) → {2, 2, 2} → mean 2.
    let x = col(&[1.0, 3.0, 10.0]);
    assert_close(&agg(&x, "Clipping(c=2.0) + NNM(f=1) + FedAvg"), &[5.5 / 3.0], 1e-6);
    assert_close(&agg(&x, "NNM(f=1) + Clipping(c=2.0) + FedAvg"), &[2.0], 1e-6);
}
