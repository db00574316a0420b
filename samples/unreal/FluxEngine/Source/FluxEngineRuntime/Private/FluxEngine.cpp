// FFluxEngine over flux_engine.h: fills the versioned descriptors, turns FluxResult codes into
// FFluxStatus (reading the thread-local error sentence right after the failing call, on the same
// thread) and copies events and images out of the library's memory.

#include "FluxEngine.h"

#include <atomic>

#include "FluxEngineLog.h"
#include "FluxEngineRuntimeModule.h"
#include "FluxPixels.h"

#include "flux_engine.h"

namespace
{
	std::atomic<int32> LiveEngines{0};

	/** The calling thread's last library error (valid until its next failing call). */
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
	return StatusOf(flux_engine_load_model(Handle, &Desc, &OutJob));
}

FFluxStatus FFluxEngine::SubmitTextToImage(const FFluxTextToImageParams& Params, FFluxJobId& OutJob)
{
	if (Params.Width <= 0 || Params.Height <= 0 || Params.Steps < 0)
	{
		return InvalidArgument(FString::Printf(TEXT("invalid size %d x %d or steps %d"), Params.Width, Params.Height, Params.Steps));
	}
	const FTCHARToUTF8 PromptUtf8(*Params.Prompt);
	FluxTextToImageDesc Desc;
	flux_text_to_image_desc_init(&Desc);
	Desc.prompt = reinterpret_cast<const char*>(PromptUtf8.Get());
	Desc.width = static_cast<uint32>(Params.Width);
	Desc.height = static_cast<uint32>(Params.Height);
	Desc.seed = Params.Seed;
	Desc.steps = static_cast<uint32>(Params.Steps);
	Desc.guidance = Params.Guidance;
	return StatusOf(flux_engine_submit_text_to_image(Handle, &Desc, &OutJob));
}

FFluxStatus FFluxEngine::SubmitEdit(const FFluxEditParams& Params, TConstArrayView<FColor> Pixels, int32 Width, int32 Height, FFluxJobId& OutJob)
{
	const TArray<uint8> Rgba = FluxPixels::ColorsToRgba(Pixels, Width, Height);
	if (Rgba.IsEmpty())
	{
		return InvalidArgument(FString::Printf(TEXT("%d pixels do not make a %d x %d image"), Pixels.Num(), Width, Height));
	}
	return SubmitEditRgba(Params, Rgba, Width, Height, OutJob);
}

FFluxStatus FFluxEngine::SubmitEditRgba(const FFluxEditParams& Params, TConstArrayView<uint8> Rgba, int32 Width, int32 Height, FFluxJobId& OutJob)
{
	if (Width <= 0 || Height <= 0 || Rgba.Num() < int64(Width) * Height * 4)
	{
		return InvalidArgument(FString::Printf(TEXT("%d bytes do not make a %d x %d RGBA8 image"), Rgba.Num(), Width, Height));
	}
	if (Params.Width < 0 || Params.Height < 0 || Params.Steps < 0)
	{
		return InvalidArgument(FString::Printf(TEXT("invalid size %d x %d or steps %d"), Params.Width, Params.Height, Params.Steps));
	}
	FluxImageView Reference;
	Reference.width = static_cast<uint32>(Width);
	Reference.height = static_cast<uint32>(Height);
	Reference.stride = static_cast<uint32>(Width) * 4;
	Reference.format = FLUX_PIXEL_FORMAT_RGBA8;
	Reference.data = Rgba.GetData();

	const FTCHARToUTF8 PromptUtf8(*Params.Prompt);
	FluxEditDesc Desc;
	flux_edit_desc_init(&Desc);
	Desc.prompt = reinterpret_cast<const char*>(PromptUtf8.Get());
	Desc.images = &Reference;
	Desc.image_count = 1;
	Desc.snap = Params.bSnap ? 1 : 0;
	Desc.width = static_cast<uint32>(Params.Width);
	Desc.height = static_cast<uint32>(Params.Height);
	Desc.seed = Params.Seed;
	Desc.steps = static_cast<uint32>(Params.Steps);
	Desc.guidance = Params.Guidance;
	return StatusOf(flux_engine_submit_edit(Handle, &Desc, &OutJob));
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
	FluxResult Result = flux_job_image_size(Handle, Job, &Width, &Height);
	if (Result != FLUX_RESULT_OK)
	{
		return StatusOf(Result);
	}
	// At most 4096 x 4096 pixels: the byte count fits an int32.
	const int32 RowBytes = static_cast<int32>(Width) * 4;
	TArray<uint8> Rgba;
	Rgba.SetNumUninitialized(RowBytes * static_cast<int32>(Height));
	Result = flux_job_copy_image(Handle, Job, FLUX_PIXEL_FORMAT_RGBA8, Rgba.GetData(), static_cast<size_t>(RowBytes), static_cast<size_t>(Rgba.Num()));
	if (Result != FLUX_RESULT_OK)
	{
		return StatusOf(Result);
	}
	OutWidth = static_cast<int32>(Width);
	OutHeight = static_cast<int32>(Height);
	OutPixels = FluxPixels::RgbaToColors(Rgba, OutWidth, OutHeight);
	return FFluxStatus();
}
