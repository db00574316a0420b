// Smoke test of the C# binding against the real library (run by run.sh under mono).
//
// Environment: FLUX_TEST_MODEL (model folder), FLUX_TEST_EXPECTED (raw RGB8, 64 x 48, of the
// text-to-image below), FLUX_TEST_OUT (a scratch folder); the library is found through
// LD_LIBRARY_PATH. Every check prints "ok" or "FAIL" with the reason; the exit code is 0 when
// all pass, 1 when any fails, 2 for a bad environment.
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
        if (model == null || expectedPath == null || outDir == null)
        {
            Console.Error.WriteLine("set FLUX_TEST_MODEL, FLUX_TEST_EXPECTED and FLUX_TEST_OUT");
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
            Check("text-to-image equals the expected pixels", () =>
            {
                var request = new TextToImageRequest
                {
                    Prompt = "a red lighthouse at dusk", Width = Width, Height = Height, Seed = 7, Steps = 3, T5Length = 32,
                };
                using (Job job = engine.TextToImage(request))
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
                    float[] floats = job.CopyImageRgba32F();
                    Expect(floats.SequenceEqual(ToRgba(expected).Select(b => b / 255f)), "RGBA32F differs from the expected bytes / 255");

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

            Check("Kontext edit (RGB8 + padded RGBA8 references)", () =>
            {
                Expect(rgba != null, "no generated image");
                const int stride = Width * 4 + 12;
                var padded = new byte[stride * Height];
                for (int y = 0; y < Height; y++)
                {
                    Buffer.BlockCopy(rgba, y * Width * 4, padded, y * stride, Width * 4);
                }
                var request = new EditRequest { Prompt = "make it night", Steps = 2, T5Length = 16, Snap = false };
                request.Images.Add(new ImageInput(rgb, Width, Height, PixelFormat.Rgb8));
                request.Images.Add(new ImageInput(padded, Width, Height, PixelFormat.Rgba8, stride));
                using (Job job = engine.Edit(request))
                {
                    JobState state = RunToEnd(engine, job, events);
                    job.ThrowIfFailed();
                    Expect(state == JobState.Succeeded, "state " + state);
                    Expect(job.ImageSize.Equals((Width, Height)), "size " + job.ImageSize);
                }
            });

            Check("image-to-image with a non-ASCII prompt", () =>
            {
                Expect(rgb != null, "no generated image");
                var request = new ImageToImageRequest
                {
                    Prompt = "un phare rouge au crépuscule ✓", Init = new ImageInput(rgb, Width, Height, PixelFormat.Rgb8),
                    Strength = 0.5f, Steps = 2, T5Length = 16,
                };
                using (Job job = engine.ImageToImage(request))
                {
                    JobState state = RunToEnd(engine, job, events);
                    job.ThrowIfFailed();
                    Expect(state == JobState.Succeeded, "state " + state);
                    Expect(job.ImageSize.Equals((Width, Height)), "size " + job.ImageSize);
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
                var request = new TextToImageRequest { Prompt = "a streamed job", Width = Width, Height = Height, Steps = 1 };
                using (Job job = engine.TextToImage(request))
                {
                    Expect(job.Wait(WaitMs) == JobState.Succeeded, "streamed job");
                }
                Residency streamed = engine.GetResidency();
                Expect(streamed.Plan.StreamWindow == 1 && streamed.ReleasesTextEncoders, "plan not reported");
                engine.SetPlan(null);
            });

            Check("cancel a running job", () =>
            {
                var request = new TextToImageRequest { Prompt = "a long job", Width = 512, Height = 512, Steps = 28 };
                using (Job job = engine.TextToImage(request))
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

            Check("bad size throws InvalidArgument naming the size", () =>
            {
                var e = Throws<FluxException>(() => engine.TextToImage(new TextToImageRequest { Prompt = "x", Width = 100, Height = 48 }));
                Expect(e.Code == FluxResult.InvalidArgument, "code " + e.Code);
                Expect(e.Message.Contains("100x48") && e.Message.Contains("multiples of 16"), "message '" + e.Message + "'");
            });

            Check("short pixel buffer is refused before the call", () =>
            {
                Throws<ArgumentException>(() => new ImageInput(new byte[10], Width, Height, PixelFormat.Rgb8));
            });
        }

        Check("a disposed engine throws ObjectDisposedException", () =>
        {
            Engine engine = Engine.Create();
            Job job = engine.UnloadModel();
            engine.Dispose();
            Throws<ObjectDisposedException>(() => engine.TextToImage(new TextToImageRequest { Prompt = "x" }));
            Throws<ObjectDisposedException>(() => engine.PollEvent(out _));
            Throws<ObjectDisposedException>(() => job.Cancel());
            job.Dispose();
            engine.Dispose();
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

    [DllImport("flux_engine")] static extern void flux_engine_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_model_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_text_to_image_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_edit_desc_defaults(byte[] desc, uint size);
    [DllImport("flux_engine")] static extern void flux_image_to_image_desc_defaults(byte[] desc, uint size);

    /// <summary>Each *_desc_defaults writes exactly the binding's size of its struct, never past it.</summary>
    static void CheckStructSizes()
    {
        var defaults = new Dictionary<string, Action<byte[], uint>>
        {
            { "FluxEngineDesc", flux_engine_desc_defaults },
            { "FluxModelDesc", flux_model_desc_defaults },
            { "FluxTextToImageDesc", flux_text_to_image_desc_defaults },
            { "FluxEditDesc", flux_edit_desc_defaults },
            { "FluxImageToImageDesc", flux_image_to_image_desc_defaults },
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
        int mirrors = 0;
        foreach (Type t in typeof(Engine).Assembly.GetType("Flux.Native", true).GetNestedTypes(System.Reflection.BindingFlags.NonPublic))
        {
            if (!t.IsValueType || t.IsEnum || !t.Name.StartsWith("Flux")) continue;
            Expect(sizes.ContainsKey(t.Name), t.Name + " is not in the header");
            var got = t.GetFields(flags).Select(f => f.Name + "@" + Marshal.OffsetOf(t, f.Name)).ToList();
            Expect(got.SequenceEqual(fields[t.Name]), t.Name + ": fields " + string.Join(",", got) + " but the header has " + string.Join(",", fields[t.Name]));
            Expect(Marshal.SizeOf(t) == sizes[t.Name], t.Name + ": size " + Marshal.SizeOf(t) + " but the header's is " + sizes[t.Name]);
            mirrors++;
        }
        Expect(mirrors >= 10, "only " + mirrors + " struct mirrors found");
        var prefixes = new Dictionary<Type, string>
        {
            { typeof(FluxResult), "FLUX_RESULT_" }, { typeof(Device), "FLUX_DEVICE_" }, { typeof(DType), "FLUX_DTYPE_" },
            { typeof(PixelFormat), "FLUX_PIXEL_FORMAT_" }, { typeof(JobState), "FLUX_JOB_STATE_" },
            { typeof(CancelOutcome), "FLUX_CANCEL_OUTCOME_" }, { typeof(FluxEventType), "FLUX_EVENT_TYPE_" },
            { typeof(TextPlacement), "FLUX_TEXT_PLACEMENT_" }, { typeof(LogLevel), "FLUX_LOG_LEVEL_" },
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
