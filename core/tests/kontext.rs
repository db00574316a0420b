//! Kontext editing, multiple references and image-to-image: reference parity (files C and D,
//! MANIFEST.md transformer tolerance max-abs 5e-4 / rel L2 1e-4), defining properties, bad input.

mod common;

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use common::*;
use flux_core::image::{ImageView, Layout as PixelLayout, PixelFormat, RgbImage};
use flux_core::model::{self, FluxModel, LoadOptions, Variant};
use flux_core::pipeline::edit::{self, ImageToImage, KontextEdit};
use flux_core::pipeline::sampler::{self, ReferenceTokens};
use flux_core::pipeline::{self, packing, TextToImage};
use flux_core::text::PromptEmbedding;
use flux_core::tiny::Layout;

fn continue_hook() -> impl FnMut(&sampler::StepInfo) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

#[test]
fn kontext_forward_step_matches_reference() {
    let fx = load(&reference("flux_tiny_dev.kontext_forward.safetensors"));
    let (_s, files) = tiny_model("kontext-forward", Variant::Dev, Layout::SingleFiles);
    let m = model::load_transformer(
        &files,
        &LoadOptions {
            kontext: Some(true),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let full = forward_fixture(&m, &fx, "img_input", "img_input_ids");
    assert_transformer_close("kontext output (all tokens)", &full, &fx["output_full"]);
    // One production Euler step 0.7 -> 0.2 with the references appended and cut back.
    let emb = PromptEmbedding {
        txt: fx["txt"].clone(),
        vec: fx["y"].clone(),
    };
    let cond = pipeline::conditioning(&m, &emb, 2.5).unwrap();
    let refs = ReferenceTokens {
        tokens: fx["img_cond_seq"].clone(),
        ids: fx["img_cond_seq_ids"].clone(),
    };
    let x = sampler::denoise(
        &m,
        fx["img"].clone(),
        &fx["img_ids"],
        &cond,
        &sampler::Guides {
            reference: Some(&refs),
            ..Default::default()
        },
        &[0.7, 0.2],
        &mut continue_hook(),
    )
    .unwrap();
    let want = (&fx["img"] + (&fx["output"] * -0.5).unwrap()).unwrap();
    assert_transformer_close("kontext step", &x, &want);
}

/// The reference's conditioning image back to the uint8 pixels it was made from.
fn cond_pixels(t: &Tensor) -> RgbImage {
    let (_, _, h, w) = t.dims4().unwrap();
    let hwc = t
        .squeeze(0)
        .unwrap()
        .permute((1, 2, 0))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    RgbImage {
        width: w,
        height: h,
        data: hwc
            .iter()
            .map(|x| ((x + 1.0) * 127.5).round() as u8)
            .collect(),
    }
}

#[test]
fn kontext_sampling_matches_reference() {
    let fx = load(&reference("flux_tiny_dev.sample_kontext.safetensors"));
    let (_s, files) = tiny_model("kontext-sample", Variant::Dev, Layout::SingleFiles);
    let opts = LoadOptions {
        kontext: Some(true),
        ..LoadOptions::default()
    };
    let m = model::load_transformer(&files, &opts).unwrap();
    let ae = model::load_autoencoder(&files, &opts).unwrap();
    let pixels = cond_pixels(&fx["cond_image"]);
    // The fixture replaced the preferred list with the single entry 80x48, target 48x64.
    let mut req = KontextEdit::new("unused", pixels, 44);
    req.resolutions = vec![(80, 48)];
    req.size = Some((48, 64));
    req.steps = Some(4);
    let (refs, r) = req.prepare(Variant::Dev).unwrap();
    assert_eq!(
        (refs[0].width, refs[0].height, r.width, r.height, r.guidance),
        (80, 48, 48, 64, 2.5)
    );
    let (max, _) = errors(&refs[0].to_tensor(&Device::Cpu).unwrap(), &fx["cond_image"]);
    assert!(max < 1e-6, "conditioning pixels differ by {max}");
    let tokens = edit::reference_tokens(&ae, &refs, m.dtype(), &Device::Cpu).unwrap();
    assert_encoder_close("conditioning tokens", &tokens.tokens, &fx["img_cond_seq"]);
    assert_eq!(
        tokens.ids.to_vec3::<f32>().unwrap(),
        fx["img_cond_seq_ids"].to_vec3::<f32>().unwrap(),
        "ids exact"
    );

    let emb = PromptEmbedding {
        txt: fx["txt"].clone(),
        vec: fx["vec"].clone(),
    };
    let cond = pipeline::conditioning(&m, &emb, r.guidance).unwrap();
    let mut latents = Vec::new();
    let mut hook = |s: &sampler::StepInfo| {
        latents.push(s.latent.clone());
        ControlFlow::Continue(())
    };
    let latent =
        edit::sample_with_references(&m, &cond, &fx["noise"], &tokens, 4, &mut hook).unwrap();
    for (i, x) in latents.iter().enumerate() {
        assert_transformer_close(
            &format!("kontext step {}", i + 1),
            x,
            &fx["step_latents"].get(i + 1).unwrap(),
        );
    }
    assert_transformer_close("kontext final", &latent, &fx["final_unpacked"]);
    assert_transformer_close(
        "kontext decoded",
        &ae.decode(&latent).unwrap(),
        &fx["decoded_image"],
    );
}

fn small_image(w: usize, h: usize, seed: u8) -> RgbImage {
    let data = (0..w * h * 3)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

#[test]
fn multiple_references_get_their_own_ids() {
    let (_s, files) = tiny_model("kontext-multi", Variant::Dev, Layout::SingleFiles);
    let ae = model::load_autoencoder(&files, &LoadOptions::default()).unwrap();
    let refs = [small_image(48, 32, 1), small_image(32, 64, 2)];
    let t = edit::reference_tokens(&ae, &refs, candle_core::DType::F32, &Device::Cpu).unwrap();
    let ids = t.ids.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(t.tokens.dims(), &[1, 3 * 2 + 2 * 4, 64]);
    assert_eq!(ids.len(), 14);
    assert_eq!(
        &ids[..6],
        &[
            [1., 0., 0.],
            [1., 0., 1.],
            [1., 0., 2.],
            [1., 1., 0.],
            [1., 1., 1.],
            [1., 1., 2.]
        ]
        .map(|r| r.to_vec())
    );
    assert_eq!(ids[6], vec![2., 0., 0.]);
    assert_eq!(ids[13], vec![2., 3., 1.]);
}

#[test]
fn edit_runs_end_to_end_and_reference_matters() {
    let (_s, files) = tiny_model("kontext-e2e", Variant::Dev, Layout::Diffusers);
    let mut model = FluxModel::load(
        &files,
        &LoadOptions {
            kontext: Some(true),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let a_img = small_image(64, 48, 3);
    let b_img = small_image(64, 48, 90);
    let mut req = KontextEdit::new("make it night", a_img.clone(), 5);
    req.resolutions = vec![];
    req.steps = Some(2);
    req.t5_len = Some(16);
    let a = edit::edit(&mut model, &req, &mut continue_hook()).unwrap();
    assert_eq!(
        (a.image.width, a.image.height, a.meta.steps, a.meta.guidance),
        (64, 48, 2, 2.5)
    );
    req.references = vec![b_img.clone().into()];
    let b = edit::edit(&mut model, &req, &mut continue_hook()).unwrap();
    assert_ne!(a.image, b.image, "the reference image has no effect");
    req.references = vec![a_img.into(), b_img.into()];
    assert!(edit::edit(&mut model, &req, &mut continue_hook()).is_ok());
}

#[test]
fn snapping_picks_the_closest_aspect() {
    assert_eq!(
        edit::snapped_size(1920, 1080, &edit::KONTEXT_RESOLUTIONS),
        (1392, 752)
    );
    assert_eq!(
        edit::snapped_size(1000, 1000, &edit::KONTEXT_RESOLUTIONS),
        (1024, 1024)
    );
    assert_eq!(
        edit::snapped_size(300, 1000, &edit::KONTEXT_RESOLUTIONS),
        (672, 1568)
    );
    assert_eq!(edit::snapped_size(100, 70, &[]), (96, 64));
}

#[test]
fn img2img_strength_one_is_text_to_image_and_lower_strength_runs_fewer_steps() {
    let (_s, files) = tiny_model("img2img", Variant::Schnell, Layout::SingleFiles);
    let mut model = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let mut base = TextToImage::new("a green tree", 11);
    (base.width, base.height, base.t5_len) = (64, 48, Some(16));
    let t2i = pipeline::generate(&mut model, &base, &mut continue_hook()).unwrap();
    let init = small_image(64, 48, 7);
    let full = edit::img2img(
        &mut model,
        &ImageToImage {
            base: base.clone(),
            init: init.clone().into(),
            strength: 1.0,
        },
        &mut continue_hook(),
    )
    .unwrap();
    assert_eq!(full.image, t2i.image);
    let mut steps = 0;
    let mut count = |_: &sampler::StepInfo| {
        steps += 1;
        ControlFlow::Continue(())
    };
    let half = edit::img2img(
        &mut model,
        &ImageToImage {
            base: base.clone(),
            init: init.clone().into(),
            strength: 0.5,
        },
        &mut count,
    )
    .unwrap();
    assert_eq!(steps, 2, "4 schnell steps at strength 0.5");
    assert_ne!(half.image, t2i.image);
    let other = small_image(64, 48, 200);
    let half_other = edit::img2img(
        &mut model,
        &ImageToImage {
            base: base.clone(),
            init: other.clone().into(),
            strength: 0.5,
        },
        &mut continue_hook(),
    )
    .unwrap();
    assert_ne!(half.image, half_other.image, "the init image has no effect");
    for bad in [0.0, -1.0, 1.5, f32::NAN] {
        assert!(edit::img2img(
            &mut model,
            &ImageToImage {
                base: base.clone(),
                init: init.clone().into(),
                strength: bad
            },
            &mut continue_hook()
        )
        .is_err());
    }
}

#[test]
fn bad_edit_input_is_an_error() {
    let img = small_image(64, 48, 1);
    let view = |width, height, stride, format, data: &'static [u8]| ImageView {
        layout: PixelLayout {
            width,
            height,
            stride,
            format,
            bottom_up: false,
        },
        data,
    };
    let rgba: &'static [u8] = Box::leak(vec![0u8; 64 * 48 * 4].into_boxed_slice());
    let cases: Vec<(ImageView, &str)> = vec![
        (view(0, 48, 0, PixelFormat::Rgb8, &[]), "empty"),
        (view(64, 48, 64 * 3 - 1, PixelFormat::Rgb8, rgba), "stride"),
        (
            view(64, 48, 64 * 4, PixelFormat::Rgba8, &rgba[..100]),
            "buffer holds",
        ),
        (
            view(20000, 48, 20000 * 3, PixelFormat::Rgb8, rgba),
            "larger than",
        ),
    ];
    for (v, want) in cases {
        let e = v.to_rgb().unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    let ok = view(64, 48, 64 * 4, PixelFormat::Rgba8, rgba);
    let rgb = ok.to_rgb().unwrap();
    assert_eq!(
        (rgb.width, rgb.height, rgb.data.len()),
        (64, 48, 64 * 48 * 3),
        "RGBA with stride"
    );
    assert_eq!(&rgb.data[..3], &rgba[..3], "alpha dropped, RGB kept");
    assert!(KontextEdit::new("x", rgb, 0).prepare(Variant::Dev).is_ok());
    let e = KontextEdit::new("x", img.clone(), 0)
        .prepare(Variant::Schnell)
        .unwrap_err()
        .to_string();
    assert!(e.contains("schnell"), "{e}");
    let mut many = KontextEdit::new("x", img.clone(), 0);
    many.references = vec![img.clone().into(); edit::MAX_REFERENCES + 1];
    assert!(many
        .prepare(Variant::Dev)
        .unwrap_err()
        .to_string()
        .contains("at most"));
    let mut bad_size = KontextEdit::new("x", img.clone(), 0);
    bad_size.size = Some((50, 64));
    assert!(bad_size
        .prepare(Variant::Dev)
        .unwrap_err()
        .to_string()
        .contains("multiples of 16"));
}

#[test]
fn packing_roundtrip() {
    let z = Tensor::arange(0f32, 16. * 6. * 10., &Device::Cpu)
        .unwrap()
        .reshape((1, 16, 6, 10))
        .unwrap();
    let back = packing::unpack(&packing::pack(&z).unwrap(), 3, 5).unwrap();
    assert_eq!(
        back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        z.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}
