// FFluxEngine over flux_engine.h (ABI 2): jobs are described by a FluxRequest (one setter per
// setting, each checked at once; LoRAs are added one call each), pixels cross as FluxImages over Unreal's own memory (FColor
// arrays as BGRA8, so neither direction converts). FluxResult codes become FFluxStatus, the
// thread-local error sentence read right after the failing call, on the same thread, and before
// any other library call (the scoped request and image are destroyed after it was read). Events
// are copied out of the library's memory.

#include "FluxEngine.h"

#include <atomic>

#include "FluxEngineLog.h"
#include "FluxEngineRuntimeModule.h"

#include "flux_engine.h"

// FColor's bytes are B, G, R, A in memory on every platform Unreal supports (all little-endian),
// which is the library's FLUX_PIXEL_FORMAT_BGRA8.
static_assert(PLATFORM_LITTLE_ENDIAN, "FColor is read and written as FLUX_PIXEL_FORMAT_BGRA8");
static_assert(sizeof(FColor) == 4, "FColor is 4 bytes");

namespace
{
	std::atomic<int32> LiveEngines{0};

	/** The calling thread's last library error: read it right after the failing call, as the
	 * thread's next library call replaces it. */
	FString LastErrorMessage()
	{
		return FString(UTF8_TO_TCHAR(flux_last_error_message()));
	}

	FFluxStatus StatusOf(FluxResult Result)
	{
		FFluxStatus Status;
		Status.Code = static_cast<int32>(Result);
		if (Result != FLUX_RESULT_OK)
		{
			Status.Message = LastErrorMessage();
		}
		return Status;
	}

	FFluxStatus InvalidArgument(const FString& Message)
	{
		FFluxStatus Status;
		Status.Code = FLUX_RESULT_INVALID_ARGUMENT;
		Status.Message = Message;
		return Status;
	}

	/** The library's log line, at the matching Unreal verbosity. */
	void ForwardLog(int32 Level, const char* Message)
	{
		const FString Line = Message != nullptr ? FString(UTF8_TO_TCHAR(Message)) : FString();
		switch (Level)
		{
		case FLUX_LOG_LEVEL_ERROR:
			UE_LOG(LogFluxEngine, Error, TEXT("%s"), *Line);
			break;
		case FLUX_LOG_LEVEL_WARN:
			UE_LOG(LogFluxEngine, Warning, TEXT("%s"), *Line);
			break;
		case FLUX_LOG_LEVEL_INFO:
			UE_LOG(LogFluxEngine, Log, TEXT("%s"), *Line);
			break;
		case FLUX_LOG_LEVEL_DEBUG:
			UE_LOG(LogFluxEngine, Verbose, TEXT("%s"), *Line);
			break;
		default:
			UE_LOG(LogFluxEngine, VeryVerbose, TEXT("%s"), *Line);
			break;
		}
	}

	/** A FluxRequest destroyed with the scope. */
	struct FScopedRequest
	{
		FluxRequest* Handle = nullptr;

		FFluxStatus Create() { return StatusOf(flux_request_create(&Handle)); }
		FluxRequest* Get() const { return Handle; }
		~FScopedRequest()
		{
			if (Handle != nullptr)
			{
				flux_request_destroy(Handle);
			}
		}
	};

	/** A FluxImage destroyed with the scope (the pixels stay the caller's). */
	struct FScopedImage
	{
		FluxImage* Handle = nullptr;

		~FScopedImage()
		{
			if (Handle != nullptr)
			{
				flux_image_destroy(Handle);
			}
		}
	};

	/** Seed, and steps and guidance unless they ask for the model's defaults (0 / negative). */
	FFluxStatus SetSampling(FluxRequest* Request, uint64 Seed, int32 Steps, float Guidance)
	{
		FFluxStatus Status = StatusOf(flux_request_set_seed(Request, Seed));
		if (Status.IsOk() && Steps > 0)
		{
			Status = StatusOf(flux_request_set_steps(Request, static_cast<uint32>(Steps)));
		}
		if (Status.IsOk() && Guidance >= 0.0f)
		{
			Status = StatusOf(flux_request_set_guidance(Request, Guidance));
		}
		return Status;
	}

	/** Adds Loras to Request in order. The library checks each one now (the path, UTF-8 and
	 * NUL-terminated, must name an existing file; the strength must be finite; at most 16) and
	 * reads the files when the job runs. Stops at the first refusal, whose message names it. */
	FFluxStatus AddLoras(FluxRequest* Request, const TArray<FFluxLora>& Loras)
	{
		FFluxStatus Status;
		for (const FFluxLora& Lora : Loras)
		{
			// The UTF-8 copy lives until the end of this iteration: the library reads the string
			// during the call only (and keeps its own copy of the path).
			const FTCHARToUTF8 PathUtf8(*Lora.Path);
			Status = StatusOf(flux_request_add_lora(Request, reinterpret_cast<const char*>(PathUtf8.Get()), Lora.Strength));
			if (!Status.IsOk())
			{
				break;
			}
		}
		return Status;
	}

	/** The wrapper's kind of a library event kind; false for LOG and for kinds this plugin does not know. */
	bool ToEventKind(int32 Kind, EFluxEventKind& OutKind)
	{
		switch (Kind)
		{
		case FLUX_EVENT_TYPE_QUEUED: OutKind = EFluxEventKind::Queued; return true;
		case FLUX_EVENT_TYPE_STARTED: OutKind = EFluxEventKind::Started; return true;
		case FLUX_EVENT_TYPE_PROGRESS: OutKind = EFluxEventKind::Progress; return true;
		case FLUX_EVENT_TYPE_PREVIEW: OutKind = EFluxEventKind::Preview; return true;
		case FLUX_EVENT_TYPE_FINISHED: OutKind = EFluxEventKind::Finished; return true;
		case FLUX_EVENT_TYPE_FAILED: OutKind = EFluxEventKind::Failed; return true;
		case FLUX_EVENT_TYPE_CANCELLED: OutKind = EFluxEventKind::Cancelled; return true;
		default: return false;
		}
	}
}

TSharedPtr<FFluxEngine> FFluxEngine::Create(const FFluxEngineOptions& Options, FString& OutError)
{
	if (!FFluxEngineRuntimeModule::Get().IsLibraryLoaded())
	{
		OutError = TEXT("the Flux Engine library is not loaded (see the Output Log, category LogFluxEngine)");
		return nullptr;
	}

	FluxEngineDesc Desc;
	flux_engine_desc_init(&Desc);
	Desc.device = Options.Device == EFluxDevice::Cuda ? FLUX_DEVICE_CUDA : FLUX_DEVICE_CPU;
	Desc.device_index = static_cast<uint32>(FMath::Max(Options.DeviceIndex, 0));
	if (Options.MemoryBudgetBytes > 0)
	{
		Desc.memory_budget = Options.MemoryBudgetBytes;
	}
	Desc.preview_every = static_cast<uint32>(FMath::Max(Options.PreviewEvery, 0));
	// No callback: events queue for PollEvent, so none of this code ever runs on the worker thread.

	FluxEngine* NewHandle = nullptr;
	const FluxResult Result = flux_engine_create(&Desc, &NewHandle);
	if (Result != FLUX_RESULT_OK)
	{
		OutError = LastErrorMessage();
		return nullptr;
	}
	return MakeShareable(new FFluxEngine(NewHandle));
}

FString FFluxEngine::GetLibraryVersion()
{
	if (!FFluxEngineRuntimeModule::Get().IsLibraryLoaded())
	{
		return FString();
	}
	return FString(UTF8_TO_TCHAR(flux_version()));
}

int32 FFluxEngine::GetLiveEngineCount()
{
	return LiveEngines.load();
}

FFluxEngine::FFluxEngine(FluxEngine* InHandle)
	: Handle(InHandle)
{
	++LiveEngines;
}

FFluxEngine::~FFluxEngine()
{
	const FluxResult Result = flux_engine_destroy(Handle);
	if (Result != FLUX_RESULT_OK)
	{
		UE_LOG(LogFluxEngine, Error, TEXT("flux_engine_destroy failed: %s"), *LastErrorMessage());
	}
	--LiveEngines;
}

FFluxStatus FFluxEngine::LoadModel(const FString& Folder, FFluxJobId& OutJob)
{
	const FTCHARToUTF8 FolderUtf8(*Folder);
	FluxModelDesc Desc;
	flux_model_desc_init(&Desc);
	Desc.folder = reinterpret_cast<const char*>(FolderUtf8.Get());
	FluxJob Job = 0;
	const FFluxStatus Status = StatusOf(flux_engine_load_model(Handle, &Desc, &Job));
	OutJob = Job;
	return Status;
}

FFluxStatus FFluxEngine::Submit(FluxRequest* Request, FFluxJobId& OutJob)
{
	// FluxJob is uint64_t, which is not Unreal's uint64 on every platform (unsigned long on Linux
	// and Mac, unsigned long long there): the job goes through a variable of the C type.
	FluxJob Job = 0;
	const FFluxStatus Status = StatusOf(flux_engine_submit(Handle, Request, &Job));
	OutJob = Job;
	return Status;
}

FFluxStatus FFluxEngine::SubmitTextToImage(const FFluxTextToImageParams& Params, FFluxJobId& OutJob)
{
	if (Params.Width <= 0 || Params.Height <= 0 || Params.Steps < 0)
	{
		return InvalidArgument(FString::Printf(TEXT("invalid size %d x %d or steps %d"), Params.Width, Params.Height, Params.Steps));
	}
	const FTCHARToUTF8 PromptUtf8(*Params.Prompt);
	FScopedRequest Request;
	FFluxStatus Status = Request.Create();
	if (Status.IsOk())
	{
		Status = StatusOf(flux_request_set_prompt(Request.Get(), reinterpret_cast<const char*>(PromptUtf8.Get())));
	}
	if (Status.IsOk())
	{
		Status = StatusOf(flux_request_set_size(Request.Get(), static_cast<uint32>(Params.Width), static_cast<uint32>(Params.Height)));
	}
	if (Status.IsOk())
	{
		Status = SetSampling(Request.Get(), Params.Seed, Params.Steps, Params.Guidance);
	}
	if (Status.IsOk())
	{
		Status = AddLoras(Request.Get(), Params.Loras);
	}
	if (Status.IsOk())
	{
		Status = Submit(Request.Get(), OutJob);
	}
	return Status;
}

FFluxStatus FFluxEngine::SubmitEdit(const FFluxEditParams& Params, TConstArrayView<FColor> Pixels, int32 Width, int32 Height, FFluxJobId& OutJob)
{
	// FColor is B, G, R, A in memory: the library reads it as BGRA8, with no conversion here.
	return SubmitEditPixels(Params, FLUX_PIXEL_FORMAT_BGRA8, Pixels.GetData(), int64(Pixels.Num()) * int64(sizeof(FColor)), Width, Height, OutJob);
}

FFluxStatus FFluxEngine::SubmitEditRgba(const FFluxEditParams& Params, TConstArrayView<uint8> Rgba, int32 Width, int32 Height, FFluxJobId& OutJob)
{
	return SubmitEditPixels(Params, FLUX_PIXEL_FORMAT_RGBA8, Rgba.GetData(), Rgba.Num(), Width, Height, OutJob);
}

FFluxStatus FFluxEngine::SubmitEditPixels(const FFluxEditParams& Params, int32 Format, const void* Pixels, int64 NumBytes, int32 Width, int32 Height, FFluxJobId& OutJob)
{
	if (Width <= 0 || Height <= 0 || NumBytes < int64(Width) * Height * 4)
	{
		return InvalidArgument(FString::Printf(TEXT("%lld bytes do not make a %d x %d image of 4 bytes per pixel"), NumBytes, Width, Height));
	}
	if (Params.Width < 0 || Params.Height < 0 || (Params.Width == 0) != (Params.Height == 0) || Params.Steps < 0)
	{
		return InvalidArgument(FString::Printf(TEXT("invalid size %d x %d or steps %d"), Params.Width, Params.Height, Params.Steps));
	}

	FluxImageDesc Desc;
	flux_image_desc_init(&Desc);
	Desc.width = static_cast<uint32>(Width);
	Desc.height = static_cast<uint32>(Height);
	Desc.format = Format;
	Desc.row_pitch = uint64(Width) * 4;
	FScopedImage Reference;
	// Only read (the pixels are copied when the reference is added), so the const cast is safe.
	FFluxStatus Status = StatusOf(flux_image_create_host(&Desc, const_cast<void*>(Pixels), static_cast<size_t>(NumBytes), &Reference.Handle));

	const FTCHARToUTF8 PromptUtf8(*Params.Prompt);
	FScopedRequest Request;
	if (Status.IsOk())
	{
		Status = Request.Create();
	}
	if (Status.IsOk())
	{
		Status = StatusOf(flux_request_set_prompt(Request.Get(), reinterpret_cast<const char*>(PromptUtf8.Get())));
	}
	if (Status.IsOk())
	{
		Status = StatusOf(flux_request_add_reference(Request.Get(), Reference.Handle, 0));
	}
	if (Status.IsOk())
	{
		Status = StatusOf(flux_request_set_reference_snap(Request.Get(), Params.bSnap));
	}
	if (Status.IsOk() && Params.Width > 0)
	{
		Status = StatusOf(flux_request_set_size(Request.Get(), static_cast<uint32>(Params.Width), static_cast<uint32>(Params.Height)));
	}
	if (Status.IsOk())
	{
		Status = SetSampling(Request.Get(), Params.Seed, Params.Steps, Params.Guidance);
	}
	if (Status.IsOk())
	{
		Status = AddLoras(Request.Get(), Params.Loras);
	}
	if (Status.IsOk())
	{
		Status = Submit(Request.Get(), OutJob);
	}
	return Status;
}

void FFluxEngine::Cancel(FFluxJobId Job)
{
	const FluxResult Result = flux_job_cancel(Handle, Job, nullptr);
	if (Result != FLUX_RESULT_OK)
	{
		UE_LOG(LogFluxEngine, Warning, TEXT("Cancelling job %llu: %s"), Job, *LastErrorMessage());
	}
}

void FFluxEngine::Release(FFluxJobId Job)
{
	const FluxResult Result = flux_job_release(Handle, Job);
	if (Result != FLUX_RESULT_OK)
	{
		UE_LOG(LogFluxEngine, Warning, TEXT("Releasing job %llu: %s"), Job, *LastErrorMessage());
	}
}

bool FFluxEngine::PollEvent(FFluxEvent& OutEvent)
{
	for (;;)
	{
		FluxEvent Raw;
		FMemory::Memzero(Raw);
		Raw.struct_size = sizeof(FluxEvent);
		const FluxResult Result = flux_engine_poll_event(Handle, &Raw);
		if (Result == FLUX_RESULT_NO_EVENT)
		{
			return false;
		}
		if (Result != FLUX_RESULT_OK)
		{
			UE_LOG(LogFluxEngine, Error, TEXT("flux_engine_poll_event failed: %s"), *LastErrorMessage());
			return false;
		}
		if (Raw.kind == FLUX_EVENT_TYPE_LOG)
		{
			ForwardLog(Raw.log_level, Raw.message);
			continue;
		}
		if (Raw.kind == FLUX_EVENT_TYPE_RESIDENCY)
		{
			// Where the model lives changed (the budget moved it, or unloaded it); later jobs' errors repeat why.
			ForwardLog(FLUX_LOG_LEVEL_INFO, Raw.message);
			continue;
		}
		EFluxEventKind Kind;
		if (!ToEventKind(Raw.kind, Kind))
		{
			UE_LOG(LogFluxEngine, Verbose, TEXT("Skipping event of unknown kind %d (a newer library)."), Raw.kind);
			continue;
		}

		// Everything Raw points to is valid only until the next poll: copy it now.
		OutEvent = FFluxEvent();
		OutEvent.Kind = Kind;
		OutEvent.Job = Raw.job;
		OutEvent.Progress.Step = static_cast<int32>(Raw.step);
		OutEvent.Progress.Total = static_cast<int32>(Raw.total);
		OutEvent.Progress.ElapsedSeconds = Raw.elapsed_ms / 1000.0;
		OutEvent.Progress.RemainingSeconds = Raw.eta_ms / 1000.0;
		if (Kind == EFluxEventKind::Preview && Raw.preview_rgb != nullptr)
		{
			OutEvent.PreviewWidth = static_cast<int32>(Raw.preview_width);
			OutEvent.PreviewHeight = static_cast<int32>(Raw.preview_height);
			OutEvent.PreviewRgb.Append(Raw.preview_rgb, static_cast<int32>(Raw.preview_width * Raw.preview_height * 3));
		}
		if (Raw.message != nullptr)
		{
			OutEvent.Message = FString(UTF8_TO_TCHAR(Raw.message));
		}
		OutEvent.Timings.TextSeconds = Raw.text_ms / 1000.0;
		OutEvent.Timings.DenoiseSeconds = Raw.denoise_ms / 1000.0;
		OutEvent.Timings.DecodeSeconds = Raw.decode_ms / 1000.0;
		OutEvent.Timings.bEmbeddingCached = Raw.embedding_cached != 0;
		return true;
	}
}

FFluxStatus FFluxEngine::CopyImage(FFluxJobId Job, TArray<FColor>& OutPixels, int32& OutWidth, int32& OutHeight)
{
	uint32 Width = 0;
	uint32 Height = 0;
	FFluxStatus Status = StatusOf(flux_job_image_size(Handle, Job, &Width, &Height));
	if (!Status.IsOk())
	{
		return Status;
	}
	// At most 4096 x 4096 pixels: the pixel and byte counts fit an int32.
	TArray<FColor> Pixels;
	Pixels.SetNumUninitialized(static_cast<int32>(Width * Height));

	// The library writes the result straight into the FColors as BGRA8 (opaque alpha).
	FluxImageDesc Desc;
	flux_image_desc_init(&Desc);
	Desc.width = Width;
	Desc.height = Height;
	Desc.format = FLUX_PIXEL_FORMAT_BGRA8;
	Desc.row_pitch = uint64(Width) * sizeof(FColor);
	FScopedImage Target;
	Status = StatusOf(flux_image_create_host(&Desc, Pixels.GetData(), static_cast<size_t>(Pixels.Num()) * sizeof(FColor), &Target.Handle));
	if (Status.IsOk())
	{
		Status = StatusOf(flux_job_write_image(Handle, Job, Target.Handle, 0));
	}
	if (Status.IsOk())
	{
		OutPixels = MoveTemp(Pixels);
		OutWidth = static_cast<int32>(Width);
		OutHeight = static_cast<int32>(Height);
	}
	return Status;
}
