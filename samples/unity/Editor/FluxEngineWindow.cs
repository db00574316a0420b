using System;
using System.Collections.Generic;
using System.IO;
using UnityEditor;
using UnityEngine;

namespace Flux.Editor
{
    /// <summary>
    /// Window/Flux Engine: generate an image from a prompt, or edit the selected texture (Kontext),
    /// optionally with LoRAs, with a live preview; results are saved as PNG assets under
    /// Assets/FluxEngine/.
    /// </summary>
    public sealed class FluxEngineWindow : EditorWindow
    {
        const string ModelFolderPref = "FluxEngine.ModelFolder";
        const int MaxLoras = 16;

        /// <summary>A row of the LoRA list: a .safetensors file and its strength.</summary>
        [Serializable]
        sealed class LoraEntry
        {
            public string path = "";
            public float strength = 1f;
        }

        [SerializeField] string prompt = "a red lighthouse at dusk";
        [SerializeField] int width = 1024;
        [SerializeField] int height = 1024;
        [SerializeField] int steps;
        [SerializeField] float guidance = -1;
        [SerializeField] long seed;
        [SerializeField] List<LoraEntry> loras = new List<LoraEntry>();

        string modelFolder;
        string error;
        EditorSession session;
        // The texture to edit, read in Pump rather than in OnGUI: rendering it into a RenderTexture
        // in the middle of the GUI pass would disturb the GUI's own rendering.
        Texture2D pendingEdit;

        [MenuItem("Window/Flux Engine")]
        static void Open()
        {
            GetWindow<FluxEngineWindow>("Flux Engine");
        }

        void OnEnable()
        {
            modelFolder = EditorPrefs.GetString(ModelFolderPref, "");
            session = new EditorSession();
            EditorApplication.update += Pump;
            // OnDisable also runs before a domain reload; this makes the guarantee explicit: no
            // worker thread survives a reload.
            AssemblyReloadEvents.beforeAssemblyReload += ShutDown;
        }

        void OnDisable()
        {
            EditorApplication.update -= Pump;
            AssemblyReloadEvents.beforeAssemblyReload -= ShutDown;
            ShutDown();
        }

        void ShutDown()
        {
            session.Dispose();
        }

        void Pump()
        {
            if (pendingEdit != null)
            {
                Texture2D texture = pendingEdit;
                pendingEdit = null;
                Submit(texture);
                Repaint();
            }
            if (session.Update())
            {
                Repaint();
            }
        }

        void OnSelectionChange()
        {
            Repaint();
        }

        void OnGUI()
        {
            ModelField();
            EditorGUILayout.LabelField("Prompt");
            prompt = EditorGUILayout.TextArea(prompt, GUILayout.MinHeight(40));
            width = SnapTo16(EditorGUILayout.IntField(new GUIContent("Width", "Text-to-image only: a multiple of 16"), width));
            height = SnapTo16(EditorGUILayout.IntField(new GUIContent("Height", "Text-to-image only: a multiple of 16"), height));
            steps = EditorGUILayout.IntSlider(new GUIContent("Steps", "0: the model's default"), steps, 0, 50);
            guidance = EditorGUILayout.Slider(new GUIContent("Guidance", "-1: the model's default"), guidance, -1, 10);
            seed = Math.Max(0, EditorGUILayout.LongField("Seed", seed));
            LoraFields();

            var selected = Selection.activeObject as Texture2D;
            using (new EditorGUI.DisabledScope(session.IsBusy || pendingEdit != null || string.IsNullOrEmpty(modelFolder)))
            using (new EditorGUILayout.HorizontalScope())
            {
                if (GUILayout.Button("Generate"))
                {
                    Submit(null);
                }
                using (new EditorGUI.DisabledScope(selected == null))
                {
                    if (GUILayout.Button(new GUIContent("Edit selected texture", "Kontext edit of the texture selected in the Project window")))
                    {
                        pendingEdit = selected;
                    }
                }
            }
            using (new EditorGUI.DisabledScope(!session.IsBusy))
            {
                if (GUILayout.Button("Cancel"))
                {
                    Run(session.Cancel);
                }
            }

            Rect bar = GUILayoutUtility.GetRect(18, 18, GUILayout.ExpandWidth(true));
            EditorGUI.ProgressBar(bar, session.Progress, session.Status);
            if (error != null)
            {
                EditorGUILayout.HelpBox(error, MessageType.Error);
            }
            TextureField("Preview", session.Preview);
            TextureField("Result", session.Result);
        }

        void ModelField()
        {
            using (new EditorGUILayout.HorizontalScope())
            {
                string folder = EditorGUILayout.TextField(new GUIContent("Model folder", "Diffusers folder or BFL/ComfyUI single files"), modelFolder);
                if (GUILayout.Button("Browse", GUILayout.Width(60)))
                {
                    string picked = EditorUtility.OpenFolderPanel("FLUX model folder", modelFolder, "");
                    if (!string.IsNullOrEmpty(picked))
                    {
                        folder = picked;
                        GUI.FocusControl(null);
                    }
                }
                if (folder != modelFolder)
                {
                    modelFolder = folder;
                    EditorPrefs.SetString(ModelFolderPref, folder);
                }
            }
        }

        /// <summary>The LoRA list: a row per file (path, Browse, strength, remove) and an Add button.</summary>
        void LoraFields()
        {
            EditorGUILayout.LabelField(new GUIContent("LoRAs", "kohya, diffusers/PEFT, XLabs or BFL FLUX .safetensors files, applied together at their strengths (1: the file's own scale). Rows with no path are skipped."));
            int remove = -1;
            for (int i = 0; i < loras.Count; i++)
            {
                LoraEntry lora = loras[i];
                using (new EditorGUILayout.HorizontalScope())
                {
                    lora.path = EditorGUILayout.TextField(lora.path);
                    if (GUILayout.Button("Browse", GUILayout.Width(60)))
                    {
                        string picked = EditorUtility.OpenFilePanel("LoRA file", FolderOf(lora.path), "safetensors");
                        if (!string.IsNullOrEmpty(picked))
                        {
                            lora.path = picked;
                            GUI.FocusControl(null);
                        }
                    }
                    lora.strength = EditorGUILayout.FloatField(new GUIContent("", "Strength: any finite number (1: the file's own scale)"), lora.strength, GUILayout.Width(48));
                    if (GUILayout.Button(new GUIContent("-", "Remove this LoRA"), GUILayout.Width(22)))
                    {
                        remove = i;
                    }
                }
            }
            if (remove >= 0)
            {
                loras.RemoveAt(remove);
            }
            using (new EditorGUI.DisabledScope(loras.Count >= MaxLoras))
            {
                if (GUILayout.Button(new GUIContent("Add LoRA", "Up to " + MaxLoras + " per job")))
                {
                    loras.Add(new LoraEntry());
                }
            }
        }

        static string FolderOf(string path)
        {
            try
            {
                return string.IsNullOrEmpty(path) ? "" : Path.GetDirectoryName(path) ?? "";
            }
            catch (ArgumentException)
            {
                return "";
            }
        }

        /// <summary>Starts the job the fields describe: text-to-image, or a Kontext edit of <paramref name="reference"/>.</summary>
        void Submit(Texture2D reference)
        {
            Run(() =>
            {
                using (Request request = Describe(reference))
                {
                    session.Submit(modelFolder, request);
                }
            });
        }

        Request Describe(Texture2D reference)
        {
            var request = new Request();
            try
            {
                request.Prompt = prompt;
                request.Seed = (ulong)seed;
                if (steps > 0) request.Steps = steps;
                if (guidance >= 0) request.Guidance = guidance;
                // A missing file or a non-finite strength throws here (shown in the window); a
                // file that does not fit the model fails the job, naming the key.
                foreach (LoraEntry lora in loras)
                {
                    if (!string.IsNullOrEmpty(lora.path)) request.AddLora(lora.path, lora.strength);
                }
                if (reference == null)
                {
                    request.Size = (width, height);
                }
                else
                {
                    // The pixels are copied when added; the output takes Kontext's closest trained size.
                    using (Image image = FluxTexture.ToImage(reference))
                    {
                        request.AddReference(image);
                    }
                }
                return request;
            }
            catch
            {
                request.Dispose();
                throw;
            }
        }

        /// <summary>Runs a button's action, showing a refused request (bad input, missing model folder) in the window.</summary>
        void Run(Action action)
        {
            error = null;
            try
            {
                action();
            }
            catch (Exception e) when (e is FluxException || e is ArgumentException)
            {
                error = e.Message;
            }
        }

        static int SnapTo16(int value)
        {
            return Mathf.Clamp(Mathf.RoundToInt(value / 16f) * 16, 16, 2048);
        }

        static void TextureField(string label, Texture2D texture)
        {
            if (texture == null)
            {
                return;
            }
            EditorGUILayout.LabelField(label, texture.width + " × " + texture.height);
            Rect rect = GUILayoutUtility.GetAspectRect(texture.width / (float)texture.height, GUILayout.MaxHeight(256));
            GUI.DrawTexture(rect, texture, ScaleMode.ScaleToFit);
        }
    }
}
