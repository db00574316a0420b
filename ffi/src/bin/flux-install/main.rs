//! Installs libflux_engine, its headers (C and C++), pkg-config file and CMake package into a
//! prefix:
//! `cargo run -p flux-ffi --bin flux-install -- PREFIX [LIB_DIR]` (by default the libraries of
//! the same profile, beside this program). A separate program: the shipped library holds only
//! the C ABI.

mod install;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(prefix) = args.next() else {
        eprintln!("usage: flux-install PREFIX [LIB_DIR]");
        return ExitCode::from(2);
    };
    let beside_this_program = || {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .unwrap_or_default()
    };
    let lib_dir = args.next().map_or_else(beside_this_program, Into::into);
    match install::install(prefix.as_ref(), &lib_dir) {
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
