//! The committed fixture bundle (made by the command in tests/fixtures/README.md) loads, and a
//! seeded regeneration reproduces the committed parameters, which the browser tests
//! (tests/web.rs) compare against too. `G2D_UPDATE_FIXTURES=1 cargo test --test fixture`
//! rewrites the expected parameters after a deliberate change.

use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::diffusion::sampler::SamplerConfig;
use g2d::generate::G2dModel;
use g2d::rng::G2dRng;

const BUNDLE: &[u8] = include_bytes!("fixtures/tiny.g2d");
const EXPECTED: &str = "tests/fixtures/tiny-seed7-ddim10.json";

#[test]
fn seeded_regeneration_reproduces_the_committed_parameters() {
    let bundle = Bundle::from_bytes(BUNDLE).unwrap();
    let model = G2dModel::from_bundle(&bundle, &cpu_device()).unwrap();
    let sampler = SamplerConfig::Ddim {
        steps: 10,
        eta: 0.0,
    };
    let z0 = model.sample(1, &sampler, G2dRng::seeded(7)).run();
    let params = model
        .decode(z0, &[])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    if std::env::var_os("G2D_UPDATE_FIXTURES").is_some() {
        let doc = serde_json::json!({"seed": 7, "sampler": sampler, "params": params});
        std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let want: Vec<f32> = serde_json::from_value(doc["params"].clone()).unwrap();
    assert_eq!(params.len(), want.len());
    let worst = params
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst < 1e-4,
        "max difference to the committed parameters: {worst}"
    );
}
