// UFluxEngineSettings: the model folder and engine options, saved per user and per project
// (EditorPerProjectUserSettings.ini: weights live at a path on this machine). Shown under
// Editor Preferences > Plugins > Flux Engine; the panel edits the model folder too.

#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "FluxEngineTypes.h"
#include "UObject/SoftObjectPath.h"

#include "FluxEngineSettings.generated.h"

UENUM()
enum class EFluxComputeDevice : uint8
{
	Cpu UMETA(DisplayName = "CPU"),
	/** Needs a Flux Engine library built with the `cuda` feature. */
	Cuda UMETA(DisplayName = "CUDA"),
};

UCLASS(config = EditorPerProjectUserSettings, meta = (DisplayName = "Flux Engine"))
class FLUXENGINEEDITOR_API UFluxEngineSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	UFluxEngineSettings();

	/** The FLUX weights: a diffusers folder (model_index.json, transformer/, vae/, ...) or BFL /
	 * ComfyUI single files (flux1-dev.safetensors, ae.safetensors, t5xxl_fp16.safetensors,
	 * clip_l.safetensors) with the tokenizer/ and tokenizer_2/ folders beside them. */
	UPROPERTY(config, EditAnywhere, Category = "Model")
	FDirectoryPath ModelFolder;

	/** Where the engine computes. Changing the engine options restarts the engine before the next job. */
	UPROPERTY(config, EditAnywhere, Category = "Engine")
	EFluxComputeDevice Device = EFluxComputeDevice::Cpu;

	/** The CUDA device to use. */
	UPROPERTY(config, EditAnywhere, Category = "Engine", meta = (ClampMin = "0", EditCondition = "Device == EFluxComputeDevice::Cuda"))
	int32 DeviceIndex = 0;

	/** Device memory (MiB) the engine may keep, leaving the rest to the renderer; 0 means automatic (the memory available when the model loads).
	 * Below the model's full size the text encoders are released after each prompt. */
	UPROPERTY(config, EditAnywhere, Category = "Engine", meta = (ClampMin = "0"))
	int32 MemoryBudgetMiB = 0;

	/** Show a preview every N denoising steps; 0 means no previews. */
	UPROPERTY(config, EditAnywhere, Category = "Engine", meta = (ClampMin = "0"))
	int32 PreviewEvery = 2;

	/** The engine options these settings describe. */
	FFluxEngineOptions MakeEngineOptions() const;
};
