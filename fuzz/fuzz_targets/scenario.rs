//! The scenario-file parser: any text as a scenario file, and `rtclab sweep --set` overrides
//! applied to it.
//!
//! The input is the file's text. Its last line, when it starts with `#set `, is also read as
//! `KEY=VALUE` and applied with [`with_override`], as `rtclab sweep --set KEY=VALUE` does, and
//! the result parsed again. An accepted scenario must hold the limits the parser promises; a
//! refused one must name a line of the file.
#![no_main]

use rtclab_fuzz::fuzz_target;
use rtclab_scenarios::{
    Scenario, ScenarioError, check_duration_s, check_name, locate, with_override,
};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // Scenario files are read with `read_to_string`, which refuses anything but UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("scenarios/fuzz.toml");
    parse(text, path);
    if let Some((_, last)) = text.rsplit_once('\n')
        && let Some((key, value)) = last.strip_prefix("#set ").and_then(|s| s.split_once('='))
        && let Ok(varied) = with_override(text, path, key, value)
    {
        parse(&varied, path);
    }
    // `locate` is also used on its own, with field names from the netem validator.
    let field = text.lines().next().unwrap_or_default();
    assert!(locate(text, field) <= text.lines().count());
});

fn parse(text: &str, path: &Path) {
    // Lines as the parser counts them: a newline at the very end starts one more.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    match Scenario::parse(text, path) {
        Ok(s) => {
            assert!(check_name(&s.name).is_ok());
            assert!(check_duration_s(s.duration_s).is_ok());
            assert!((16..=3840).contains(&s.width) && s.width % 2 == 0);
            assert!((16..=3840).contains(&s.height) && s.height % 2 == 0);
            assert!((1..=60).contains(&s.fps));
            assert!(s.min_bps <= s.initial_bps && s.initial_bps <= s.max_bps);
            assert!(s.impairment.validate().is_ok());
            // What `--duration` does with the schedule, at a few lengths.
            for d in [0.001, s.duration_s / 2.0, s.duration_s, 3600.0] {
                if let Some(note) = s.cut_short(d) {
                    assert!(!note.is_empty());
                }
            }
        }
        Err(e) => {
            assert!(!matches!(e, ScenarioError::Io { .. }));
            assert!(e.line() <= lines, "line {} of {lines}: {e}", e.line());
            assert!(!e.to_string().is_empty());
        }
    }
}
