//! What the TV's telemetry reads from `dumpsys` and `cmd media_session` output, and what it
//! refuses to guess.

use outpost_adb::tv::telemetry::{foreground_app, screen_on, volume};

const POWER_AWAKE: &str =
    "POWER MANAGER (dumpsys power)\n  mWakefulness=Awake\n  mWakefulnessChanging=false\n";
const POWER_ASLEEP: &str = "  mWakefulness=Asleep\n";
const ACTIVITIES: &str =
    "  mResumedActivity: ActivityRecord{5e1c8a1 u0 com.example.signage/.MainActivity t12}\n";

#[test]
fn the_screen_is_on_only_when_the_power_manager_says_awake() {
    assert_eq!(screen_on(POWER_AWAKE), Some(true));
    assert_eq!(screen_on(POWER_ASLEEP), Some(false));
    assert_eq!(screen_on("mWakefulnessChanging=false"), None);
    assert_eq!(screen_on(""), None);
}

#[test]
fn the_volume_is_the_number_after_volume_is() {
    assert_eq!(volume("volume is 7 in range [0..15]"), Some(7));
    assert_eq!(volume("  volume is 15 in range [0..15]\n"), Some(15));
    assert_eq!(volume("volume is loud"), None);
    assert_eq!(volume("volume is 300 in range"), None, "not a u8");
    assert_eq!(volume("Error: no media session"), None);
}

#[test]
fn the_foreground_app_is_the_package_of_the_resumed_activity() {
    assert_eq!(
        foreground_app(ACTIVITIES).as_deref(),
        Some("com.example.signage")
    );
    assert_eq!(foreground_app("mResumedActivity: null"), None);
    assert_eq!(foreground_app("no activities"), None);
}
