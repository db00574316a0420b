//! Gives the shared library a relocatable identity: SONAME `libflux_engine.so` on Linux and
//! install name `@rpath/libflux_engine.dylib` on macOS, so programs linked against it record
//! the library's name, not the path it was built or installed at.

fn main() {
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libflux_engine.so"),
        Ok("macos") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libflux_engine.dylib")
        }
        _ => {}
    }
}
