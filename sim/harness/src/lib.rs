//! The process harness tests, chaos scenarios, benchmarks and the demo use: a site of real
//! `outpost-hub` and `outpost-edge` processes with its PKI and configs ([`site`], [`harness`]),
//! fault injection on disks ([`power_cut`]: power cuts of a loop-mounted ext4, small disks, and
//! the commands they run)
//! and a HikCentral visits driver against the simulator ([`visits_driver`]).

pub mod harness;
pub mod power_cut;
pub mod site;
pub mod sqlbridge;
pub mod visits_driver;
