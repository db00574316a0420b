// FluxEngineEditor: the editor side of the plugin. UFluxEditorSubsystem owns the engine and
// polls it on the game thread; SFluxPanel is the Window > Flux Engine tab; UFluxEngineSettings
// keeps the model folder and engine options per user.

using UnrealBuildTool;

public class FluxEngineEditor : ModuleRules
{
	public FluxEngineEditor(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;

		// Used by the public headers (subsystem, settings, request struct).
		PublicDependencyModuleNames.AddRange(new string[]
		{
			"Core",
			"CoreUObject",
			"Engine",
			"EditorSubsystem",
			"DeveloperSettings",
			"FluxEngineRuntime",
		});

		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"Slate",
			"SlateCore",
			"UnrealEd",          // GEditor, UEditorLoadingAndSavingUtils, ObjectTools
			"ToolMenus",         // the Window menu entry
			"AssetRegistry",     // FAssetRegistryModule::AssetCreated
			"AssetTools",        // unique asset names
			"ContentBrowser",    // the selected texture, syncing to a saved asset
			"DesktopPlatform",   // the folder picker
			"ImageCore",         // FImage: texture source pixels in any format to BGRA8
			"Settings",          // ISettingsModule: opening the plugin's settings page
		});
	}
}
