// FFluxEngineRuntimeModule: makes the Flux Engine library callable. On Windows the DLL is
// delay-loaded, so the module loads it by full path at startup (from the plugin's
// Binaries/ThirdParty folder, or next to the executable in packaged builds) and frees it at
// shutdown. On Linux and Mac the library is linked directly and the loader finds it via rpath.

#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleInterface.h"

class FLUXENGINERUNTIME_API FFluxEngineRuntimeModule : public IModuleInterface
{
public:
	/** The module, loading it if needed (game thread). */
	static FFluxEngineRuntimeModule& Get();

	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** Whether the library's functions may be called (false when the DLL was not found). */
	bool IsLibraryLoaded() const { return bLibraryLoaded; }

private:
	void* LibraryHandle = nullptr;
	bool bLibraryLoaded = false;
};
