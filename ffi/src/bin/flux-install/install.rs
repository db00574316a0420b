//! Installs the built library with its headers (C and C++), a pkg-config file and a CMake package
//! (`find_package(FluxEngine)`) into a prefix. Both descriptions are relocatable: they find the
//! prefix from their own location, so an installed tree can be moved or shipped as is.
//!
//! `cargo run -p flux-ffi --bin flux-install -- PREFIX`

use std::path::Path;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// System libraries the static library needs (rustc --print native-static-libs on Linux).
pub const STATIC_LIBS: &[&str] = &["gcc_s", "util", "rt", "pthread", "m", "dl", "c"];

fn pkg_config() -> String {
    let private: Vec<String> = STATIC_LIBS.iter().map(|l| format!("-l{l}")).collect();
    format!(
        "prefix=${{pcfiledir}}/../..\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n\
         Name: flux_engine\nDescription: Flux Engine SDK: FLUX.1 image generation in-process\n\
         Version: {VERSION}\nLibs: -L${{libdir}} -lflux_engine\nLibs.private: {}\nCflags: -I${{includedir}}\n",
        private.join(" ")
    )
}

fn cmake_config() -> String {
    format!(
        r#"# FluxEngine CMake package: targets FluxEngine::flux_engine (shared) and
# FluxEngine::flux_engine_static. Relocatable: paths are relative to this file.
get_filename_component(_flux_prefix "${{CMAKE_CURRENT_LIST_DIR}}/../../.." ABSOLUTE)
set(FluxEngine_VERSION {VERSION})
set(FluxEngine_INCLUDE_DIRS "${{_flux_prefix}}/include")
if(NOT TARGET FluxEngine::flux_engine)
  add_library(FluxEngine::flux_engine SHARED IMPORTED)
  set_target_properties(FluxEngine::flux_engine PROPERTIES
    IMPORTED_LOCATION "${{_flux_prefix}}/lib/${{CMAKE_SHARED_LIBRARY_PREFIX}}flux_engine${{CMAKE_SHARED_LIBRARY_SUFFIX}}"
    IMPORTED_IMPLIB "${{_flux_prefix}}/lib/flux_engine.dll.lib"
    INTERFACE_INCLUDE_DIRECTORIES "${{_flux_prefix}}/include")
  add_library(FluxEngine::flux_engine_static STATIC IMPORTED)
  set_target_properties(FluxEngine::flux_engine_static PROPERTIES
    IMPORTED_LOCATION "${{_flux_prefix}}/lib/${{CMAKE_STATIC_LIBRARY_PREFIX}}flux_engine${{CMAKE_STATIC_LIBRARY_SUFFIX}}"
    INTERFACE_INCLUDE_DIRECTORIES "${{_flux_prefix}}/include"
    INTERFACE_LINK_LIBRARIES "{}")
endif()
unset(_flux_prefix)
"#,
        STATIC_LIBS
            .iter()
            .filter(|l| **l != "c")
            .copied()
            .collect::<Vec<_>>()
            .join(";")
    )
}

fn cmake_version() -> String {
    format!(
        r#"set(PACKAGE_VERSION "{VERSION}")
# Compatible when the requested version is not newer and, before 1.0, the minor versions match.
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR EQUAL {major} OR ({major} EQUAL 0 AND NOT PACKAGE_FIND_VERSION_MINOR EQUAL {minor}))
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
"#,
        major = env!("CARGO_PKG_VERSION_MAJOR"),
        minor = env!("CARGO_PKG_VERSION_MINOR"),
    )
}

/// The newest of `dir/name` and `dir/deps/name` (cargo leaves libraries built as dependencies
/// in `deps/` and copies them up only when they are built directly).
fn newest(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    [dir.join(name), dir.join("deps").join(name)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
}

/// Copies libflux_engine.{so,a} (from `lib_dir` or `lib_dir/deps`) and the headers (C, and the
/// header-only C++ API) into `prefix` and writes the package files.
pub fn install(prefix: &Path, lib_dir: &Path) -> std::io::Result<()> {
    let lib = prefix.join("lib");
    std::fs::create_dir_all(lib.join("pkgconfig"))?;
    std::fs::create_dir_all(lib.join("cmake/FluxEngine"))?;
    std::fs::create_dir_all(prefix.join("include/flux"))?;
    for name in [
        "libflux_engine.so",
        "libflux_engine.a",
        "libflux_engine.dylib",
        "flux_engine.dll",
        "flux_engine.dll.lib",
    ] {
        if let Some(from) = newest(lib_dir, name) {
            std::fs::copy(&from, lib.join(name))?;
        }
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (from, to) in [
        ("include/flux_engine.h", "flux_engine.h"),
        ("bindings/cxx/include/flux/engine.hpp", "flux/engine.hpp"),
        ("bindings/cxx/include/flux/enums.hpp", "flux/enums.hpp"),
    ] {
        std::fs::copy(source.join(from), prefix.join("include").join(to))?;
    }
    std::fs::write(lib.join("pkgconfig/flux_engine.pc"), pkg_config())?;
    std::fs::write(
        lib.join("cmake/FluxEngine/FluxEngineConfig.cmake"),
        cmake_config(),
    )?;
    std::fs::write(
        lib.join("cmake/FluxEngine/FluxEngineConfigVersion.cmake"),
        cmake_version(),
    )?;
    Ok(())
}
