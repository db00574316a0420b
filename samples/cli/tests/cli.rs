//! `flux-cli` run as a program on the built-in tiny model: `--lora FILE[:STRENGTH]` on generate
//! and edit (the image changes, the PNG records the LoRAs), bad LoRA specs refused, `fill` on a
//! Fill model and `--negative-prompt` (true CFG) recorded in the PNG.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flux_core::image::export;

/// The workspace root (the brief's relative fixture paths are run from there).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const LORA_A: &str = "tests/fixtures/flux-lora/lora_a_kohya.safetensors";

/// A fresh folder of this test's own; the CLI writes its tiny model under it (`TMPDIR`), so
/// tests running at once never share one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flux-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `flux-cli` from the workspace root with `args`.
fn cli(tmp: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_flux-cli"))
        .args(args)
        .current_dir(root())
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    eprintln!(
        "flux-cli {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small, fast generation into `out` with `extra` arguments; must succeed. Returns stderr.
fn generate(tmp: &Path, out: &Path, extra: &[&str]) -> String {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "generate",
        "--prompt",
        "a lighthouse",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "2",
        "--seed",
        "7",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    let run = cli(tmp, &args);
    assert!(run.status.success(), "flux-cli failed: {}", run.status);
    String::from_utf8(run.stderr).unwrap()
}

/// The pixels and text entries of a PNG.
fn read_png(path: &Path) -> (Vec<u8>, Vec<(String, String)>) {
    let bytes = std::fs::read(path).unwrap();
    let image = export::decode(&bytes).unwrap();
    (image.data, export::read_png_text(&bytes).unwrap())
}

fn entry<'a>(text: &'a [(String, String)], key: &str) -> Option<&'a str> {
    text.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn generate_with_a_lora_changes_the_image_and_records_it() {
    let tmp = scratch("generate");
    let (plain, with_lora) = (tmp.join("plain.png"), tmp.join("lora.png"));
    generate(&tmp, &plain, &[]);
    let log = generate(&tmp, &with_lora, &["--lora", &format!("{LORA_A}:0.5")]);
    assert!(
        log.contains("LoRA lora_a_kohya.safetensors:0.5 (36 modules"),
        "{log}"
    );
    // The tiny model fits a merged copy many times over.
    assert!(log.contains("merged into the weights"), "{log}");

    let (plain_pixels, plain_text) = read_png(&plain);
    let (lora_pixels, lora_text) = read_png(&with_lora);
    assert_eq!(plain_pixels.len(), lora_pixels.len());
    let changed = plain_pixels
        .iter()
        .zip(&lora_pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > plain_pixels.len() / 2,
        "the LoRA changed only {changed} of {} bytes",
        plain_pixels.len()
    );
    assert_eq!(entry(&plain_text, "loras"), None);
    assert_eq!(
        entry(&lora_text, "loras"),
        Some("lora_a_kohya.safetensors:0.5")
    );
    assert_eq!(entry(&lora_text, "seed"), Some("7"));

    // Two LoRAs, the second at the default strength; the same LoRA at the same strength again
    // gives the same image.
    let two = tmp.join("two.png");
    let d = "tests/fixtures/flux-lora/lora_d_kohya_single.safetensors";
    generate(
        &tmp,
        &two,
        &["--lora", &format!("{LORA_A}:0.5"), "--lora", d],
    );
    let (two_pixels, two_text) = read_png(&two);
    assert_ne!(two_pixels, lora_pixels);
    assert_eq!(
        entry(&two_text, "loras"),
        Some("lora_a_kohya.safetensors:0.5, lora_d_kohya_single.safetensors:1")
    );
    let again = tmp.join("again.png");
    generate(&tmp, &again, &["--lora", &format!("{LORA_A}:0.5")]);
    assert_eq!(read_png(&again).0, lora_pixels);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn only_a_number_after_the_last_colon_is_a_strength() {
    let tmp = scratch("colon");
    // A file whose name holds ':' (as `C:\loras\x.safetensors` does on Windows).
    let lora = tmp.join("style:v2.safetensors");
    std::fs::copy(root().join(LORA_A), &lora).unwrap();
    let lora = lora.to_str().unwrap();
    for (spec, recorded) in [
        (lora.to_string(), "style:v2.safetensors:1"),
        (format!("{lora}:0.7"), "style:v2.safetensors:0.7"),
        (format!("{lora}:-1"), "style:v2.safetensors:-1"),
    ] {
        let out = tmp.join("out.png");
        generate(&tmp, &out, &["--lora", &spec]);
        assert_eq!(entry(&read_png(&out).1, "loras"), Some(recorded), "{spec}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn edit_with_a_lora_records_it() {
    let tmp = scratch("edit");
    let input = tmp.join("in.png");
    generate(&tmp, &input, &[]);
    let out = tmp.join("edited.png");
    let run = cli(
        &tmp,
        &[
            "edit",
            "--image",
            input.to_str().unwrap(),
            "--prompt",
            "make it night",
            "--steps",
            "2",
            "--no-snap",
            "--lora",
            &format!("{LORA_A}:0.25"),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "flux-cli edit failed: {}", run.status);
    assert_eq!(
        entry(&read_png(&out).1, "loras"),
        Some("lora_a_kohya.safetensors:0.25")
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bad_lora_specs_fail_with_a_clear_message() {
    let tmp = scratch("bad");
    let out = tmp.join("never.png");
    let out = out.to_str().unwrap();
    let not_a_lora = tmp.join("not_a_lora.safetensors");
    std::fs::copy(
        root().join("tests/fixtures/flux-reference/ae_tiny.weights.safetensors"),
        &not_a_lora,
    )
    .unwrap();
    let not_a_lora = not_a_lora.to_str().unwrap();
    let cases = [
        (
            "tests/fixtures/flux-lora/missing.safetensors".to_string(),
            "cannot read the LoRA file 'tests/fixtures/flux-lora/missing.safetensors'",
        ),
        (
            "tests/fixtures/flux-lora/missing.safetensors:0.5".to_string(),
            "cannot read the LoRA file 'tests/fixtures/flux-lora/missing.safetensors'",
        ),
        (
            format!("{LORA_A}:nan"),
            "the strength 'nan' is not a finite number",
        ),
        (
            format!("{LORA_A}:inf"),
            "the strength 'inf' is not a finite number",
        ),
        (
            "tests/fixtures/flux-lora".to_string(),
            "the LoRA 'tests/fixtures/flux-lora' is not a file",
        ),
        (
            not_a_lora.to_string(),
            "holds no LoRA layer this engine understands",
        ),
    ];
    for (spec, message) in cases {
        for command in ["generate", "edit"] {
            let mut args = vec![command, "--prompt", "x", "--out", out, "--lora", &spec];
            if command == "edit" {
                // The LoRAs are checked first, before the images are read.
                args.extend(["--image", "tests/fixtures/flux-lora/MANIFEST.md"]);
            }
            let run = cli(&tmp, &args);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(!run.status.success(), "{command} --lora {spec} succeeded");
            assert!(
                stderr.contains(message),
                "{command} --lora {spec}: {stderr}"
            );
        }
    }
    assert!(!Path::new(out).exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn fill_repaints_with_a_fill_model_and_negative_prompts_are_recorded() {
    let tmp = scratch("fill");
    let model = tmp.join("fill-model");
    let run = cli(&tmp, &["tiny-model", "--out", model.to_str().unwrap()]);
    assert!(run.status.success());
    let fill = root().join("tests/fixtures/flux-tools/flux_tiny_fill.weights.safetensors");
    std::fs::copy(fill, model.join("flux1-dev.safetensors")).unwrap();
    let image = tmp.join("in.png");
    generate(&tmp, &image, &[]);
    let mask = tmp.join("mask.png");
    let white_square = (0..64 * 64)
        .flat_map(|i| match (i / 64, i % 64) {
            (16..=47, 16..=47) => [255; 3],
            _ => [0; 3],
        })
        .collect();
    let rgb = |data| flux_core::image::RgbImage {
        width: 64,
        height: 64,
        data,
    };
    export::save(&mask, &rgb(white_square), None).unwrap();
    let out = tmp.join("filled.png");
    let fill_args = |out: &Path| {
        let args = [
            "fill",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--mask",
            mask.to_str().unwrap(),
            "--prompt",
            "a paper cup",
            "--steps",
            "2",
            "--negative-prompt",
            "blurry",
            "--out",
            out.to_str().unwrap(),
        ];
        args.map(String::from).to_vec()
    };
    let args = fill_args(&out);
    let run = cli(&tmp, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "flux-cli fill failed: {}", run.status);
    let (pixels, text) = read_png(&out);
    assert_eq!(pixels.len(), 64 * 64 * 3);
    assert_eq!(entry(&text, "variant"), Some("dev-fill"));
    assert_eq!(entry(&text, "negative_prompt"), Some("blurry"));
    assert_eq!(entry(&text, "true_cfg_scale"), Some("4"));

    // The tiny dev model is no Fill model, and a scale below 1 is refused: a sentence each.
    let mut args = fill_args(&tmp.join("x.png"));
    args.drain(1..3);
    let run = cli(&tmp, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("not a FLUX.1 fill model"),
        "{stderr}"
    );
    let mut args = fill_args(&tmp.join("x.png"));
    args.extend(["--true-cfg".into(), "0.5".into()]);
    let run = cli(&tmp, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("true CFG scale"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn redux_images_change_the_image_when_the_redux_files_are_beside_the_model() {
    let tmp = scratch("redux");
    let model = tmp.join("redux-model");
    assert!(cli(&tmp, &["tiny-model", "--out", model.to_str().unwrap()])
        .status
        .success());
    let tools = root().join("tests/fixtures/flux-tools");
    std::fs::create_dir_all(model.join("siglip_tiny")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            tools.join("siglip_tiny").join(f),
            model.join("siglip_tiny").join(f),
        )
        .unwrap();
    }
    let projection = model.join("flux1-redux-dev.safetensors");
    std::fs::copy(tools.join("redux_tiny.weights.safetensors"), projection).unwrap();
    let image = tmp.join("look.png");
    generate(&tmp, &image, &[]);
    let (plain, varied) = (tmp.join("plain.png"), tmp.join("varied.png"));
    let model_arg = model.to_str().unwrap();
    generate(&tmp, &plain, &["--model", model_arg]);
    generate(
        &tmp,
        &varied,
        &["--model", model_arg, "--redux", image.to_str().unwrap()],
    );
    assert_ne!(
        read_png(&plain).0,
        read_png(&varied).0,
        "the Redux tokens count"
    );
    let run = cli(
        &tmp,
        &[
            "edit",
            "--image",
            image.to_str().unwrap(),
            "--prompt",
            "x",
            "--redux",
            image.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("not with edit"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
