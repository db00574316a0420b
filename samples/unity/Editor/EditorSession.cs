using System;
using System.IO;
using UnityEditor;
using UnityEngine;

namespace Flux.Editor
{
    /// <summary>
    /// The Flux Engine window's engine and its one job at a time. The engine is created on the first
    /// job and lives until Dispose. Jobs run on the engine's worker thread; everything here, Unity
    /// API included, runs on the main thread: <see cref="Update"/> is called from
    /// EditorApplication.update and polls the engine's events.
    /// </summary>
    internal sealed class EditorSession : IDisposable
    {
        const string OutputFolder = "Assets/FluxEngine";

        Engine engine;
        string loadedFolder;
        Job load;
        Job job;
        Texture2D preview;

        /// <summary>The running job's progress in [0, 1].</summary>
        public float Progress { get; private set; }

        /// <summary>What is happening, in a few words.</summary>
        public string Status { get; private set; } = "Idle";

        /// <summary>The running job's latest preview (owned by the session).</summary>
        public Texture2D Preview { get { return preview; } }

        /// <summary>The last result, as the imported PNG asset.</summary>
        public Texture2D Result { get; private set; }

        /// <summary>True while a job is queued or running.</summary>
        public bool IsBusy { get { return job != null; } }

        /// <summary>Cancels the running job; it stops within one step.</summary>
        public void Cancel()
        {
            if (job != null)
            {
                job.Cancel();
            }
        }

        /// <summary>
        /// Starts the job <paramref name="request"/> describes (text-to-image or a Kontext edit) with
        /// the model in <paramref name="modelFolder"/>. The request may be disposed afterwards.
        /// </summary>
        public void Submit(string modelFolder, Request request)
        {
            if (engine == null)
            {
                engine = Engine.Create(new EngineOptions { PreviewEvery = 1, LogLevel = LogLevel.Warn });
            }
            if (modelFolder != loadedFolder)
            {
                // Queued ahead of the job, which runs after it on the worker.
                DisposeJob(ref load);
                loadedFolder = null;
                load = engine.LoadModel(modelFolder); // throws for a missing folder or unknown layout
                loadedFolder = modelFolder;
            }
            job = engine.Submit(request);
            Progress = 0;
            Status = "Queued";
        }

        /// <summary>Handles the engine's events and a finished job. Returns true when the window should repaint.</summary>
        public bool Update()
        {
            if (engine == null)
            {
                return false;
            }
            bool changed = false;
            FluxEventData ev;
            while (engine.PollEvent(out ev))
            {
                Handle(ev);
                changed = true;
            }
            if (job != null && job.Status.State.IsTerminal())
            {
                Finish();
                changed = true;
            }
            return changed;
        }

        void Handle(FluxEventData ev)
        {
            if (ev.Kind == FluxEventType.Log)
            {
                string line = "[Flux Engine] " + ev.Message;
                if (ev.LogLevel == LogLevel.Error) Debug.LogError(line);
                else if (ev.LogLevel == LogLevel.Warn) Debug.LogWarning(line);
                else Debug.Log(line);
            }
            else if (load != null && ev.JobId == load.Id && ev.Kind == FluxEventType.Started)
            {
                Status = "Loading the model";
            }
            else if (job != null && ev.JobId == job.Id)
            {
                switch (ev.Kind)
                {
                    case FluxEventType.Started:
                        Status = "Encoding the prompt";
                        break;
                    case FluxEventType.Progress:
                        Progress = ev.Step / (float)ev.Total;
                        Status = string.Format("Step {0}/{1}, about {2:0} s left", ev.Step, ev.Total, ev.EtaMs / 1000);
                        break;
                    case FluxEventType.Preview:
                        FluxTexture.LoadPreview(ref preview, ev);
                        preview.hideFlags = HideFlags.HideAndDontSave;
                        break;
                }
            }
        }

        void Finish()
        {
            Job done = job;
            job = null;
            switch (done.Status.State)
            {
                case JobState.Succeeded:
                    Progress = 1;
                    SaveResult(done);
                    break;
                case JobState.Cancelled:
                    Status = "Cancelled";
                    break;
                default:
                    // A failed model load fails the job too; its error is the one worth showing.
                    Status = LoadError() ?? "Failed: " + done.Error;
                    break;
            }
            done.Dispose();
        }

        void SaveResult(Job done)
        {
            try
            {
                if (!AssetDatabase.IsValidFolder(OutputFolder))
                {
                    AssetDatabase.CreateFolder("Assets", Path.GetFileName(OutputFolder));
                }
                string path = AssetDatabase.GenerateUniqueAssetPath(OutputFolder + "/flux.png");
                done.Save(Path.GetFullPath(path));
                AssetDatabase.ImportAsset(path);
                Result = AssetDatabase.LoadAssetAtPath<Texture2D>(path);
                EditorGUIUtility.PingObject(Result);
                Status = "Saved " + path;
            }
            catch (FluxException e)
            {
                Status = "Saving failed: " + e.Message;
            }
        }

        /// <summary>The failed model load's error (forgetting the model, so the next job reloads it), or null.</summary>
        string LoadError()
        {
            if (load == null || load.Status.State != JobState.Failed)
            {
                return null;
            }
            string error = "Loading the model failed: " + load.Error;
            DisposeJob(ref load);
            loadedFolder = null;
            return error;
        }

        static void DisposeJob(ref Job j)
        {
            if (j != null)
            {
                j.Dispose();
                j = null;
            }
        }

        /// <summary>Cancels the job and destroys the engine, joining its worker thread (within one step).</summary>
        public void Dispose()
        {
            DisposeJob(ref job);
            DisposeJob(ref load);
            if (engine != null)
            {
                engine.Dispose();
                engine = null;
            }
            loadedFolder = null;
            if (preview != null)
            {
                UnityEngine.Object.DestroyImmediate(preview);
                preview = null;
            }
            Progress = 0;
            Status = "Idle";
        }
    }
}
