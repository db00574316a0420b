// FluxEngineLibrary: the prebuilt Flux Engine C library as an external module. Nothing here is
// compiled; a module that depends on it gets the include path of flux_engine.h, the link line and
// the runtime staging of the shared library. samples/unreal/stage-library.sh puts the files where
// this file expects them:
//
//   Source/ThirdParty/FluxEngineLibrary/include/flux_engine.h
//   Binaries/ThirdParty/FluxEngineLibrary/Win64/flux_engine.dll, flux_engine.dll.lib
//   Binaries/ThirdParty/FluxEngineLibrary/Linux/libflux_engine.so
//   Binaries/ThirdParty/FluxEngineLibrary/Mac/libflux_engine.dylib

using System.IO;
using UnrealBuildTool;

public class FluxEngineLibrary : ModuleRules
{
	public FluxEngineLibrary(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;

		string IncludeDir = Path.Combine(ModuleDirectory, "include");
		string LibraryDir = Path.Combine(PluginDirectory, "Binaries", "ThirdParty", "FluxEngineLibrary", Target.Platform.ToString());
		PublicIncludePaths.Add(IncludeDir);
		RequireStaged(Target, Path.Combine(IncludeDir, "flux_engine.h"));

		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			// cargo's cdylib on MSVC: flux_engine.dll and its import library flux_engine.dll.lib.
			string Dll = Path.Combine(LibraryDir, "flux_engine.dll");
			string ImportLibrary = Path.Combine(LibraryDir, "flux_engine.dll.lib");
			RequireStaged(Target, Dll);
			RequireStaged(Target, ImportLibrary);
			PublicAdditionalLibraries.Add(ImportLibrary);
			// FFluxEngineRuntimeModule loads the DLL by full path before the first call into it.
			PublicDelayLoadDLLs.Add("flux_engine.dll");
			// Copied next to the executable at build time and staged there in packaged builds.
			RuntimeDependencies.Add("$(TargetOutputDir)/flux_engine.dll", Dll);
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux)
		{
			// Linked directly: UBT passes -L<dir> -lflux_engine and an $ORIGIN-relative rpath to
			// <dir>; every binary also searches $ORIGIN, where the staged copy lands.
			string SharedLibrary = Path.Combine(LibraryDir, "libflux_engine.so");
			RequireStaged(Target, SharedLibrary);
			PublicAdditionalLibraries.Add(SharedLibrary);
			RuntimeDependencies.Add("$(TargetOutputDir)/libflux_engine.so", SharedLibrary);
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			// Linked directly; the library's install name must be @rpath/libflux_engine.dylib
			// (stage-library.sh sets it) so the rpaths UBT adds find it.
			string SharedLibrary = Path.Combine(LibraryDir, "libflux_engine.dylib");
			RequireStaged(Target, SharedLibrary);
			PublicAdditionalLibraries.Add(SharedLibrary);
			RuntimeDependencies.Add("$(TargetOutputDir)/libflux_engine.dylib", SharedLibrary);
		}
	}

	// Fails the build with a pointer to the staging script when a file is missing (project file
	// generation goes on without it, so the IDE project can be made before the library is built).
	private static void RequireStaged(ReadOnlyTargetRules Target, string FilePath)
	{
		if (!Target.bGenerateProjectFiles && !File.Exists(FilePath))
		{
			throw new FileNotFoundException(
				"Flux Engine library file missing: " + FilePath +
				". Build and install the library, then run samples/unreal/stage-library.sh <install prefix> (see samples/unreal/README.md).",
				FilePath);
		}
	}
}
