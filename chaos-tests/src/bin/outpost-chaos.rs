//! `outpost-chaos`: `outpost-sim` built as this package's binary, so the chaos suite's tests run
//! the real hub, edge and simulators as processes (`CARGO_BIN_EXE_outpost-chaos`).

fn main() -> std::process::ExitCode {
    outpost_sim::cli::main(std::env::args_os())
}
