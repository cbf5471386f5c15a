//! How an Android TV does what an operator asks ([`outpost_command::TvCommand`]): the shell line
//! or the ADB service for each operation (sans-IO). The command's argument types carry their own
//! limits, so nothing here validates; it only translates.
//!
//! Invariants: key names map to Android `KEYCODE_*` numbers; a push carries its SHA-256, checked
//! against the data when the command was parsed and against the TV's own checksum after the push.

use outpost_command::{InputSource, TvCommand};

pub use outpost_command::args::hex_sha256;

/// The key that selects each input source.
pub fn input_key(source: InputSource) -> u16 {
    match source {
        InputSource::Hdmi1 => 243,
        InputSource::Hdmi2 => 244,
        InputSource::Hdmi3 => 245,
        InputSource::Hdmi4 => 246,
        InputSource::Tv => 170,
        InputSource::Av => 249,
    }
}

/// How a TV performs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TvAction {
    /// Run this line in `shell:`.
    Shell(String),
    /// Take a screenshot (`exec:screencap -p`).
    Screenshot,
    /// Reboot (`reboot:`).
    Reboot,
    /// Push a file (`sync:`), then check the TV's `sha256sum`.
    Push,
}

/// What the TV is asked to do for `command`.
pub fn action(command: &TvCommand) -> TvAction {
    let key = |code: u16| TvAction::Shell(format!("input keyevent {code}"));
    match command {
        TvCommand::Key(args) => key(args.key.get()),
        TvCommand::Volume(args) => TvAction::Shell(format!(
            "cmd media_session volume --stream 3 --set {}",
            args.level.get()
        )),
        TvCommand::VolumeUp(_) => key(24),
        TvCommand::VolumeDown(_) => key(25),
        TvCommand::Mute(_) => key(164),
        TvCommand::Input(args) => key(input_key(args.source)),
        TvCommand::Play(_) => key(126),
        TvCommand::Pause(_) => key(127),
        TvCommand::Next(_) => key(87),
        TvCommand::Power(args) => key(if args.on { 224 } else { 223 }),
        TvCommand::Launch(args) => TvAction::Shell(format!(
            "monkey -p {} -c android.intent.category.LAUNCHER 1",
            args.package.as_str()
        )),
        TvCommand::Screenshot(_) => TvAction::Screenshot,
        TvCommand::Reboot(_) => TvAction::Reboot,
        TvCommand::Push(_) => TvAction::Push,
    }
}

/// What telemetry reads, parsed from the TV's answers.
pub mod telemetry {
    /// `mWakefulness=Awake` in `dumpsys power`.
    pub fn screen_on(dumpsys_power: &str) -> Option<bool> {
        dumpsys_power
            .lines()
            .find_map(|l| l.trim().strip_prefix("mWakefulness="))
            .map(|w| w.trim() == "Awake")
    }

    /// `volume is 7 in range [0..15]`.
    pub fn volume(output: &str) -> Option<u8> {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix("volume is "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// The package of `mResumedActivity: ActivityRecord{... u0 pkg/.Activity t12}`.
    pub fn foreground_app(dumpsys_activities: &str) -> Option<String> {
        let line = dumpsys_activities
            .lines()
            .find(|l| l.contains("mResumedActivity"))?;
        let component = line.split_whitespace().find(|w| w.contains('/'))?;
        component.split('/').next().map(str::to_owned)
    }
}
