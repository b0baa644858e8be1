//! `rtclab lab failures`' table: each failure run without and with one mitigation, and what
//! the mitigation changed for the viewer (QoE) and on the network (QoS).

use crate::tables::{downlink_loss_pct, num, opt, right_align, table};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;

/// One failure, run twice on the same seeded link.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRow {
    /// The failure, in a few words ("5 % loss each way, 200 ms RTT").
    pub failure: String,
    /// The mitigation switched on in the second run ("FlexFEC (NACK + FEC)").
    pub mitigation: String,
    /// Why the mitigation should help, in one sentence.
    pub why: String,
    /// `summary.json` of the run without the mitigation.
    pub without: Value,
    /// `summary.json` of the run with it.
    pub with: Value,
}

/// What a run showed the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Viewer {
    /// Frames decoded / frames sent, %.
    pub decoded_pct: Option<f64>,
    /// Total frozen time, s.
    pub frozen_s: Option<f64>,
    /// Glass-to-glass latency p95, ms.
    pub g2g_p95_ms: Option<f64>,
    /// Mean PSNR of the scored frames, dB.
    pub psnr_db: Option<f64>,
}

/// What the network did in a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Network {
    /// Downlink packets the impairment dropped, %.
    pub loss_pct: Option<f64>,
    /// Bottleneck queuing delay p95, ms.
    pub queue_p95_ms: Option<f64>,
    /// Retransmissions per lost packet.
    pub rtx_per_lost: Option<f64>,
    /// Mean sending rate, kbps.
    pub send_kbps: Option<f64>,
}

impl Viewer {
    /// From a run's `summary.json`.
    pub fn of(v: &Value) -> Viewer {
        let decoded = num(v, "frames_decoded_pct").or_else(|| {
            let sent = num(v, "frames_sent")?;
            let decoded = num(v, "frames_decoded")?;
            (sent > 0.0).then(|| 100.0 * decoded / sent)
        });
        Viewer {
            decoded_pct: decoded,
            frozen_s: num(v, "freeze_total_ms")
                .or_else(|| num(v, "freeze_ms"))
                .map(|ms| ms / 1000.0),
            g2g_p95_ms: num(v, "g2g_p95_ms"),
            psnr_db: num(v, "psnr_mean_db"),
        }
    }
}

impl Network {
    /// From a run's `summary.json`.
    pub fn of(v: &Value) -> Network {
        Network {
            loss_pct: downlink_loss_pct(v),
            queue_p95_ms: num(v, "queue_delay_p95_ms"),
            rtx_per_lost: num(v, "retransmissions_per_lost"),
            send_kbps: num(v, "mean_send_bps").map(|b| b / 1000.0),
        }
    }
}

fn viewer_cell(v: &Viewer) -> String {
    format!(
        "{} decoded, {} frozen, g2g p95 {}",
        opt(v.decoded_pct, |x| format!("{x:.1} %")),
        opt(v.frozen_s, |x| format!("{x:.1} s")),
        opt(v.g2g_p95_ms, |x| format!("{x:.0} ms")),
    )
}

fn network_cell(n: &Network) -> String {
    format!(
        "loss {}, queue p95 {}, sent {}",
        opt(n.loss_pct, |x| format!("{x:.1} %")),
        opt(n.queue_p95_ms, |x| format!("{x:.0} ms")),
        opt(n.send_kbps, |x| format!("{x:.0} kbps")),
    )
}

/// The mitigation's measured effect, in one line: decoded frames, frozen time, latency and
/// what it cost on the wire.
pub fn effect(without: &Value, with: &Value) -> String {
    let (a, b) = (Viewer::of(without), Viewer::of(with));
    let (na, nb) = (Network::of(without), Network::of(with));
    let mut parts = Vec::new();
    if let (Some(x), Some(y)) = (a.decoded_pct, b.decoded_pct) {
        parts.push(format!("decoded {x:.1} → {y:.1} %"));
    }
    if let (Some(x), Some(y)) = (a.frozen_s, b.frozen_s) {
        parts.push(format!("frozen {x:.1} → {y:.1} s"));
    }
    if let (Some(x), Some(y)) = (a.g2g_p95_ms, b.g2g_p95_ms) {
        parts.push(format!("g2g p95 {x:.0} → {y:.0} ms"));
    }
    if let (Some(x), Some(y)) = (a.psnr_db, b.psnr_db) {
        parts.push(format!("PSNR {x:.1} → {y:.1} dB"));
    }
    if let (Some(x), Some(y)) = (na.send_kbps, nb.send_kbps) {
        parts.push(format!("sent {x:.0} → {y:.0} kbps"));
    }
    if parts.is_empty() {
        "–".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The table for the terminal: failure → what the viewer saw (without) → what the network did
/// → mitigation → measured effect.
pub fn failures_table(rows: &[FailureRow]) -> String {
    let mut t = table(&[
        "failure",
        "viewer saw (QoE)",
        "network did (QoS)",
        "mitigation",
        "measured effect (without → with)",
    ]);
    for r in rows {
        t.add_row(vec![
            r.failure.clone(),
            viewer_cell(&Viewer::of(&r.without)),
            network_cell(&Network::of(&r.without)),
            r.mitigation.clone(),
            effect(&r.without, &r.with),
        ]);
    }
    right_align(&mut t, 5);
    t.to_string()
}

/// The same as Markdown, with each mitigation's reason, for `docs/` and learners' notes.
pub fn failures_markdown(rows: &[FailureRow]) -> String {
    let mut md = String::from(
        "| failure | viewer saw (QoE) | network did (QoS) | mitigation | why it should help | measured effect (without → with) |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.failure,
            viewer_cell(&Viewer::of(&r.without)),
            network_cell(&Network::of(&r.without)),
            r.mitigation,
            r.why,
            effect(&r.without, &r.with)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(decoded: f64, frozen_ms: f64, g2g: f64, send_bps: f64) -> Value {
        json!({
            "frames_decoded_pct": decoded,
            "freeze_total_ms": frozen_ms,
            "g2g_p95_ms": g2g,
            "mean_send_bps": send_bps,
            "queue_delay_p95_ms": 12.0,
            "impairment": [{"direction": "downlink", "packets_in": 1000, "dropped_total": 50}],
        })
    }

    #[test]
    fn the_effect_gives_each_figure_before_and_after() {
        let e = effect(
            &run(80.0, 4200.0, 900.0, 1_000_000.0),
            &run(97.5, 800.0, 400.0, 1_200_000.0),
        );
        assert_eq!(
            e,
            "decoded 80.0 → 97.5 %; frozen 4.2 → 0.8 s; g2g p95 900 → 400 ms; sent 1000 → 1200 kbps"
        );
    }

    #[test]
    fn the_table_shows_the_unmitigated_run_and_the_network_side() {
        let rows = vec![FailureRow {
            failure: "5 % loss".into(),
            mitigation: "FEC".into(),
            why: "repairs without a round trip".into(),
            without: run(80.0, 4200.0, 900.0, 1_000_000.0),
            with: run(97.5, 800.0, 400.0, 1_200_000.0),
        }];
        let t = failures_table(&rows);
        assert!(t.contains("80.0 % decoded"), "{t}");
        assert!(t.contains("loss 5.0 %"), "{t}");
        let md = failures_markdown(&rows);
        assert!(
            md.contains("| 5 % loss |") && md.contains("repairs without a round trip"),
            "{md}"
        );
        // A run with nothing measured shows a dash, not a made-up number.
        assert_eq!(effect(&json!({}), &json!({})), "–");
    }
}
