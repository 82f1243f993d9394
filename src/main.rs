//! The `relgate` binary: everything lives in the library; this only hands over the exit code.

fn main() -> relgate::exit_status::ExitStatus {
    relgate::cli::main()
}
