//! Progress bars, shown only when stderr is a terminal (and NO_COLOR is respected by
//! drawing plain text).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A counter of processed items with rate, or None when stderr is not a terminal.
pub fn counter(unit: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {{pos}} {unit} ({{per_sec}}) {{msg}} [{{elapsed}}]"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    Some(bar)
}

/// A bar towards `target` items, or None when stderr is not a terminal.
pub fn bar(target: u64, unit: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(target);
    let style = ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {unit} {{msg}} [{{elapsed}}, ETA {{eta}}]"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
