// FFluxImageRequest: what the panel (or a script) asks UFluxEditorSubsystem to make.

#pragma once

#include "CoreMinimal.h"

#include "FluxImageRequest.generated.h"

USTRUCT(BlueprintType)
struct FLUXENGINEEDITOR_API FFluxImageRequest
{
	GENERATED_BODY()

	/** What to draw, or for an edit, what to change. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine")
	FString Prompt;

	/** Text-to-image output width: a multiple of 16 (edits keep the reference's Kontext size). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine", meta = (ClampMin = "16", ClampMax = "4096"))
	int32 Width = 1024;

	/** Text-to-image output height: a multiple of 16 (edits keep the reference's Kontext size). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine", meta = (ClampMin = "16", ClampMax = "4096"))
	int32 Height = 1024;

	/** Denoising steps; 0 takes the model's default (dev 28, schnell 4, Kontext edits 30). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine", meta = (ClampMin = "0"))
	int32 Steps = 0;

	/** Distilled guidance; negative takes the model's default (dev 3.5, Kontext edits 2.5). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine")
	float Guidance = -1.0f;

	/** Seed of the starting noise: the same seed, prompt and settings give the same image on every machine. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Flux Engine", meta = (ClampMin = "0"))
	int64 Seed = 0;
};
