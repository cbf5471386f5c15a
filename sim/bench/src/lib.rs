//! `outpost-sim bench …`: benchmarks that measure ours against a baseline in one run, as ratios
//! (delivery [`delivery`], SAS polling [`sas`], TV operations [`tv`], HikCentral visits [`hik`], the hub's domain [`hub`], the MSSQL sink [`mssql`], the web console [`console`]).

pub mod console;
pub mod delivery;
pub mod hik;
pub mod hub;
pub mod mssql;
pub mod sas;
pub mod tv;
