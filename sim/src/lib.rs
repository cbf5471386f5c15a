//! `outpost-sim`: the one binary of the demo, the simulators and the benchmarks.
//!
//! It embeds `outpost-hub` and `outpost-edge` (`outpost-sim hub ...`, `outpost-sim edge ...` run
//! exactly their command lines), so `cargo run --bin outpost-sim -- demo` can start a whole site
//! as separate processes from one build. The simulators are `outpost-simulators`, the process
//! harness `outpost-harness`, the benchmarks `outpost-bench`.

pub mod cli;
pub mod demo;
