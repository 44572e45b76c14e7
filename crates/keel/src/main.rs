//! The `keel` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    keel::cli::main()
}
