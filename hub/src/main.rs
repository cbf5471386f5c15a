//! `outpost-hub`: see `outpost_hub::cli`.

fn main() -> std::process::ExitCode {
    outpost_hub::cli::main(std::env::args_os())
}
