// FluxEngineRuntime: loads the Flux Engine library and wraps its C API in FFluxEngine. Usable from
// games as well as the editor; its public headers need only Core (flux_engine.h stays private).

using UnrealBuildTool;

public class FluxEngineRuntime : ModuleRules
{
	public FluxEngineRuntime(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;

		PublicDependencyModuleNames.AddRange(new string[] { "Core" });

		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"Projects",          // IPluginManager: where the plugin (and its DLL) lives
			"FluxEngineLibrary", // flux_engine.h and the library itself
		});
	}
}
