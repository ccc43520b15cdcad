//! The command line answers bad input with its error code and a message naming what was wrong:
//! `error[CODE]: …` and exit status 1, or clap's usage error (status 2) for a flag out of range.

mod common;

use std::process::{Command, Output};

use common::scratch;

const BUNDLE: &[u8] = include_bytes!("fixtures/tiny.g2d");

/// Runs `g2d ARGS` to the end.
fn output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_g2d"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `g2d ARGS` and returns its exit status and stderr.
fn g2d(args: &[&str]) -> (i32, String) {
    let out = output(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_bundles_settings_and_counts_are_refused_with_their_code() {
    let dir = scratch("cli-errors");
    let run = dir.join("run");
    let run = run.to_str().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let truncated = write("truncated.g2d", &BUNDLE[..BUNDLE.len() / 2]);
    let mut flipped = BUNDLE.to_vec();
    flipped[BUNDLE.len() / 2] ^= 1;
    let flipped = write("flipped.g2d", &flipped);
    let config = write("config.json", br#"{"generate": {"guard_delta": 5}}"#);
    let missing = dir.join("missing.g2d");
    let wide = br#"{"layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 40},
                               {"type": "linear", "out_features": 10}]}"#;
    let wide = write("wide.json", wide);
    let typo = write(
        "typo.json",
        br#"{"layers": [{"type": "conv2d", "out_chanels": 4}]}"#,
    );

    let cases: [(&[&str], i32, &str); 17] = [
        (
            &["--run", run, "generate", "--bundle", &truncated],
            1,
            "error[BUNDLE_TRUNCATED]",
        ),
        (
            &["--run", run, "generate", "--bundle", &flipped],
            1,
            "error[BUNDLE_CHECKSUM]",
        ),
        (
            &[
                "--run",
                run,
                "generate",
                "--bundle",
                missing.to_str().unwrap(),
            ],
            1,
            "error[IO]",
        ),
        (
            &["--run", run, "--config", &config, "generate"],
            1,
            "error[INVALID_ARGUMENT]: invalid generate.guard_delta",
        ),
        (
            &["--run", run, "--guard-delta=-5", "generate"],
            1,
            "error[INVALID_ARGUMENT]: invalid generate.guard_delta",
        ),
        (&["--run", run, "bench", "--repeats", "0"], 2, "--repeats"),
        (&["--run", run, "attack", "--models", "0"], 2, "--models"),
        (&["--run", run, "threat", "--inputs", "0"], 2, "--inputs"),
        (&["--run", run, "attack", "--epsilon", "2"], 2, "(0, 1]"),
        (&["--run", run, "attack", "--epsilon", "NaN"], 2, "(0, 1]"),
        (
            &["--run", run, "attack", "--pgd-steps", "5000"],
            2,
            "--pgd-steps",
        ),
        (
            &["--run", run, "threat", "--epsilons", "0.1,-1"],
            2,
            "(0, 1]",
        ),
        (
            &["--run", run, "query-attack", "--epsilon", "0"],
            2,
            "(0, 1]",
        ),
        (&["--run", run, "report", "--lambdas", "3,inf"], 2, "finite"),
        (
            &["--run", run, "--arch", &wide, "collect"],
            1,
            "layers[0] (conv2d): its 40×40 window is larger than its 28×28 input",
        ),
        (
            &["--run", run, "--arch", &typo, "collect"],
            1,
            "unknown field `out_chanels`",
        ),
        (
            &["--run", run, "--arch", "lenet", "collect"],
            1,
            "expected mlp, cnn or an architecture file, got \"lenet\"",
        ),
    ];
    for (args, status, expected) in cases {
        let (code, stderr) = g2d(args);
        assert_eq!(code, status, "g2d {args:?}: {stderr}");
        assert!(stderr.contains(expected), "g2d {args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench --train` times the autoencoder, the diffusion model at λ = 0 and at the run's λ, and
/// at that λ with the function-space terms the default configuration turns on, read from the
/// bundle alone.
#[test]
fn bench_train_times_every_stage_with_the_default_terms() {
    let dir = scratch("cli-bench-train");
    let bundle = dir.join("tiny.g2d");
    std::fs::write(&bundle, BUNDLE).unwrap();
    let run = dir.join("run");
    let out = output(&[
        "--run",
        run.to_str().unwrap(),
        "--json",
        "bench",
        "--train",
        "--repeats",
        "2",
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages: Vec<(String, f64)> = report["training"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let stage = row["stage"].as_str().unwrap().to_string();
            (stage, row["ms_per_step"].as_f64().unwrap())
        })
        .collect();
    let names: Vec<&str> = stages.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "autoencoder",
            "diffusion, λ = 0",
            "diffusion, λ = 0.05",
            "diffusion, λ = 0.05, task ×1, cross ×10"
        ]
    );
    assert!(stages.iter().all(|(_, ms)| ms.is_finite() && *ms > 0.0));
}
