//! Any text as an edge, hub and sim configuration file. Asserted, beyond "no panic": the loader
//! either gives a configuration or problems, never neither; every problem has a message; and a
//! problem located in the file points at a line and column that exist in it (an operator can go
//! there).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use outpost_config::{ConfigError, EdgeConfig, HubConfig, Location, SimConfig, load_str};

fn check<T: outpost_config::ConfigFile>(text: &str) {
    let env = BTreeMap::<String, String>::new();
    let Err(err) = load_str::<T>("fuzz.toml", text, &env) else {
        return;
    };
    let ConfigError::Invalid { problems } = &err else {
        panic!("a text cannot be unreadable: {err}");
    };
    assert!(!problems.is_empty(), "an error without problems");
    let lines: Vec<&str> = text.split('\n').collect();
    for problem in problems {
        assert!(!problem.message.is_empty(), "{problem:?}");
        if let Location::File { line, column, .. } = problem.location {
            assert!(line >= 1 && line <= lines.len(), "line {line} of {}: {problem}", lines.len());
            let width = lines[line - 1].chars().count();
            assert!(column >= 1 && column <= width + 1, "column {column} of {width}: {problem}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check::<EdgeConfig>(text);
    check::<HubConfig>(text);
    check::<SimConfig>(text);
});
