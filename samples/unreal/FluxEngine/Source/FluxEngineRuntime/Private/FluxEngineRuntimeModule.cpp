// Loads (Windows) and checks the Flux Engine library when the module starts, frees it at shutdown.

#include "FluxEngineRuntimeModule.h"

#include "FluxEngine.h"
#include "FluxEngineLog.h"
#include "HAL/PlatformProcess.h"
#include "Misc/Paths.h"
#include "Modules/ModuleManager.h"

#if PLATFORM_WINDOWS
#include "Interfaces/IPluginManager.h"
#endif

#include "flux_engine.h"

DEFINE_LOG_CATEGORY(LogFluxEngine);

namespace
{
#if PLATFORM_WINDOWS
	/** The DLL staged in the plugin (editor and development builds); packaged builds have no such
	 * file and load the copy that RuntimeDependencies put next to the executable. */
	FString FindLibraryDll()
	{
		static const TCHAR* DllName = TEXT("flux_engine.dll");
		const TSharedPtr<IPlugin> Plugin = IPluginManager::Get().FindPlugin(TEXT("FluxEngine"));
		if (Plugin.IsValid())
		{
			const FString InPlugin = FPaths::Combine(Plugin->GetBaseDir(), TEXT("Binaries/ThirdParty/FluxEngineLibrary/Win64"), DllName);
			if (FPaths::FileExists(InPlugin))
			{
				return FPaths::ConvertRelativePathToFull(InPlugin);
			}
		}
		return DllName;
	}
#endif
}

FFluxEngineRuntimeModule& FFluxEngineRuntimeModule::Get()
{
	return FModuleManager::LoadModuleChecked<FFluxEngineRuntimeModule>(TEXT("FluxEngineRuntime"));
}

void FFluxEngineRuntimeModule::StartupModule()
{
#if PLATFORM_WINDOWS
	// Until this succeeds no flux_* function may be called: the first call would make the
	// delay-load helper look for the DLL itself and raise an exception when it is missing.
	const FString DllPath = FindLibraryDll();
	LibraryHandle = FPlatformProcess::GetDllHandle(*DllPath);
	if (LibraryHandle == nullptr)
	{
		UE_LOG(LogFluxEngine, Error, TEXT("Could not load %s. Stage the library with the Flux Engine SDK's samples/unreal/stage-library.sh (see samples/unreal/README.md)."), *DllPath);
		return;
	}
#endif
	bLibraryLoaded = true;

	const uint32 LibraryAbi = flux_abi_version();
	UE_LOG(LogFluxEngine, Log, TEXT("Flux Engine library %s (ABI %u; this plugin was built for ABI %d)."),
		UTF8_TO_TCHAR(flux_version()), LibraryAbi, FLUX_ABI_VERSION);
	if (LibraryAbi != FLUX_ABI_VERSION)
	{
		UE_LOG(LogFluxEngine, Error, TEXT("The Flux Engine library implements ABI %u but the plugin was built against flux_engine.h of ABI %d: rebuild the plugin against the staged header."),
			LibraryAbi, FLUX_ABI_VERSION);
	}
}

void FFluxEngineRuntimeModule::ShutdownModule()
{
	const int32 AliveEngines = FFluxEngine::GetLiveEngineCount();
	if (AliveEngines > 0)
	{
		// Their worker threads still run the library's code: unloading it would crash them.
		UE_LOG(LogFluxEngine, Warning, TEXT("%d Flux engine(s) still alive at shutdown; keeping the library loaded."), AliveEngines);
		return;
	}
	bLibraryLoaded = false;
	if (LibraryHandle != nullptr)
	{
		FPlatformProcess::FreeDllHandle(LibraryHandle);
		LibraryHandle = nullptr;
	}
}

IMPLEMENT_MODULE(FFluxEngineRuntimeModule, FluxEngineRuntime)
