//! Installs libflux_engine, its header, pkg-config file and CMake package into a prefix:
//! `cargo run -p flux-ffi --bin flux-install -- PREFIX` (the libraries of the same profile).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(prefix) = std::env::args_os().nth(1) else {
        eprintln!("usage: flux-install PREFIX");
        return ExitCode::from(2);
    };
    let lib_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    match flux_engine::install::install(
        prefix.as_ref(),
        &lib_dir,
        &flux_engine::install::source_header(),
    ) {
        Ok(()) => {
            eprintln!("installed to {}", std::path::Path::new(&prefix).display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flux-install: {e}");
            ExitCode::FAILURE
        }
    }
}
