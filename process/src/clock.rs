//! Wall-clock readings, the one place Outpost reads them. Edge boards may boot with a wrong clock;
//! callers store these next to monotonic times, never instead of them.

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> i64 {
    unix_us() / 1000
}

/// Unix time in microseconds (0 if the clock is before 1970).
pub fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
