fn main() -> std::process::ExitCode {
    weir_pipeline::cli::main()
}
