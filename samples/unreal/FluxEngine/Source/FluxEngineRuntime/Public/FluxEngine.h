// FFluxEngine: one Flux engine (the library's worker thread, its job queue and its loaded model)
// behind an Unreal-friendly C++ interface over flux_engine.h.
//
// Every call but the destructor returns at once: jobs are queued and run on the library's worker
// thread, and their progress comes back through PollEvent, which never blocks. Poll from the game
// thread (for example from an FTSTicker) and touch UObjects there; no callback is registered, so
// nothing runs on another thread on the wrapper's behalf. Destroying the engine cancels its jobs
// and joins the worker, which waits for the step (or the model component being read) in progress.

#pragma once

#include "CoreMinimal.h"
#include "FluxEngineTypes.h"

/** The library's engine and request handles (flux_engine.h), kept out of this header. */
struct FluxEngine;
struct FluxRequest;

class FLUXENGINERUNTIME_API FFluxEngine
{
public:
	/** Starts an engine and its worker thread (call on the game thread); null, with OutError set,
	 * when the library is missing, the device is unavailable or the library's ABI differs from
	 * flux_engine.h's. */
	static TSharedPtr<FFluxEngine> Create(const FFluxEngineOptions& Options, FString& OutError);

	/** The library's version ("0.1.0"), or an empty string when it is not loaded. */
	static FString GetLibraryVersion();

	/** Engines alive in this process (the runtime module keeps the library loaded while any is). */
	static int32 GetLiveEngineCount();

	/** Cancels every job and joins the worker thread (see the file comment). */
	~FFluxEngine();

	FFluxEngine(const FFluxEngine&) = delete;
	FFluxEngine& operator=(const FFluxEngine&) = delete;

	/** Queues loading the model in Folder (a diffusers folder or BFL / ComfyUI single files),
	 * replacing the current one. A missing folder or an unknown layout fails here. */
	FFluxStatus LoadModel(const FString& Folder, FFluxJobId& OutJob);

	/** Queues a text-to-image job (the prompt is copied now). Zero steps and negative guidance
	 * take the model's defaults. Params.Loras are checked here (a missing file, a non-finite
	 * strength or more than 16 fail with FLUX_RESULT_INVALID_ARGUMENT and nothing is queued); the
	 * library reads each file when the job runs, and one that does not fit the model fails the
	 * job (its Failed event's Message names the key). */
	FFluxStatus SubmitTextToImage(const FFluxTextToImageParams& Params, FFluxJobId& OutJob);

	/** Queues a Kontext edit of Width x Height reference pixels (copied now; the library reads
	 * FColors as they lie in memory, BGRA8). Params.Loras as in SubmitTextToImage. */
	FFluxStatus SubmitEdit(const FFluxEditParams& Params, TConstArrayView<FColor> Pixels, int32 Width, int32 Height, FFluxJobId& OutJob);

	/** Queues a Kontext edit of tightly packed RGBA8 reference pixels (alpha is ignored; copied now). */
	FFluxStatus SubmitEditRgba(const FFluxEditParams& Params, TConstArrayView<uint8> Rgba, int32 Width, int32 Height, FFluxJobId& OutJob);

	/** Cancels a job: a queued one never starts, a running image job stops before its next step,
	 * a running model load after the component it is reading. Harmless on a finished job. */
	void Cancel(FFluxJobId Job);

	/** Forgets a job (cancelling it if it has not ended) and frees its result. */
	void Release(FFluxJobId Job);

	/** The next job event, or false when there is none. Never blocks. The library's LOG and
	 * RESIDENCY events are written to LogFluxEngine on the way and not returned. */
	bool PollEvent(FFluxEvent& OutEvent);

	/** Copies a finished image job's result: the library writes it straight into OutPixels
	 * (BGRA8, FColor's byte order; opaque). The engine keeps the result until Release. */
	FFluxStatus CopyImage(FFluxJobId Job, TArray<FColor>& OutPixels, int32& OutWidth, int32& OutHeight);

private:
	explicit FFluxEngine(FluxEngine* InHandle);

	/** Queues the job Request describes. */
	FFluxStatus Submit(FluxRequest* Request, FFluxJobId& OutJob);

	/** The edit both Submit functions queue: Width x Height pixels of 4 bytes, in Format (a FluxPixelFormat). */
	FFluxStatus SubmitEditPixels(const FFluxEditParams& Params, int32 Format, const void* Pixels, int64 NumBytes, int32 Width, int32 Height, FFluxJobId& OutJob);

	FluxEngine* Handle;
};
