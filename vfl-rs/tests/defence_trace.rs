//! What a defence did: row shares, selections, clipping, and the orchestrator's reading of them
//! against the known malicious clients (`vfl::trace`).

mod common;

use common::{assert_close, mat, spec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vfl::orchestrator::{Orchestrator, OrchestratorConfig};
use vfl::trace::Trace;
use vfl::{NonFinite, OwnedMatrix, Strategy};

fn traced(x: &OwnedMatrix, text: &str, w: Option<&[f64]>, f: Option<usize>) -> (Vec<f32>, Trace) {
    let mut s = Strategy::new(spec(text)).unwrap();
    s.aggregate_traced(x.view(), w, f, Default::default(), &mut ChaCha8Rng::seed_from_u64(0), NonFinite::Reject, true)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn share(t: &Trace) -> Vec<f64> {
    let s = t.share.clone().expect("a share");
    let total: f64 = s.iter().sum();
    assert!((total - 1.0).abs() < 1e-9 && s.iter().all(|&v| v >= 0.0), "shares sum to 1: {s:?}");
    s
}

/// Six honest rows near (1, 1) and one far outlier (row 6).
fn cluster_and_outlier() -> OwnedMatrix {
    mat(&[&[1.0, 1.1], &[0.9, 1.0], &[1.1, 0.9], &[1.0, 1.0], &[0.95, 1.05], &[1.05, 0.95], &[-50.0, 60.0]])
}

#[test]
fn the_mean_gives_each_row_its_weight_share() {
    let x = cluster_and_outlier();
    let (_, t) = traced(&x, "FedAvg", Some(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0]), None);
    assert_close(&share(&t).iter().map(|&v| v as f32).collect::<Vec<_>>(), &[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4], 1e-7);
    assert_eq!((t.selected, t.clipped, t.radius), (None, None, None));
}

#[test]
fn robust_rules_give_the_outlier_no_share() {
    let x = cluster_and_outlier();
    for text in ["FedMedian", "TrimmedMean(f=1)", "Krum(f=1)", "MultiKrum(f=1)", "Bulyan(f=1)"] {
        let (_, t) = traced(&x, text, None, Some(1));
        assert_eq!(share(&t)[6], 0.0, "{text}: {:?}", t.share);
    }
    // The geometric median gives it its Weiszfeld weight: about 1/distance, tiny but not zero.
    let (_, t) = traced(&x, "GeometricMedian", None, None);
    assert!(share(&t)[6] < 0.01, "{:?}", t.share);
}

#[test]
fn coordinate_rules_share_by_the_values_they_average() {
    // Per column, the median of 3 values is one row's: row 0 supplies column 0, row 1 column 1.
    let x = mat(&[&[2.0, 0.0], &[0.0, 2.0], &[5.0, 5.0]]);
    let (_, t) = traced(&x, "FedMedian", None, None);
    assert_close(&share(&t).iter().map(|&v| v as f32).collect::<Vec<_>>(), &[0.5, 0.5, 0.0], 1e-7);
    // An even count averages the two middle values: each gets half of the column.
    let x = mat(&[&[1.0], &[2.0], &[3.0], &[4.0]]);
    let (_, t) = traced(&x, "FedMedian", None, None);
    assert_eq!(share(&t), vec![0.0, 0.5, 0.5, 0.0]);
    let (_, t) = traced(&x, "TrimmedMean(f=1)", None, None);
    assert_eq!(share(&t), vec![0.0, 0.5, 0.5, 0.0]);
}

#[test]
fn selection_rules_name_the_rows_they_kept() {
    let x = cluster_and_outlier();
    let (_, t) = traced(&x, "MultiKrum(f=1)", None, None);
    let mut kept = t.selected.clone().unwrap();
    kept.sort_unstable();
    assert_eq!(kept, vec![0, 1, 2, 3, 4, 5]);
    let (_, t) = traced(&x, "Krum(f=1)", None, None);
    assert_eq!(t.selected.as_ref().map(Vec::len), Some(1));
    // NNM keeps the rows' identities (row i is client i's smoothed update); bucketing does not.
    let (_, t) = traced(&x, "NNM(f=1) + Krum(f=1)", None, None);
    assert!(t.selected.is_some());
    assert!(share(&t)[6] < 1.0 / 6.0, "{:?}", t.share); // reached only through NNM's mixing, if at all
    let (_, t) = traced(&x, "Bucketing(s=2) + MultiKrum(f=0)", None, None);
    assert_eq!(t.selected, None);
    share(&t); // traced back through the buckets to the 7 rows
    assert_eq!(t.share.unwrap().len(), 7);
}

#[test]
fn default_radii_follow_the_round_and_clip() {
    // Norms 1..=5: Clipping's default radius is their median, 3, and the two above it are clipped.
    let x = mat(&[&[1.0, 0.0], &[0.0, 2.0], &[3.0, 0.0], &[0.0, 4.0], &[5.0, 0.0]]);
    let (out, t) = traced(&x, "Clipping + FedAvg", None, None);
    assert_eq!((t.clipped, t.radius), (Some(2), Some(3.0)));
    assert_close(&out, &[(1.0 + 3.0 + 3.0) / 5.0, (2.0 + 3.0) / 5.0], 1e-6);
    // CenteredClipping starts from a zero centre: the same radius, the same rows clipped.
    let (out, t) = traced(&x, "CenteredClipping", None, None);
    assert_eq!((t.clipped, t.radius), (Some(2), Some(3.0)));
    assert_close(&out, &[(1.0 + 3.0 + 3.0) / 5.0, (2.0 + 3.0) / 5.0], 1e-6);
    // The paper's τ = 10, given by name, clips nothing at this scale: the mean.
    let (out, t) = traced(&x, "CenteredClipping(tau=10)", None, None);
    assert_eq!((t.clipped, t.radius), (Some(0), Some(10.0)));
    assert_close(&out, &[9.0 / 5.0, 6.0 / 5.0], 1e-6);
}

#[test]
fn the_orchestrator_reads_the_trace_against_the_malicious_clients() {
    let x = cluster_and_outlier();
    let run = |text: &str| {
        let mut o = Orchestrator::new(OrchestratorConfig {
            strategy: spec(text),
            attacks: Vec::new(),
            num_clients: 7,
            malicious: Some(vec![6, 5]),
            num_malicious: 2,
            seed: 0,
            server_dp: None,
        })
        .unwrap();
        o.step(x.view(), None, None, None).unwrap().clone()
    };
    let mean = run("FedAvg");
    assert!((mean.malicious_share - 2.0 / 7.0).abs() < 1e-12 && (mean.malicious_weight - 2.0 / 7.0).abs() < 1e-12);
    assert_eq!((mean.selected.clone(), mean.detection_precision, mean.detection_recall), (None, None, None));
    // MultiKrum with f = 2 keeps 5 of 7: it excludes the outlier (malicious, row 6) and one more.
    let mk = run("MultiKrum");
    assert_eq!(mk.selected.as_ref().map(Vec::len), Some(5));
    assert!(!mk.selected.as_ref().unwrap().contains(&6));
    let caught = usize::from(!mk.selected.as_ref().unwrap().contains(&5)) + 1;
    assert_eq!(mk.selected_malicious, Some(2 - caught));
    assert_eq!(mk.detection_precision, Some(caught as f64 / 2.0));
    assert_eq!(mk.detection_recall, Some(caught as f64 / 2.0));
    assert!(mk.malicious_share < mean.malicious_share);
    // per client, in row order: its share (0 for the rows MultiKrum left out) and its norm
    assert_eq!(mk.client_ids, (0..7).collect::<Vec<_>>());
    let shares = mk.client_shares.clone().unwrap();
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12 && shares[6] == 0.0);
    for (r, s) in shares.iter().enumerate() {
        assert_eq!(*s > 0.0, mk.selected.as_ref().unwrap().contains(&r), "row {r}");
    }
    for (r, norm) in mk.update_norms.iter().enumerate() {
        let exact = x.row(r).iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        assert!((norm - exact).abs() <= 1e-12 * exact.max(1.0), "row {r}: {norm} vs {exact}");
    }
    let json = serde_json::to_value(&mk).unwrap();
    for key in [
        "malicious_share",
        "malicious_weight",
        "selected",
        "selected_malicious",
        "detection_precision",
        "detection_recall",
        "clipped",
        "clip_radius",
        "client_ids",
        "client_shares",
        "update_norms",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
}
