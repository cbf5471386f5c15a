//! `outpost-sim bench …`: benchmarks that measure ours against a baseline in one run, as ratios
//! (delivery [`delivery`], SAS polling [`sas`], TV operations [`tv`], HikCentral visits [`hik`], the hub's domain [`hub`], the MSSQL sink [`mssql`], the web console [`console`], instructions per event [`cpu`], Outpost next to NATS and Mosquitto [`peers`], one hub and many edges [`fleet`]).

pub mod console;
pub mod cpu;
pub mod delivery;
pub mod fleet;
pub mod hik;
pub mod hub;
pub mod mssql;
pub mod peers;
pub mod sas;
pub mod tv;

/// A temporary directory for a benchmark's files: under `dir` if given (same disk as production
/// data, ideally), else in the system's temporary directory, named with `prefix`.
pub(crate) fn bench_dir(
    dir: Option<&std::path::Path>,
    prefix: &str,
) -> std::io::Result<tempfile::TempDir> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)
        }
        None => tempfile::Builder::new().prefix(prefix).tempdir(),
    }
}
