//! Reading user input files: UTF-8 text with an optional byte-order mark, errors that
//! name the file and the line.

use crate::error::{Error, Result};
use std::path::Path;

const BOM: &str = "\u{feff}";

/// `s` without a leading UTF-8 byte-order mark (editors on Windows write one).
pub fn strip_bom(s: &str) -> &str {
    s.strip_prefix(BOM).unwrap_or(s)
}

/// The whole file as text, BOM removed; a directory, unreadable file or invalid UTF-8
/// is an error naming the file (and for UTF-8, the line and byte).
pub fn read_text(path: &Path) -> Result<String> {
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "`{}` is a directory, not an input file",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        Error::Input {
            path: path.to_path_buf(),
            line,
            what: format!(
                "is not UTF-8 text (invalid byte at column {col}); save the file as UTF-8"
            ),
        }
    })?;
    Ok(match text.strip_prefix(BOM) {
        Some(rest) => rest.to_string(),
        None => text,
    })
}
