//! `outpost-edge`: see `outpost_edge::cli`.

fn main() -> std::process::ExitCode {
    outpost_edge::cli::main(std::env::args_os())
}
