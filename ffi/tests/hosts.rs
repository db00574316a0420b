//! The host integrations end to end against this crate's shared library on the tiny model:
//! the Python binding's pytest suite, the C# binding under mono, the Blender add-on in
//! headless Blender, the Krita plugin in Krita under Xvfb and the Godot sample (its GDNative
//! library over the C ABI) in Godot 3 under Xvfb. Each compares pixels with the Rust API's for
//! the same request.
//!
//! A host program that is not installed skips its test with a message on stderr, unless
//! `FLUX_REQUIRE_HOSTS=1` (set by `.ci/run`, which installs them all), where it fails.

use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{abi_layout, deps_dir, reference_rgb, root, run, tiny_dev_model, Scratch};

/// Whether `program args…` runs; otherwise skips (or fails, when hosts are required).
fn available(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("FLUX_REQUIRE_HOSTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "`{program} {}` is required but did not run",
            args.join(" ")
        );
        eprintln!("SKIPPED: `{program} {}` is not available", args.join(" "));
    }
    ok
}

/// A scratch folder with the tiny dev model (`model/`) and the reference pixels
/// (`expected.rgb`); `env` gives the variables every host test reads.
struct Fixture {
    scratch: Scratch,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let files = tiny_dev_model(&scratch.0.join("model"));
        std::fs::write(scratch.0.join("expected.rgb"), reference_rgb(&files)).unwrap();
        Fixture { scratch }
    }

    fn dir(&self) -> &Path {
        &self.scratch.0
    }

    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let out = self.dir().join("out");
        std::fs::create_dir_all(&out).unwrap();
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .env("FLUX_ENGINE_LIB", deps_dir().join("libflux_engine.so"))
            .env("LD_LIBRARY_PATH", deps_dir())
            .env("FLUX_TEST_MODEL", self.dir().join("model"))
            .env("FLUX_TEST_EXPECTED", self.dir().join("expected.rgb"))
            .env("FLUX_TEST_OUT", out)
            .env("FLUX_ABI_LAYOUT", abi_layout(self.dir()))
    }
}

#[test]
fn python_binding_pytest_suite() {
    if !available("python3", &["-m", "pytest", "--version"]) {
        return;
    }
    let f = Fixture::new("python");
    let out = run(f
        .env(&mut Command::new("python3"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root().join("bindings/python/tests")));
    assert!(out.contains(" passed") && !out.contains("skipped"), "{out}");
}

#[test]
fn csharp_binding_under_mono() {
    if !available("mcs", &["--version"]) || !available("mono", &["--version"]) {
        return;
    }
    let f = Fixture::new("csharp");
    let build = f.dir().join("build");
    let out = run(f
        .env(&mut Command::new("bash"))
        .arg(root().join("bindings/csharp/tests/run.sh"))
        .arg(&build));
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn blender_addon_in_headless_blender() {
    if !available("blender", &["--version"]) {
        return;
    }
    let f = Fixture::new("blender");
    let addons = f.dir().join("scripts/addons");
    std::fs::create_dir_all(&addons).unwrap();
    run(Command::new("python3")
        .arg(root().join("samples/blender/package.py"))
        .arg("--lib")
        .arg(deps_dir().join("libflux_engine.so"))
        .arg("--dir")
        .arg(&addons));
    let out = run(f
        .env(&mut Command::new("blender"))
        .env("BLENDER_USER_SCRIPTS", f.dir().join("scripts"))
        .args([
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
        ])
        .arg(root().join("samples/blender/tests/test_addon.py")));
    assert!(out.contains("blender add-on: PASS"), "{out}");
}

/// Copies `files` (paths relative to both folders) from `from` into `to`, making folders.
fn copy_files(from: &Path, to: &Path, files: &[&str]) {
    for file in files {
        let dest = to.join(file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(file), dest).unwrap();
    }
}

#[test]
fn krita_plugin_in_krita_under_xvfb() {
    // Krita has no headless mode for plugins (kritarunner has no dockers), so the real program
    // runs on a virtual display with the packaged plugin and a test plugin that drives its docker
    // and quits Krita.
    let krita = "command -v krita && command -v xvfb-run && /usr/bin/python3 -c 'import PyQt5'";
    if !available("sh", &["-c", krita]) {
        return;
    }
    let f = Fixture::new("krita");
    let (data, config) = (f.dir().join("xdg-data"), f.dir().join("xdg-config"));
    let pykrita = data.join("krita/pykrita");
    run(Command::new("python3")
        .arg(root().join("samples/krita/package.py"))
        .arg("--lib")
        .arg(deps_dir().join("libflux_engine.so"))
        .arg("--dir")
        .arg(&pykrita));
    copy_files(
        &root().join("samples/krita/tests"),
        &pykrita,
        &[
            "flux_engine_krita_test.desktop",
            "flux_engine_krita_test/__init__.py",
        ],
    );
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("kritarc"),
        "[python]\nenable_flux_engine_krita=true\nenable_flux_engine_krita_test=true\n",
    )
    .unwrap();
    run(f
        .env(&mut Command::new("timeout"))
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &config)
        .args(["600", "xvfb-run", "-a", "krita", "--nosplash"]));
    let result = std::fs::read_to_string(f.dir().join("out/krita-result.txt"))
        .unwrap_or_else(|e| panic!("the test plugin wrote no result ({e})"));
    assert_eq!(result, "PASS", "{result}");
    // The screenshots of the docker and the window, kept where FLUX_KRITA_SCREENSHOTS says.
    for shot in ["krita-docker.png", "krita-window.png"] {
        let from = f.dir().join("out").join(shot);
        assert!(from.is_file(), "{shot}");
        if let Some(dir) = std::env::var_os("FLUX_KRITA_SCREENSHOTS") {
            std::fs::copy(&from, Path::new(&dir).join(shot)).unwrap();
        }
    }
}

#[test]
fn godot_sample_in_godot_under_xvfb() {
    // godot3 rather than godot3-server: the sample captures the viewport, which the server
    // build's dummy renderer cannot draw; Xvfb with Mesa's llvmpipe gives it a GLES2 context.
    let godot = "command -v godot3 && command -v xvfb-run && command -v cc";
    if !available("sh", &["-c", godot]) {
        return;
    }
    let f = Fixture::new("godot");
    let project = f.dir().join("project");
    copy_files(
        &root().join("samples/godot/project"),
        &project,
        &[
            "project.godot",
            "main.tscn",
            "main.gd",
            "flux_engine.gdnlib",
            "flux_engine.gdns",
        ],
    );
    run(Command::new("bash")
        .arg(root().join("samples/godot/build.sh"))
        .arg(deps_dir())
        .arg(project.join("bin")));
    let log = f
        .env(&mut Command::new("timeout"))
        .env("FLUX_MODEL", f.dir().join("model"))
        .args([
            "300",
            "xvfb-run",
            "-a",
            "godot3",
            "--audio-driver",
            "Dummy",
            "--path",
        ])
        .arg(&project)
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&log.stderr).into_owned() + &String::from_utf8_lossy(&log.stdout);
    let out = f.dir().join("out");
    let report = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("the game wrote no report ({e}):\n{log}"));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["error"], "", "{report}\n{log}");
    // The game loop kept running frames while the engine generated on its worker.
    assert!(
        report["generate_busy_frames"].as_u64() >= Some(1),
        "{report}"
    );
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    let generated = read("generate.rgba");
    let rgb: Vec<u8> = generated.chunks(4).flat_map(|p| p[..3].to_vec()).collect();
    let expected = std::fs::read(f.dir().join("expected.rgb")).unwrap();
    assert!(
        rgb == expected,
        "the texture's pixels differ from the library's"
    );
    assert!(generated.chunks(4).all(|p| p[3] == 255), "opaque");
    // The viewport capture shows the texture as made, and the edit of it is another picture.
    assert!(read("capture.rgba") == generated, "the viewport capture");
    let edited = read("edit.rgba");
    assert!(
        edited.len() == generated.len() && edited != generated,
        "the edit"
    );
}
