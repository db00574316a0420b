// UFluxEngineSettings: registered with the settings viewer by UDeveloperSettings itself.

#include "FluxEngineSettings.h"

UFluxEngineSettings::UFluxEngineSettings()
{
	CategoryName = TEXT("Plugins");
	SectionName = TEXT("FluxEngine");
}

FFluxEngineOptions UFluxEngineSettings::MakeEngineOptions() const
{
	FFluxEngineOptions Options;
	Options.Device = Device == EFluxComputeDevice::Cuda ? EFluxDevice::Cuda : EFluxDevice::Cpu;
	Options.DeviceIndex = DeviceIndex;
	Options.MemoryBudgetBytes = uint64(FMath::Max(MemoryBudgetMiB, 0)) * 1024 * 1024;
	Options.PreviewEvery = PreviewEvery;
	return Options;
}
