// The plain Unreal-side types of the Flux Engine wrapper: engine options, job parameters, the
// outcome of a call and the events the engine reports. They mirror flux_engine.h without
// exposing it, so modules that use FFluxEngine need neither the C header nor the library's types.

#pragma once

#include "CoreMinimal.h"

/** A job handle: unique within its engine, never 0 (0 means "no job"). */
using FFluxJobId = uint64;

/** Where an engine computes. */
enum class EFluxDevice : uint8
{
	Cpu,
	/** Needs a library built with the `cuda` feature. */
	Cuda,
};

/** How to create an engine (read once, at creation). */
struct FFluxEngineOptions
{
	EFluxDevice Device = EFluxDevice::Cpu;
	/** CUDA device index. */
	int32 DeviceIndex = 0;
	/** Bytes of device memory the engine may keep; 0 means automatic (the memory available when the model loads). */
	uint64 MemoryBudgetBytes = 0;
	/** Send a preview image every N denoising steps; 0 means never. */
	int32 PreviewEvery = 0;

	bool operator==(const FFluxEngineOptions& Other) const
	{
		return Device == Other.Device && DeviceIndex == Other.DeviceIndex
			&& MemoryBudgetBytes == Other.MemoryBudgetBytes && PreviewEvery == Other.PreviewEvery;
	}
	bool operator!=(const FFluxEngineOptions& Other) const { return !(*this == Other); }
};

/** A LoRA a job applies: a kohya, diffusers/PEFT, XLabs or BFL FLUX .safetensors file at a strength. */
struct FFluxLora
{
	/** The file. Use a full path: a relative one is resolved against the process's working
	 * directory, which Unreal does not fix. It must exist when the job is submitted. */
	FString Path;
	/** Any finite number (1: the file's own scale; 0.5: half of it; negative subtracts it). */
	float Strength = 1.0f;

	FFluxLora() = default;
	FFluxLora(const FString& InPath, float InStrength = 1.0f) : Path(InPath), Strength(InStrength) {}
};

/** A text-to-image request. Zero / negative values take the model's defaults. */
struct FFluxTextToImageParams
{
	FString Prompt;
	/** Output size: positive multiples of 16, at most 4096 a side. */
	int32 Width = 1024;
	int32 Height = 1024;
	uint64 Seed = 0;
	/** Denoising steps; 0: dev 28, schnell 4. */
	int32 Steps = 0;
	/** Distilled guidance; negative: dev 3.5. */
	float Guidance = -1.0f;
	/** LoRAs applied together, at most 16 (none: the model as loaded). Changing them between jobs
	 * does not reload the model. */
	TArray<FFluxLora> Loras;
};

/** A Kontext edit of one reference image. Zero / negative values take the defaults. */
struct FFluxEditParams
{
	FString Prompt;
	/** Output size; 0 x 0 takes the reference's size (snapped to a Kontext resolution if bSnap). */
	int32 Width = 0;
	int32 Height = 0;
	uint64 Seed = 0;
	/** Denoising steps; 0: 30. */
	int32 Steps = 0;
	/** Distilled guidance; negative: 2.5. */
	float Guidance = -1.0f;
	/** Resize the reference to the closest of the resolutions Kontext was trained at. */
	bool bSnap = true;
	/** LoRAs applied together, at most 16 (none: the model as loaded). */
	TArray<FFluxLora> Loras;
};

/** The outcome of a call: OK, or the library's FluxResult code with its sentence. */
struct FFluxStatus
{
	/** A FluxResult (flux_engine.h); 0 is FLUX_RESULT_OK. */
	int32 Code = 0;
	FString Message;

	bool IsOk() const { return Code == 0; }
};

/** The kinds of job events (LOG events go to LogFluxEngine and are not returned). */
enum class EFluxEventKind : uint8
{
	Queued,
	Started,
	/** A denoising step finished. */
	Progress,
	/** A small RGB picture of the current latent (1/8 of the output size). */
	Preview,
	/** The job succeeded; image jobs hold a result until released. */
	Finished,
	/** The job failed; Message says why. */
	Failed,
	Cancelled,
};

/** Denoising progress of a job. */
struct FFluxProgress
{
	int32 Step = 0;
	int32 Total = 0;
	double ElapsedSeconds = 0.0;
	/** Estimated time left, from the steps done so far. */
	double RemainingSeconds = 0.0;

	/** Step / Total in [0, 1] (0 before the first step). */
	float GetFraction() const { return Total > 0 ? float(Step) / float(Total) : 0.0f; }
};

/** Stage timings of a finished image job. */
struct FFluxTimings
{
	double TextSeconds = 0.0;
	double DenoiseSeconds = 0.0;
	double DecodeSeconds = 0.0;
	/** The prompt embedding came from the engine's cache (no text encoding ran). */
	bool bEmbeddingCached = false;

	double GetTotalSeconds() const { return TextSeconds + DenoiseSeconds + DecodeSeconds; }
};

/** One event of a job, copied out of the library (it owns nothing of the library's). */
struct FFluxEvent
{
	EFluxEventKind Kind = EFluxEventKind::Queued;
	FFluxJobId Job = 0;
	/** Progress and Preview events. */
	FFluxProgress Progress;
	/** Preview events: PreviewWidth x PreviewHeight RGB8 pixels, rows top to bottom, tightly packed. */
	int32 PreviewWidth = 0;
	int32 PreviewHeight = 0;
	TArray<uint8> PreviewRgb;
	/** Failed events: the error. */
	FString Message;
	/** Finished events of image jobs. */
	FFluxTimings Timings;
};
