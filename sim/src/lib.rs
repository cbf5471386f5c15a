//! `outpost-sim`: simulators, the demo site and the process harness tests and chaos scenarios use.
//!
//! The binary embeds `outpost-hub` and `outpost-edge` (`outpost-sim hub ...`, `outpost-sim edge
//! ...` run exactly their command lines), so `cargo run --bin outpost-sim -- demo` can start a
//! whole site as separate processes from one build.

pub mod bench;
pub mod bench_hik;
pub mod bench_sas;
pub mod bench_tv;
pub mod cli;
pub mod demo;
pub mod egm;
pub mod harness;
pub mod hikcentral;
pub mod power_cut;
pub mod site;
pub mod tv;
pub mod visits_driver;
