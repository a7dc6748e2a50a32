//! Results are bit-identical whatever the size of the rayon pool (matrix.rs splits work by column
//! blocks that depend on d only). n = 20, d = 300 000 is large enough to be split into many blocks.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use vfl::attacks::{AttackContext, Defence, UpdateAttack};
use vfl::{parse_attack, NonFinite, OwnedMatrix, Strategy};

const N: usize = 20;
const D: usize = 300_000;

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Two rounds with one Strategy (so CenteredClipping's carried centre is covered too).
fn two_rounds(text: &str, x: &OwnedMatrix, w: &[f64]) -> Vec<Vec<u32>> {
    let mut s = Strategy::new(spec(text)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    (0..2).map(|_| bits(&s.aggregate(x.view(), Some(w), Some(3), &mut rng, NonFinite::Reject).unwrap())).collect()
}

#[test]
fn aggregation_is_identical_with_1_and_4_threads() {
    // Honest N(0.1, 1) rows with three outliers, unequal weights.
    let mut x = gaussian(N, D, 0.1, 1.0, 2024);
    for r in 17..20 {
        x.row_mut(r).iter_mut().for_each(|v| *v = *v * 5.0 - 3.0);
    }
    let w: Vec<f64> = (0..N).map(|i| 1.0 + i as f64).collect();
    for text in [
        "FedAvg",
        "FedMedian",
        "TrimmedMean(f=3)",
        "Krum(f=3)",
        "MultiKrum(f=3)",
        "Bulyan(f=4)",
        "GeometricMedian",
        "CenteredClipping(tau=1.0, iters=3)",
        "NNM(f=3) + FedAvg",
        "Bucketing(s=3) + FedMedian",
        "ARC(f=3) + FedAvg",
        "Clipping(c=100.0) + FedAvg",
    ] {
        let one = in_pool(1, || two_rounds(text, &x, &w));
        let four = in_pool(4, || two_rounds(text, &x, &w));
        assert!(one == four, "{text}: results differ between 1 and 4 threads");
        assert!(one[0].iter().all(|&b| f32::from_bits(b).is_finite()), "{text}");
    }
}

#[test]
fn attacks_and_server_steps_are_identical_with_1_and_4_threads() {
    let x = gaussian(N, D, 0.1, 1.0, 7);
    let honest: Vec<usize> = (0..16).collect();
    let malicious: Vec<usize> = (16..20).collect();
    let ids: Vec<usize> = (0..N).collect();
    let krum = Strategy::new(spec("Krum + FedAdam")).unwrap();
    for text in ["gaussian_noise(sigma=2.0)", "alie", "ipm", "model_poisoning", "sybil", "adaptive_alie", "agr_tailored", "min_max"] {
        let attack = UpdateAttack::from_config(&parse_attack(&json!(text)).unwrap()).unwrap().unwrap();
        let run = || {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let replay = ChaCha8Rng::seed_from_u64(6);
            let defence = Defence::Strategy { strategy: &krum, weights: None, f_default: Some(4), round: Default::default(), rng: &replay };
            let mut ctx = AttackContext { honest: &honest, malicious: &malicious, client_ids: &ids, rng: &mut rng, defence: &defence };
            let mut m = x.clone();
            attack.apply(&mut m, &mut ctx).unwrap();
            bits(&m.data)
        };
        assert!(in_pool(1, run) == in_pool(4, run), "{text}: results differ between 1 and 4 threads");
    }
    for text in ["FedAvgM", "FedAdam", "FedYogi", "FedAdagrad"] {
        let run = || {
            let mut s = Strategy::new(spec(text)).unwrap();
            let mut w = vec![0f32; D];
            s.server_step(&mut w, x.row(0)).unwrap();
            s.server_step(&mut w, x.row(1)).unwrap();
            bits(&w)
        };
        assert!(in_pool(1, run) == in_pool(4, run), "{text}: results differ between 1 and 4 threads");
    }
}

/// The orchestrator traces every round: the coordinate-wise rules then compute each row's share
/// in the pass that computes their output. That pass gives the same outputs, to the bit, as the
/// untraced kernels, and the same shares with 1 and 4 threads.
#[test]
fn traced_coordinate_rules_match_the_untraced_kernels_and_the_thread_count() {
    let mut x = gaussian(N, D / 10, 0.1, 1.0, 99);
    for r in 17..20 {
        x.row_mut(r).iter_mut().for_each(|v| *v = *v * 5.0 - 3.0);
    }
    x.row_mut(3)[7] = x.row(4)[7]; // a tie, broken by row index
    let run = |text: &str, trace: bool| {
        let mut s = Strategy::new(spec(text)).unwrap();
        let (out, t) = s
            .aggregate_traced(x.view(), None, Some(3), Default::default(), &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Reject, trace)
            .unwrap();
        (out, t.share.map(|s| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()))
    };
    for text in ["FedMedian", "TrimmedMean(f=3)", "Meamed(f=3)", "Bulyan(f=4)"] {
        let one = in_pool(1, || run(text, true));
        let four = in_pool(4, || run(text, true));
        assert!(bits(&one.0) == bits(&four.0) && one.1 == four.1, "{text}: traced results differ between 1 and 4 threads");
        let share: Vec<f64> = one.1.as_ref().unwrap().iter().map(|&b| f64::from_bits(b)).collect();
        assert!((share.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{text}: shares sum to {}", share.iter().sum::<f64>());
        let (plain, _) = run(text, false);
        assert!(bits(&one.0) == bits(&plain), "{text}: the traced output differs from the kernel's");
    }
}

/// The shares counted in the kernel's pass (rows strictly inside the window, and those equal to an
/// end value by their position in row order) are the shares of a full sort of (value, row) pairs,
/// on columns full of ties (values drawn from five integers, a NaN and both zeros).
#[test]
fn traced_shares_equal_a_full_sort_of_value_row_pairs() {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // sorting networks up to 128 rows, per-column selection above
    for n in [5usize, 6, 9, 10, 130, 131] {
        let d = 400;
        let pool = [-2.0f32, -1.0, -0.0, 0.0, 1.0, 2.0, f32::NAN];
        let data: Vec<f32> = (0..n * d).map(|_| pool[rng.random_range(0..pool.len())]).collect();
        let x = OwnedMatrix { data, n, d };
        for (text, lo, hi) in [("FedMedian", (n - 1) / 2, n / 2 + 1), ("TrimmedMean(f=2)", 2, n - 2)] {
            let mut s = Strategy::new(spec(text)).unwrap();
            let (_, t) = s
                .aggregate_traced(x.view(), None, None, Default::default(), &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Propagate, true)
                .unwrap();
            let mut want = vec![0f64; n];
            for j in 0..d {
                let mut pairs: Vec<(f32, usize)> = (0..n).map(|i| (x.row(i)[j], i)).collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                pairs[lo..hi].iter().for_each(|p| want[p.1] += 1.0 / (hi - lo) as f64 / d as f64);
            }
            let got = t.share.unwrap();
            for i in 0..n {
                assert!((got[i] - want[i]).abs() < 1e-12, "{text}, n = {n}, row {i}: {} vs {}", got[i], want[i]);
            }
        }
    }
}
