// Smoke test of the C# binding against the real library (run by run.sh under mono).
//
// Environment: FLUX_TEST_MODEL (model folder), FLUX_TEST_EXPECTED (raw RGB8, 64 x 48, of the
// text-to-image below), FLUX_TEST_OUT (a scratch folder), FLUX_ABI_LAYOUT (the C layout probe's
// output, see CheckAbiLayout), FLUX_TEST_LORAS (tests/fixtures/flux-lora: LoRAs that fit the tiny
// model; run.sh sets it); the library is found through LD_LIBRARY_PATH. Every check prints
// "ok" or "FAIL" with the reason; the exit code is 0 when all pass, 1 when any fails, 2 for a bad
// environment.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using Flux;

static class SmokeTest
{
    const int Width = 64, Height = 48;
    const int WaitMs = 120000;

    static int failures;

    sealed class CheckFailed : Exception
    {
        public CheckFailed(string message) : base(message) { }
    }

    static int Main()
    {
        string model = Environment.GetEnvironmentVariable("FLUX_TEST_MODEL");
        string expectedPath = Environment.GetEnvironmentVariable("FLUX_TEST_EXPECTED");
        string outDir = Environment.GetEnvironmentVariable("FLUX_TEST_OUT");
        string loraDir = Environment.GetEnvironmentVariable("FLUX_TEST_LORAS");
        if (model == null || expectedPath == null || outDir == null || loraDir == null)
        {
            Console.Error.WriteLine("set FLUX_TEST_MODEL, FLUX_TEST_EXPECTED, FLUX_TEST_OUT and FLUX_TEST_LORAS");
            return 2;
        }
        Func<string, string> lora = name => Path.Combine(loraDir, name + ".safetensors");
        if (!File.Exists(lora("lora_a_kohya")))
        {
            Console.Error.WriteLine("FLUX_TEST_LORAS (" + loraDir + ") has no lora_a_kohya.safetensors");
            return 2;
        }
        byte[] expected = File.ReadAllBytes(expectedPath);
        Directory.CreateDirectory(outDir);

        Check("library version and ABI", () =>
        {
            Expect(Regex.IsMatch(FluxLibrary.Version ?? "", @"^\d+\.\d+\.\d+"), "version is '" + FluxLibrary.Version + "'");
            Expect(FluxLibrary.AbiVersion == FluxLibrary.BindingAbiVersion,
                "library ABI " + FluxLibrary.AbiVersion + ", binding ABI " + FluxLibrary.BindingAbiVersion);
        });
        Check("defaults never write past the struct", CheckStructSizes);
        Check("mirrors match the C layout", CheckAbiLayout);

        using (var engine = Engine.Create(new EngineOptions { PreviewEvery = 1 }))
        using (var lighthouse = new Request())
        {
            var events = new List<FluxEventData>();
            Check("load model", () =>
            {
                using (Job load = engine.LoadModel(model))
                {
                    JobState state = RunToEnd(engine, load, events);
                    load.ThrowIfFailed();
                    Expect(state == JobState.Succeeded, "state " + state);
                }
            });

            byte[] rgb = null, rgba = null;
            ulong generated = 0;
            Check("text-to-image equals the expected pixels, in every format", () =>
            {
                lighthouse.Prompt = "a red lighthouse at dusk";
                lighthouse.Size = (Width, Height);
                lighthouse.Seed = 7;
                lighthouse.Steps = 3;
                lighthouse.T5Length = 32;
                Expect(lighthouse.Size.Equals((Width, Height)) && lighthouse.Steps == 3 && lighthouse.Guidance == null,
                    "getters: size " + lighthouse.Size + ", steps " + lighthouse.Steps + ", guidance " + lighthouse.Guidance);
                using (Job job = engine.Submit(lighthouse))
                {
                    generated = job.Id;
                    JobState state = RunToEnd(engine, job, events);
                    job.ThrowIfFailed();
                    Expect(state == JobState.Succeeded, "state " + state);
                    Expect(job.ImageSize.Equals((Width, Height)), "size " + job.ImageSize);
                    rgb = job.CopyImage(PixelFormat.Rgb8);
                    rgba = job.CopyImage(PixelFormat.Rgba8);
                    ExpectEqual(expected, rgb, "RGB8");
                    ExpectEqual(ToRgba(expected), rgba, "RGBA8");
                    ExpectEqual(ToBgra(ToRgba(expected)), job.CopyImage(PixelFormat.Bgra8), "BGRA8");
                    ExpectEqual(FlipRows(ToRgba(expected), Width * 4), job.CopyImage(PixelFormat.Rgba8, bottomUp: true), "bottom-up RGBA8");
                    float[] floats = job.CopyImageRgba32F();
                    Expect(floats.SequenceEqual(ToRgba(expected).Select(b => b / 255f)), "RGBA32F differs from the expected bytes / 255");
                    byte[] halves = job.CopyImage(PixelFormat.Rgba16F);
                    Expect(halves.Length == Width * Height * 8, "RGBA16F: " + halves.Length + " bytes");
                    byte[] want = ToRgba(expected);
                    for (int i = 0; i < want.Length; i++)
                    {
                        float got = HalfToFloat(BitConverter.ToUInt16(halves, i * 2));
                        Expect(Math.Abs(got - want[i] / 255f) < 5e-4f, "RGBA16F value " + i + " is " + got + ", expected " + want[i] / 255f);
                    }

                    // A padded destination: every row written, the padding left alone.
                    const int pitch = Width * 4 + 12;
                    var padded = Enumerable.Repeat((byte)0xAB, pitch * Height).ToArray();
                    using (Image image = Image.FromPixels(padded, new ImageLayout(Width, Height, PixelFormat.Rgba8, pitch)))
                    {
                        job.WriteImage(image);
                    }
                    for (int y = 0; y < Height; y++)
                    {
                        ExpectEqual(rgba.Skip(y * Width * 4).Take(Width * 4).ToArray(), padded.Skip(y * pitch).Take(Width * 4).ToArray(), "padded row " + y);
                        Expect(padded.Skip(y * pitch + Width * 4).Take(12).All(b => b == 0xAB), "padding of row " + y + " was written");
                    }

                    string png = Path.Combine(outDir, "lighthouse-ünïcødé.png");
                    job.Save(png);
                    byte[] head = File.ReadAllBytes(png).Take(8).ToArray();
                    Expect(head.SequenceEqual(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }), "Save did not write a PNG");
                }
            });

            Check("progress events polled", () =>
            {
                List<FluxEventData> mine = events.Where(e => e.JobId == generated).ToList();
                Expect(mine.Count > 0 && mine.First().Kind == FluxEventType.Queued && mine.Last().Kind == FluxEventType.Finished,
                    "events [" + string.Join(", ", mine.Select(e => e.Kind)) + "]");
                FluxEventData[] progress = mine.Where(e => e.Kind == FluxEventType.Progress).ToArray();
                Expect(progress.Select(e => e.Step).SequenceEqual(new[] { 1, 2, 3 }) && progress.All(e => e.Total == 3),
                    "progress [" + string.Join(", ", progress.Select(e => e.Step + "/" + e.Total)) + "]");
            });

            Check("preview events carry pixels", () =>
            {
                FluxEventData preview = events.FirstOrDefault(e => e.JobId == generated && e.Kind == FluxEventType.Preview);
                Expect(preview != null, "no preview event");
                Expect(preview.PreviewWidth > 0 && preview.PreviewRgb.Length == preview.PreviewWidth * preview.PreviewHeight * 3,
                    "preview " + preview.PreviewWidth + "x" + preview.PreviewHeight);
            });

            Check("Kontext edit: four references in four layouts equal four RGB8 ones", () =>
            {
                Expect(rgba != null, "no generated image");
                const int pitch = Width * 4 + 12;
                var padded = new byte[pitch * Height];
                for (int y = 0; y < Height; y++)
                {
                    Buffer.BlockCopy(rgba, y * Width * 4, padded, y * pitch, Width * 4);
                }
                byte[] bgraBottomUp = FlipRows(ToBgra(rgba), Width * 4);
                float[] floats = rgba.Select(b => b / 255f).ToArray();
                byte[] mixed, plain;
                using (var request = new Request("make it night") { Steps = 2, T5Length = 16, SnapReferences = false })
                {
                    // Host pixels are copied when added: the arrays are overwritten and the images
                    // destroyed before the job runs.
                    var copies = new[] { (byte[])rgb.Clone(), padded, bgraBottomUp };
                    using (Image a = Image.FromPixels(copies[0], new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                    using (Image b = Image.FromPixels(copies[1], new ImageLayout(Width, Height, PixelFormat.Rgba8, pitch)))
                    using (Image c = Image.FromPixels(copies[2], new ImageLayout(Width, Height, PixelFormat.Bgra8, 0, bottomUp: true)))
                    using (Image d = Image.FromPixels(floats, new ImageLayout(Width, Height, PixelFormat.Rgba32F)))
                    {
                        foreach (Image image in new[] { a, b, c, d })
                        {
                            request.AddReference(image);
                        }
                        var e = Throws<FluxException>(() => request.AddReference(a));
                        Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("at most 4"), "fifth reference: " + e.Code + " '" + e.Message + "'");
                    }
                    foreach (byte[] copy in copies)
                    {
                        Array.Clear(copy, 0, copy.Length);
                    }
                    Array.Clear(floats, 0, floats.Length);
                    mixed = Run(engine, request, events);
                    request.ClearImages();
                    using (Image image = Image.FromPixels(rgb, new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                    {
                        for (int i = 0; i < 4; i++)
                        {
                            request.AddReference(image);
                        }
                    }
                    plain = Run(engine, request, events);
                }
                ExpectEqual(plain, mixed, "edit with mixed layouts");
                Expect(!plain.SequenceEqual(rgb), "the edit returned its reference unchanged");
            });

            Check("image-to-image: an RGBA16F bottom-up init equals an RGB8 one", () =>
            {
                Expect(rgba != null, "no generated image");
                var halves = new ushort[Width * Height * 4];
                byte[] bottomUp = FlipRows(rgba, Width * 4);
                for (int i = 0; i < halves.Length; i++)
                {
                    halves[i] = FloatToHalf(bottomUp[i] / 255f);
                }
                byte[] fromHalves, fromRgb;
                using (var request = new Request("un phare rouge au crépuscule ✓") { Steps = 2, T5Length = 16 })
                {
                    using (Image init = Image.FromPixels(halves, new ImageLayout(Width, Height, PixelFormat.Rgba16F, 0, bottomUp: true)))
                    {
                        var e = Throws<FluxException>(() => request.SetInitImage(init, 0f));
                        Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("strength"), "strength 0: " + e.Code + " '" + e.Message + "'");
                        request.SetInitImage(init, 0.5f);
                    }
                    fromHalves = Run(engine, request, events);
                    using (Image init = Image.FromPixels(rgb, new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                    {
                        request.SetInitImage(init, 0.5f);
                        var e = Throws<FluxException>(() => request.AddReference(init));
                        Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("init image"), "reference after init: '" + e.Message + "'");
                    }
                    fromRgb = Run(engine, request, events);
                }
                ExpectEqual(fromRgb, fromHalves, "image-to-image from RGBA16F");
            });

            Check("a request is reusable, and ClearImages makes it text-to-image again", () =>
            {
                using (Image init = Image.FromPixels(rgb, new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                {
                    lighthouse.SetInitImage(init, 1f);
                }
                lighthouse.ClearImages();
                ExpectEqual(expected, Run(engine, lighthouse, events, PixelFormat.Rgb8), "text-to-image submitted again");
            });

            Check("LoRAs change the pixels, and ClearLoras restores them exactly", () =>
            {
                using (var request = new Request("a red lighthouse at dusk") { Size = (Width, Height), Seed = 7, Steps = 3, T5Length = 32 })
                {
                    Expect(request.Loras.Count == 0, "a new request has " + request.Loras.Count + " LoRAs");
                    request.AddLora(lora("lora_a_kohya"));
                    Expect(request.Loras.SequenceEqual(new[] { new Lora(lora("lora_a_kohya"), 1f) }),
                        "Loras: [" + string.Join(", ", request.Loras) + "]");
                    byte[] withA = Run(engine, request, events, PixelFormat.Rgb8);
                    int changed = expected.Zip(withA, (x, y) => x != y).Count(d => d);
                    Expect(changed > expected.Length / 10, "lora_a_kohya at 1.0 changed only " + changed + " of " + expected.Length + " bytes");
                    ExpectEqual(withA, Run(engine, request, events, PixelFormat.Rgb8), "the same LoRA job again");

                    request.ClearLoras();
                    Expect(request.Loras.Count == 0, "Loras after ClearLoras: " + request.Loras.Count);
                    ExpectEqual(expected, Run(engine, request, events, PixelFormat.Rgb8), "after ClearLoras");

                    request.AddLora(lora("lora_a_kohya"), 0.5f);
                    byte[] half = Run(engine, request, events, PixelFormat.Rgb8);
                    Expect(!half.SequenceEqual(withA) && !half.SequenceEqual(expected), "lora_a_kohya at 0.5 equals 1.0 or no LoRA");

                    request.ClearLoras();
                    request.AddLora(lora("lora_a_kohya"), 1f);
                    request.AddLora(lora("lora_d_kohya_single"), 0.7f);
                    Expect(request.Loras.Count == 2 && request.Loras[1].Path == lora("lora_d_kohya_single") && request.Loras[1].Strength == 0.7f,
                        "Loras: [" + string.Join(", ", request.Loras) + "]");
                    byte[] two = Run(engine, request, events, PixelFormat.Rgb8);
                    Expect(!two.SequenceEqual(withA) && !two.SequenceEqual(expected), "two LoRAs equal lora_a_kohya alone or no LoRA");
                    request.ClearLoras();
                    request.AddLora(lora("lora_d_kohya_single"), 0.7f);
                    byte[] dOnly = Run(engine, request, events, PixelFormat.Rgb8);
                    Expect(!two.SequenceEqual(dOnly) && !dOnly.SequenceEqual(expected), "two LoRAs equal lora_d_kohya_single alone, or it changes nothing");

                    // The diffusers/PEFT and XLabs layouts reach the engine too.
                    foreach (string name in new[] { "lora_b_peft", "lora_c_xlabs" })
                    {
                        request.ClearLoras();
                        request.AddLora(lora(name));
                        byte[] got = Run(engine, request, events, PixelFormat.Rgb8);
                        Expect(!got.SequenceEqual(expected) && !got.SequenceEqual(withA), name + " changed nothing, or equals lora_a_kohya");
                    }

                    // Submitting copies the LoRA list: a job keeps its LoRAs when the request changes.
                    request.ClearLoras();
                    request.AddLora(lora("lora_a_kohya"));
                    using (Job job = engine.Submit(request))
                    {
                        request.ClearLoras();
                        Expect(RunToEnd(engine, job, events) == JobState.Succeeded, "job state " + job.Status.State);
                        ExpectEqual(withA, job.CopyImage(PixelFormat.Rgb8), "a LoRA job whose request was cleared after submitting");
                    }
                    ExpectEqual(expected, Run(engine, request, events, PixelFormat.Rgb8), "the cleared request");
                }
            });

            Check("AddLora refuses non-finite strengths, missing files and a 17th LoRA", () =>
            {
                using (var request = new Request("x"))
                {
                    ExpectRefused(() => request.AddLora(lora("lora_a_kohya"), float.NaN), "not a finite number");
                    ExpectRefused(() => request.AddLora(lora("lora_a_kohya"), float.PositiveInfinity), "not a finite number");
                    string missing = Path.Combine(loraDir, "no-such-lora.safetensors");
                    ExpectRefused(() => request.AddLora(missing), "does not exist");
                    ExpectRefused(() => request.AddLora(loraDir), "does not exist");
                    Throws<ArgumentNullException>(() => request.AddLora(null));
                    Expect(request.Loras.Count == 0, "refused LoRAs were kept: " + request.Loras.Count);
                    for (int i = 0; i < 16; i++)
                    {
                        request.AddLora(lora("lora_c_xlabs"), -0.25f * i);
                    }
                    ExpectRefused(() => request.AddLora(lora("lora_c_xlabs")), "at most 16");
                    Expect(request.Loras.Count == 16 && request.Loras[15].Strength == -3.75f, "Loras after the 17th: " + request.Loras.Count);
                    request.ClearLoras();
                    request.AddLora(lora("lora_c_xlabs"));
                    Expect(request.Loras.Count == 1, "ClearLoras did not make room: " + request.Loras.Count);
                }
            });

            Check("a file that is not a LoRA fails the job, naming it; the engine goes on", () =>
            {
                using (var request = new Request("a red lighthouse at dusk") { Size = (Width, Height), Seed = 7, Steps = 3, T5Length = 32 })
                {
                    // Merged model weights: a safetensors file, but no LoRA in it.
                    request.AddLora(lora("merged_kohya_a_bfl"));
                    using (Job job = engine.Submit(request))
                    {
                        JobState state = RunToEnd(engine, job, events);
                        Expect(state == JobState.Failed, "state " + state);
                        Expect(job.Error != null && job.Error.Contains("merged_kohya_a_bfl") && job.Error.Contains("LoRA"), "error '" + job.Error + "'");
                        var e = Throws<FluxException>(() => job.ThrowIfFailed());
                        Expect(e.Code == FluxResult.JobFailed, "code " + e.Code);
                    }
                    request.ClearLoras();
                    ExpectEqual(expected, Run(engine, request, events, PixelFormat.Rgb8), "the job after the failed one");
                }
            });

            Check("true CFG changes the image; a Fill input on a plain model fails its job alone", () =>
            {
                using (var request = new Request("a red lighthouse at dusk") { Size = (Width, Height), Seed = 7, Steps = 3, T5Length = 32 })
                {
                    request.SetNegativePrompt("fog", 1f);
                    ExpectEqual(expected, Run(engine, request, events, PixelFormat.Rgb8), "scale 1: true CFG off");
                    request.SetNegativePrompt("fog", 4f);
                    byte[] guided = Run(engine, request, events, PixelFormat.Rgb8);
                    Expect(!guided.SequenceEqual(expected), "true CFG at scale 4 left the image as it was");
                    ExpectRefused(() => request.SetNegativePrompt("fog", float.NaN), "true CFG scale");
                    ExpectRefused(() => request.SetNegativePrompt("fog", 0.5f), "true CFG scale");
                    Throws<ArgumentNullException>(() => request.SetNegativePrompt(null, 4f));
                    using (Image image = Image.FromPixels(rgb, new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                    {
                        request.SetFill(image, image);
                    }
                    using (Job job = engine.Submit(request))
                    {
                        JobState state = RunToEnd(engine, job, events);
                        Expect(state == JobState.Failed && job.Error != null && job.Error.Contains("not a FLUX.1 fill model"),
                            "state " + state + ", error '" + job.Error + "'");
                    }
                    request.ClearImages();
                    using (Image image = Image.FromPixels(rgb, new ImageLayout(Width, Height, PixelFormat.Rgb8)))
                    {
                        request.AddReduxImage(image);
                    }
                    using (Job job = engine.Submit(request))
                    {
                        JobState state = RunToEnd(engine, job, events);
                        Expect(state == JobState.Failed && job.Error != null && job.Error.Contains("no Redux encoder"),
                            "state " + state + ", error '" + job.Error + "'");
                    }
                    request.ClearImages();
                    ExpectEqual(guided, Run(engine, request, events, PixelFormat.Rgb8), "the job after the failed one");
                }
            });

            Check("residency and memory budget", () =>
            {
                Residency before = engine.GetResidency();
                Expect(before.Transformer > 0 && before.Autoencoder > 0, "nothing resident after loading");
                engine.SetMemoryBudget(1L << 40);
                Expect(engine.GetResidency().Budget == 1UL << 40, "budget not applied");
                engine.SetMemoryReserve(0);
                // One transformer block at a time, streamed from host memory.
                engine.SetPlan(new ResidencyPlan { TextPlacement = TextPlacement.Released, StreamWindow = 1 });
                using (var request = new Request("a streamed job") { Size = (Width, Height), Steps = 1 })
                using (Job job = engine.Submit(request))
                {
                    Expect(job.Wait(WaitMs) == JobState.Succeeded, "streamed job");
                }
                Residency streamed = engine.GetResidency();
                Expect(streamed.Plan.StreamWindow == 1 && streamed.ReleasesTextEncoders, "plan not reported");
                engine.SetPlan(null);
            });

            Check("cancel a running job", () =>
            {
                using (var request = new Request("a long job") { Size = (512, 512), Steps = 28 })
                using (Job job = engine.Submit(request))
                {
                    DateTime deadline = DateTime.UtcNow.AddMilliseconds(WaitMs);
                    while (job.Status.State == JobState.Queued && DateTime.UtcNow < deadline)
                    {
                        Thread.Sleep(5);
                    }
                    CancelOutcome outcome = job.Cancel();
                    Expect(outcome != CancelOutcome.AlreadyFinished, "the job finished before it was cancelled");
                    JobState state = job.Wait(WaitMs);
                    Expect(state == JobState.Cancelled, "state " + state);
                    var e = Throws<FluxException>(() => job.CopyImage(PixelFormat.Rgb8));
                    Expect(e.Code == FluxResult.NotReady, "code " + e.Code);
                }
            });

            Check("the library refuses bad settings, naming them", () =>
            {
                using (var request = new Request())
                {
                    var e = Throws<FluxException>(() => request.Size = (100, 48));
                    Expect(e.Code == FluxResult.InvalidArgument, "code " + e.Code);
                    Expect(e.Message.Contains("100x48") && e.Message.Contains("multiples of 16"), "message '" + e.Message + "'");
                    Expect(request.Size == null, "a refused size was kept: " + request.Size);
                    ExpectRefused(() => request.Steps = 0, "steps 0");
                    ExpectRefused(() => request.Guidance = float.NaN, "guidance NaN");
                    ExpectRefused(() => request.T5Length = 1, "T5 length 1");
                    ExpectRefused(() => engine.Submit(request), "no prompt");
                }
            });

            Check("host images check their memory", () =>
            {
                var e = Throws<FluxException>(() => Image.FromPixels(new byte[10], new ImageLayout(Width, Height, PixelFormat.Rgb8)));
                Expect(e.Code == FluxResult.BufferTooSmall, "short buffer: " + e.Code);
                e = Throws<FluxException>(() => Image.FromPixels(new byte[Width * Height * 4], new ImageLayout(Width, Height, PixelFormat.Rgba8, Width)));
                Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("stride"), "short row pitch: '" + e.Message + "'");
                using (var request = new Request("x") { Size = (Width, Height), Steps = 1, T5Length = 16 })
                using (Job job = engine.Submit(request))
                using (Image small = Image.FromPixels(new byte[32 * 32 * 4], new ImageLayout(32, 32)))
                {
                    Expect(job.Wait(WaitMs) == JobState.Succeeded, "job state " + job.Status.State);
                    e = Throws<FluxException>(() => job.WriteImage(small));
                    Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("64x48"), "wrong size: '" + e.Message + "'");
                }
            });

            Check("GPU images: descriptions reach the library; a CPU engine refuses them", () =>
            {
                var layout = new ImageLayout(Width, Height, PixelFormat.Rgba8);
                var e = Throws<FluxException>(() => engine.DeviceUuid.ToString());
                Expect(e.Code == FluxResult.Unsupported, "DeviceUuid: " + e.Code);
                e = Throws<FluxException>(() => Image.FromCudaPointer(engine, layout, 0x10000));
                Expect(e.Code == FluxResult.Unsupported, "CUDA pointer: " + e.Code + " '" + e.Message + "'");
                e = Throws<FluxException>(() => Image.FromCudaPointer(engine, new ImageLayout(Width, Height, PixelFormat.Rgb8), 0x10000));
                Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains("GPU images are"), "RGB8 GPU image: '" + e.Message + "'");
                var uuid = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
                Func<ExternalMemory> memory = () => new ExternalMemory { Handle = 3, Size = (ulong)layout.ByteLength, DeviceUuid = uuid };
                ExternalMemory offset = memory();
                offset.Offset = 4;
                e = Throws<FluxException>(() => Image.ImportMemory(engine, layout, offset));
                Expect(e.Message.Contains("needs 12292 bytes") && e.Message.Contains("has 12288"), "offset past the allocation: '" + e.Message + "'");
                ExternalMemory noUuid = memory();
                noUuid.DeviceUuid = null;
                e = Throws<FluxException>(() => Image.ImportMemory(engine, layout, noUuid));
                Expect(e.Message.Contains("device UUID"), "no device UUID: '" + e.Message + "'");
                e = Throws<FluxException>(() => Image.ImportMemory(engine, layout, memory(), new GpuSemaphore { Handle = 1L << 40 }));
                Expect(e.Message.Contains("semaphore.handle 1099511627776"), "semaphore fd out of range: '" + e.Message + "'");
                e = Throws<FluxException>(() => Image.ImportMemory(engine, layout, memory(), new GpuSemaphore { HandleType = (SemaphoreType)9, Handle = 4 }));
                Expect(e.Message.Contains("semaphore.handle_type"), "bad semaphore type: '" + e.Message + "'");
                ExternalMemory win32 = memory();
                win32.HandleType = ExternalMemoryType.OpaqueWin32;
                win32.Dedicated = true;
                e = Throws<FluxException>(() => Image.ImportMemory(engine, layout, win32, new GpuSemaphore { HandleType = SemaphoreType.TimelineFd, Handle = 4 }));
                Expect(e.Code == FluxResult.Unsupported, "valid import on a CPU engine: " + e.Code + " '" + e.Message + "'");
            });
        }

        Check("disposed engines, requests and images throw ObjectDisposedException", () =>
        {
            Engine engine = Engine.Create();
            Job job = engine.UnloadModel();
            var request = new Request("x");
            var gone = new Request("x");
            gone.Dispose();
            Image image = Image.FromPixels(new byte[16 * 16 * 4], new ImageLayout(16, 16));
            image.Dispose();
            // Refused before the call, so the engine and the request still close afterwards.
            Throws<ObjectDisposedException>(() => engine.Submit(gone));
            Throws<ObjectDisposedException>(() => job.WriteImage(image));
            Throws<ObjectDisposedException>(() => request.AddReference(image));
            Throws<ObjectDisposedException>(() => gone.Seed = 1);
            engine.Dispose();
            Throws<ObjectDisposedException>(() => engine.Submit(request));
            Throws<ObjectDisposedException>(() => engine.PollEvent(out _));
            Throws<ObjectDisposedException>(() => job.Cancel());
            request.Dispose();
            Throws<ObjectDisposedException>(() => request.Seed = 1);
            job.Dispose();
            engine.Dispose();
            request.Dispose();
            image.Dispose();
        });

        Check("callback mode delivers events through the static callback", () =>
        {
            using (var engine = Engine.Create(new EngineOptions { EventDelivery = EventDelivery.Callback }))
            using (Job load = engine.LoadModel(model))
            {
                var events = new List<FluxEventData>();
                JobState state = RunToEnd(engine, load, events);
                load.ThrowIfFailed();
                Expect(state == JobState.Succeeded, "state " + state);
                FluxEventType[] kinds = events.Where(e => e.JobId == load.Id).Select(e => e.Kind).ToArray();
                Expect(kinds.FirstOrDefault() == FluxEventType.Queued && kinds.LastOrDefault() == FluxEventType.Finished,
                    "events [" + string.Join(", ", kinds) + "]");
            }
        });

        Console.WriteLine(failures == 0 ? "all checks passed" : failures + " check(s) failed");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>Waits for <paramref name="job"/> while polling events into <paramref name="sink"/>; returns its final state.</summary>
    static JobState RunToEnd(Engine engine, Job job, List<FluxEventData> sink)
    {
        DateTime deadline = DateTime.UtcNow.AddMilliseconds(WaitMs);
        JobState state;
        do
        {
            Drain(engine, sink);
            state = job.Wait(10);
        } while (!state.IsTerminal() && DateTime.UtcNow < deadline);
        Drain(engine, sink);
        return state;
    }

    static void Drain(Engine engine, List<FluxEventData> sink)
    {
        FluxEventData ev;
        while (engine.PollEvent(out ev))
        {
            sink.Add(ev);
        }
    }

    /// <summary>Submits <paramref name="request"/>, waits for it and returns its image in <paramref name="format"/>.</summary>
    static byte[] Run(Engine engine, Request request, List<FluxEventData> sink, PixelFormat format = PixelFormat.Rgba8)
    {
        using (Job job = engine.Submit(request))
        {
            JobState state = RunToEnd(engine, job, sink);
            job.ThrowIfFailed();
            Expect(state == JobState.Succeeded, "state " + state);
            Expect(job.ImageSize.Equals((Width, Height)), "size " + job.ImageSize);
            return job.CopyImage(format);
        }
    }

    /// <summary><paramref name="action"/> throws FluxException (InvalidArgument) whose message contains <paramref name="words"/>.</summary>
    static void ExpectRefused(Action action, string words)
    {
        var e = Throws<FluxException>(action);
        Expect(e.Code == FluxResult.InvalidArgument && e.Message.Contains(words), "'" + words + "': " + e.Code + " '" + e.Message + "'");
    }

    [DllImport("flux_engine")] static extern void flux_engine_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_model_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_residency_plan_defaults(byte[] plan, uint size);
    [DllImport("flux_engine")] static extern void flux_image_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_external_memory_defaults(byte[] memory, uint size);
    [DllImport("flux_engine")] static extern void flux_semaphore_defaults(byte[] semaphore, uint size);

    /// <summary>Each *_defaults writes exactly the binding's size of its struct, never past it.</summary>
    static void CheckStructSizes()
    {
        var defaults = new Dictionary<string, Action<byte[], uint>>
        {
            { "FluxEngineDesc", flux_engine_desc_defaults },
            { "FluxModelDesc", flux_model_desc_defaults },
            { "FluxResidencyPlan", flux_residency_plan_defaults },
            { "FluxImageDesc", flux_image_desc_defaults },
            { "FluxExternalMemory", flux_external_memory_defaults },
            { "FluxSemaphore", flux_semaphore_defaults },
        };
        foreach (KeyValuePair<string, Action<byte[], uint>> d in defaults)
        {
            int size = Marshal.SizeOf(typeof(Engine).Assembly.GetType("Flux.Native+" + d.Key, true));
            var buffer = new byte[size + 64];
            for (int i = 0; i < buffer.Length; i++) buffer[i] = 0xEE;
            d.Value(buffer, (uint)size);
            Expect(BitConverter.ToInt32(buffer, 0) == size, d.Key + ": struct_size is not the size given");
            bool untouched = true;
            for (int i = size; i < buffer.Length; i++) untouched &= buffer[i] == 0xEE;
            Expect(untouched, d.Key + ": the library wrote past the size it was given");
        }
    }

    /// <summary>
    /// Every struct mirror in Flux.Native has the header's fields, in order, at the offsets a C
    /// compiler gives them, and its size; every enum has the header's values. FLUX_ABI_LAYOUT is
    /// the C probe's output: "struct NAME SIZE", "field NAME FIELD OFFSET", "enum CONSTANT VALUE".
    /// </summary>
    static void CheckAbiLayout()
    {
        string path = Environment.GetEnvironmentVariable("FLUX_ABI_LAYOUT");
        Expect(path != null, "FLUX_ABI_LAYOUT is not set");
        var sizes = new Dictionary<string, int>();
        var fields = new Dictionary<string, List<string>>();
        var enums = new Dictionary<string, long>();
        foreach (string line in File.ReadAllLines(path))
        {
            string[] w = line.Split(' ');
            if (w[0] == "struct") { sizes[w[1]] = int.Parse(w[2]); fields[w[1]] = new List<string>(); }
            else if (w[0] == "field") fields[w[1]].Add(w[2] + "@" + w[3]);
            else if (w[0] == "enum") enums[w[1]] = long.Parse(w[2]);
        }
        var flags = System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public;
        Type native = typeof(Engine).Assembly.GetType("Flux.Native", true);
        var mirrored = new List<string>();
        foreach (Type t in native.GetNestedTypes(System.Reflection.BindingFlags.NonPublic))
        {
            if (!t.IsValueType || t.IsEnum || !t.Name.StartsWith("Flux")) continue;
            Expect(sizes.ContainsKey(t.Name), t.Name + " is not in the header");
            var got = t.GetFields(flags).Select(f => f.Name + "@" + Marshal.OffsetOf(t, f.Name)).ToList();
            Expect(got.SequenceEqual(fields[t.Name]), t.Name + ": fields " + string.Join(",", got) + " but the header has " + string.Join(",", fields[t.Name]));
            Expect(Marshal.SizeOf(t) == sizes[t.Name], t.Name + ": size " + Marshal.SizeOf(t) + " but the header's is " + sizes[t.Name]);
            mirrored.Add(t.Name);
        }
        var missing = sizes.Keys.Except(mirrored).ToList();
        Expect(missing.Count == 0, "header structs without a mirror: " + string.Join(", ", missing));
        var prefixes = new Dictionary<Type, string>
        {
            { typeof(FluxResult), "FLUX_RESULT_" }, { typeof(Device), "FLUX_DEVICE_" }, { typeof(DType), "FLUX_DTYPE_" },
            { typeof(PixelFormat), "FLUX_PIXEL_FORMAT_" }, { typeof(JobState), "FLUX_JOB_STATE_" },
            { typeof(CancelOutcome), "FLUX_CANCEL_OUTCOME_" }, { typeof(FluxEventType), "FLUX_EVENT_TYPE_" },
            { typeof(TextPlacement), "FLUX_TEXT_PLACEMENT_" }, { typeof(LogLevel), "FLUX_LOG_LEVEL_" },
            { typeof(Engine).Assembly.GetType("Flux.FluxKontext", true), "FLUX_KONTEXT_" },
            { typeof(ExternalMemoryType), "FLUX_EXTERNAL_MEMORY_TYPE_" }, { typeof(SemaphoreType), "FLUX_SEMAPHORE_TYPE_" },
        };
        foreach (KeyValuePair<Type, string> e in prefixes)
        {
            // C names compared without case or underscores: FLUX_CANCEL_OUTCOME_ALREADY_FINISHED is AlreadyFinished.
            var want = enums.Where(c => c.Key.StartsWith(e.Value))
                .ToDictionary(c => c.Key.Substring(e.Value.Length).Replace("_", "").ToLowerInvariant(), c => c.Value);
            var have = Enum.GetValues(e.Key).Cast<object>()
                .ToDictionary(v => v.ToString().ToLowerInvariant(), v => Convert.ToInt64(v));
            Expect(want.Count == have.Count && want.All(c => have.ContainsKey(c.Key) && have[c.Key] == c.Value),
                e.Key.Name + ": " + string.Join(",", have.Select(c => c.Key + "=" + c.Value)) + " but the header has " + string.Join(",", want.Select(c => c.Key + "=" + c.Value)));
        }
        var unmirrored = enums.Keys.Where(c => !prefixes.Values.Any(c.StartsWith)).ToList();
        Expect(unmirrored.Count == 0, "header enum constants without a mirror: " + string.Join(", ", unmirrored));
    }

    static byte[] ToRgba(byte[] rgb)
    {
        var rgba = new byte[rgb.Length / 3 * 4];
        for (int i = 0, j = 0; i < rgb.Length; i += 3, j += 4)
        {
            rgba[j] = rgb[i];
            rgba[j + 1] = rgb[i + 1];
            rgba[j + 2] = rgb[i + 2];
            rgba[j + 3] = 255;
        }
        return rgba;
    }

    static byte[] ToBgra(byte[] rgba)
    {
        var bgra = (byte[])rgba.Clone();
        for (int i = 0; i < bgra.Length; i += 4)
        {
            bgra[i] = rgba[i + 2];
            bgra[i + 2] = rgba[i];
        }
        return bgra;
    }

    /// <summary>A copy of <paramref name="pixels"/> with its rows of <paramref name="rowBytes"/> in reverse order.</summary>
    static byte[] FlipRows(byte[] pixels, int rowBytes)
    {
        var flipped = new byte[pixels.Length];
        int rows = pixels.Length / rowBytes;
        for (int y = 0; y < rows; y++)
        {
            Buffer.BlockCopy(pixels, y * rowBytes, flipped, (rows - 1 - y) * rowBytes, rowBytes);
        }
        return flipped;
    }

    static float HalfToFloat(ushort h)
    {
        int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
        double v = exponent == 0 ? mantissa * Math.Pow(2, -24) : (1 + mantissa / 1024.0) * Math.Pow(2, exponent - 15);
        return (float)((h & 0x8000) != 0 ? -v : v);
    }

    /// <summary>The IEEE half float nearest to <paramref name="value"/>, in [0, 1].</summary>
    static ushort FloatToHalf(float value)
    {
        if (value == 0)
        {
            return 0;
        }
        double v = value;
        int exponent = 0;
        while (v < 1)
        {
            v *= 2;
            exponent--;
        }
        if (exponent < -14)
        {
            return (ushort)Math.Round(value / Math.Pow(2, -24));
        }
        int mantissa = (int)Math.Round((v - 1) * 1024);
        if (mantissa == 1024)
        {
            mantissa = 0;
            exponent++;
        }
        return (ushort)(((exponent + 15) << 10) | mantissa);
    }

    static void Check(string name, Action body)
    {
        try
        {
            body();
            Console.WriteLine("ok   " + name);
        }
        catch (Exception e)
        {
            failures++;
            string why = e is CheckFailed ? e.Message : e.GetType().Name + ": " + e.Message;
            Console.WriteLine("FAIL " + name + ": " + why);
        }
    }

    static void Expect(bool condition, string what)
    {
        if (!condition)
        {
            throw new CheckFailed(what);
        }
    }

    static void ExpectEqual(byte[] expected, byte[] actual, string what)
    {
        Expect(expected.Length == actual.Length, what + ": " + actual.Length + " bytes, expected " + expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Expect(expected[i] == actual[i], what + ": first difference at byte " + i + " (" + actual[i] + ", expected " + expected[i] + ")");
        }
    }

    static T Throws<T>(Action action) where T : Exception
    {
        try
        {
            action();
        }
        catch (T e)
        {
            return e;
        }
        throw new CheckFailed("no " + typeof(T).Name + " was thrown");
    }
}
