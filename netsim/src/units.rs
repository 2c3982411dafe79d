//! Unit conversions shared by the models and the link.

/// Nanoseconds per millisecond, as a float.
pub(crate) const NS_PER_MS: f64 = 1e6;
/// Milliseconds per minute, as a float.
pub(crate) const MS_PER_MIN: f64 = 60_000.0;

/// Milliseconds (finite, > 0; anything else is 0) to whole nanoseconds, rounded.
pub(crate) fn ms_to_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * NS_PER_MS).round() as u64
    } else {
        0
    }
}
