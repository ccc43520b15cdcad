//! The committed `www/report/` is what `g2d report` wrote; rendering its `report.json` again
//! gives every table, page and plot back byte for byte, so they are a function of the recorded
//! results alone (and a refactor of the report code cannot silently change them). `report.json`
//! itself is compared as data: it gains the defaults of settings added since it was written,
//! and serde_json may print a float's shortest form differently from how it was read.

use std::path::Path;

use g2d::report::{self, Report};

#[test]
fn the_committed_report_re_renders_identically() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/report");
    let text = std::fs::read_to_string(committed.join("report.json")).unwrap();
    let recorded: Report = serde_json::from_str(&text).unwrap();
    let out = std::env::temp_dir().join(format!("g2d-report-render-{}", std::process::id()));
    let written = report::write(&recorded, &out).unwrap();
    assert_eq!(
        written.len(),
        3 + 5,
        "report.json, report.md, index.html and the plots"
    );
    for path in &written {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let again = std::fs::read_to_string(path).unwrap();
        if name == "report.json" {
            let reread: Report = serde_json::from_str(&again).unwrap();
            assert_eq!(report::headline(&reread), report::headline(&recorded));
            continue;
        }
        let before = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(again == before, "{name} differs when re-rendered");
    }
    std::fs::remove_dir_all(&out).ok();
}
