//! `outpost-sim`: see `outpost_sim::cli`.

fn main() -> std::process::ExitCode {
    outpost_sim::cli::main(std::env::args_os())
}
