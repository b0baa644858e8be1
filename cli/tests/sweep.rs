//! `rtclab sweep` writes sweep.html: the variants' plot, one row per variant, and each variant's
//! own report says which variant it is (issue 14 #3, #7).

use std::process::Command;

#[test]
fn a_two_variant_sweep_writes_its_page_and_honest_variant_reports() {
    let out = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/loss-5.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args([
            "sweep",
            scenario,
            "--set",
            "loss=1,20",
            "--duration",
            "4",
            "--out",
        ])
        .arg(out.path())
        .status()
        .expect("run rtclab");
    assert!(status.success());
    let page = std::fs::read_to_string(out.path().join("sweep.html")).expect("sweep.html");
    for variant in ["loss-5.loss-pct-1", "loss-5.loss-pct-20"] {
        assert!(
            page.contains(&format!("<a href=\"{variant}/report.html\">")),
            "no row for {variant}"
        );
        let report = std::fs::read_to_string(out.path().join(variant).join("report.html"))
            .expect("the variant's report");
        let value = variant.rsplit('-').next().unwrap_or_default();
        assert!(
            report.contains(&format!("Sweep variant: downlink.loss_pct = {value} ")),
            "{variant}'s report does not say which variant it is"
        );
    }
    assert!(page.contains("<svg"), "no overlaid plot");
}
