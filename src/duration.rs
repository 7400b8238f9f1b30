//! Durations in human form (`"500ms"`, `"30s"`, `"1h 30m"`), as the configuration file and the
//! admin router take them.

use std::time::Duration;

use wsfirst_core::MAX_DURATION;

/// Parses a duration in human form (`"30s"`, `"10m"`), at most [`MAX_DURATION`]: deadlines are
/// `Instant::now() + duration`, which would overflow past the clock's range.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|_| format!("invalid duration {text:?}"))?;
    if duration > MAX_DURATION {
        return Err(format!("invalid duration {text:?}: longer than 100 years"));
    }
    Ok(duration)
}
