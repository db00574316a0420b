// UFluxEditorSubsystem: submits jobs, follows them through polled events and keeps their state.
// Everything here runs on the game thread (subsystem calls and the core ticker).

#include "FluxEditorSubsystem.h"

#include "Engine/Texture2D.h"
#include "FluxEngineLog.h"
#include "FluxEngineSettings.h"
#include "FluxPixels.h"
#include "FluxTextures.h"
#include "IContentBrowserSingleton.h"
#include "Misc/Paths.h"

#define LOCTEXT_NAMESPACE "FluxEditorSubsystem"

namespace
{
	/** The engine's size rule for text-to-image (flux-core's MAX_SIDE, MAX_PIXELS), checked before a
	 * model load is queued for the job. */
	constexpr int32 MaxSide = 4096;
	constexpr int64 MaxPixels = 2048 * 2048;

	FText Seconds(double Value)
	{
		FNumberFormattingOptions Options;
		Options.MinimumFractionalDigits = 1;
		Options.MaximumFractionalDigits = 1;
		return FText::AsNumber(Value, &Options);
	}

	/** "T_Flux_ALighthouseAtDusk" for "a lighthouse at dusk": the prompt's first four words. */
	FString AssetNameForPrompt(const FString& Prompt)
	{
		TArray<FString> Words;
		Prompt.ParseIntoArrayWS(Words);
		FString Joined;
		for (int32 Index = 0; Index < Words.Num() && Index < 4; ++Index)
		{
			bool bFirstChar = true;
			for (const TCHAR Char : Words[Index])
			{
				if (FChar::IsAlnum(Char))
				{
					Joined.AppendChar(bFirstChar ? FChar::ToUpper(Char) : Char);
					bFirstChar = false;
				}
			}
		}
		return Joined.IsEmpty() ? FString(TEXT("T_Flux")) : TEXT("T_Flux_") + Joined;
	}
}

void UFluxEditorSubsystem::Initialize(FSubsystemCollectionBase& Collection)
{
	Super::Initialize(Collection);
	const FString Version = FFluxEngine::GetLibraryVersion();
	StatusText = Version.IsEmpty()
		? LOCTEXT("NoLibrary", "The Flux Engine library is not loaded: see the Output Log (LogFluxEngine).")
		: FText::Format(LOCTEXT("Ready", "Flux Engine {0} ready. The engine starts with the first job."), FText::FromString(Version));
	TickHandle = FTSTicker::GetCoreTicker().AddTicker(FTickerDelegate::CreateUObject(this, &UFluxEditorSubsystem::Tick));
}

void UFluxEditorSubsystem::Deinitialize()
{
	FTSTicker::GetCoreTicker().RemoveTicker(TickHandle);
	if (Engine.IsValid())
	{
		UE_LOG(LogFluxEngine, Log, TEXT("Stopping the Flux engine: waits for the step or model component in progress."));
		// Cancels every job and joins the worker thread.
		Engine.Reset();
	}
	ModelJob = 0;
	ImageJob = 0;
	Super::Deinitialize();
}

bool UFluxEditorSubsystem::Tick(float DeltaTime)
{
	FFluxEvent Event;
	while (Engine.IsValid() && Engine->PollEvent(Event))
	{
		if (ModelJob != 0 && Event.Job == ModelJob)
		{
			HandleModelEvent(Event);
		}
		else if (ImageJob != 0 && Event.Job == ImageJob)
		{
			HandleImageEvent(Event);
		}
	}
	return true;
}

bool UFluxEditorSubsystem::Generate(const FFluxImageRequest& Request)
{
	FText Error;
	if (!CanStart(Request, Error))
	{
		ReportError(Error);
		return false;
	}
	const bool bSizeOk = Request.Width >= 16 && Request.Height >= 16 && Request.Width <= MaxSide && Request.Height <= MaxSide
		&& Request.Width % 16 == 0 && Request.Height % 16 == 0 && int64(Request.Width) * Request.Height <= MaxPixels;
	if (!bSizeOk)
	{
		ReportError(FText::Format(LOCTEXT("BadSize", "{0} x {1} is not a valid size: use multiples of 16, at most 4096 a side and 4 megapixels."),
			FText::AsNumber(Request.Width), FText::AsNumber(Request.Height)));
		return false;
	}
	if (!PrepareEngine(Error))
	{
		ReportError(Error);
		return false;
	}

	FFluxTextToImageParams Params;
	Params.Prompt = Request.Prompt;
	Params.Width = Request.Width;
	Params.Height = Request.Height;
	Params.Seed = static_cast<uint64>(FMath::Max<int64>(Request.Seed, 0));
	Params.Steps = FMath::Max(Request.Steps, 0);
	Params.Guidance = Request.Guidance;
	FFluxJobId Job = 0;
	const FFluxStatus Status = Engine->SubmitTextToImage(Params, Job);
	if (!Status.IsOk())
	{
		ReportError(FText::Format(LOCTEXT("Refused", "The engine refused the job: {0}"), FText::FromString(Status.Message)));
		return false;
	}
	StartImageJob(Job, LOCTEXT("Generating", "Generating"), Request.Prompt);
	return true;
}

bool UFluxEditorSubsystem::EditTexture(UTexture2D* Texture, const FFluxImageRequest& Request)
{
	FText Error;
	TArray<FColor> Pixels;
	int32 Width = 0;
	int32 Height = 0;
	if (!CanStart(Request, Error) || !FluxTextures::ReadSourcePixels(Texture, Pixels, Width, Height, Error) || !PrepareEngine(Error))
	{
		ReportError(Error);
		return false;
	}

	FFluxEditParams Params;
	Params.Prompt = Request.Prompt;
	Params.Seed = static_cast<uint64>(FMath::Max<int64>(Request.Seed, 0));
	Params.Steps = FMath::Max(Request.Steps, 0);
	Params.Guidance = Request.Guidance;
	FFluxJobId Job = 0;
	const FFluxStatus Status = Engine->SubmitEdit(Params, Pixels, Width, Height, Job);
	if (!Status.IsOk())
	{
		ReportError(FText::Format(LOCTEXT("Refused", "The engine refused the job: {0}"), FText::FromString(Status.Message)));
		return false;
	}
	StartImageJob(Job, FText::Format(LOCTEXT("Editing", "Editing {0}"), FText::FromString(Texture->GetName())), Request.Prompt);
	return true;
}

bool UFluxEditorSubsystem::EditSelectedTexture(const FFluxImageRequest& Request)
{
	TArray<FAssetData> Selected;
	IContentBrowserSingleton::Get().GetSelectedAssets(Selected);
	for (const FAssetData& Asset : Selected)
	{
		if (Asset.IsInstanceOf(UTexture2D::StaticClass()))
		{
			return EditTexture(Cast<UTexture2D>(Asset.GetAsset()), Request);
		}
	}
	ReportError(LOCTEXT("NoSelection", "Select a texture (Texture2D) in the Content Browser first."));
	return false;
}

void UFluxEditorSubsystem::Cancel()
{
	if (!Engine.IsValid() || !IsBusy())
	{
		return;
	}
	// The image job first, so that it cannot start when a load ahead of it ends.
	if (ImageJob != 0)
	{
		Engine->Cancel(ImageJob);
	}
	if (ModelJob != 0)
	{
		Engine->Cancel(ModelJob);
	}
	SetStatus(LOCTEXT("Cancelling", "Cancelling..."));
}

UTexture2D* UFluxEditorSubsystem::SaveResultAsAsset(const FString& AssetName)
{
	if (ResultPixels.IsEmpty())
	{
		ReportError(LOCTEXT("NoResult", "There is no result to save yet."));
		return nullptr;
	}
	FText Error;
	UTexture2D* Asset = FluxTextures::SaveAsAsset(ResultPixels, ResultWidth, ResultHeight,
		AssetName.IsEmpty() ? AssetNameForPrompt(ResultPrompt) : AssetName, Error);
	if (Asset == nullptr)
	{
		ReportError(Error);
		return nullptr;
	}
	if (Error.IsEmpty())
	{
		SetStatus(FText::Format(LOCTEXT("Saved", "Saved {0}."), FText::FromString(Asset->GetPathName())));
	}
	else
	{
		ReportError(Error);
	}
	IContentBrowserSingleton::Get().SyncBrowserToAssets(TArray<UObject*>{ Asset });
	return Asset;
}

UTexture2D* UFluxEditorSubsystem::GetPreviewTexture() const
{
	return PreviewTexture;
}

UTexture2D* UFluxEditorSubsystem::GetResultTexture() const
{
	return ResultTexture;
}

bool UFluxEditorSubsystem::CanStart(const FFluxImageRequest& Request, FText& OutError) const
{
	if (IsBusy())
	{
		OutError = LOCTEXT("Busy", "A job is under way: cancel it or wait for it to end.");
		return false;
	}
	if (Request.Prompt.TrimStartAndEnd().IsEmpty())
	{
		OutError = LOCTEXT("NoPrompt", "Write a prompt first.");
		return false;
	}
	if (GetDefault<UFluxEngineSettings>()->ModelFolder.Path.TrimStartAndEnd().IsEmpty())
	{
		OutError = LOCTEXT("NoFolder", "Choose the model folder first (in the panel, or Editor Preferences > Plugins > Flux Engine).");
		return false;
	}
	return true;
}

bool UFluxEditorSubsystem::PrepareEngine(FText& OutError)
{
	const UFluxEngineSettings* Settings = GetDefault<UFluxEngineSettings>();
	const FFluxEngineOptions Options = Settings->MakeEngineOptions();
	if (!Engine.IsValid() || Options != EngineOptions)
	{
		// Nothing runs, so destroying the previous engine does not wait on a job.
		Engine.Reset();
		LoadedModelFolder.Reset();
		FString Error;
		Engine = FFluxEngine::Create(Options, Error);
		if (!Engine.IsValid())
		{
			OutError = FText::Format(LOCTEXT("NoEngine", "The Flux engine could not start: {0}"), FText::FromString(Error));
			return false;
		}
		EngineOptions = Options;
	}

	const FString Folder = Settings->ModelFolder.Path.TrimStartAndEnd();
	if (Folder == LoadedModelFolder)
	{
		return true;
	}
	FFluxJobId Job = 0;
	const FFluxStatus Status = Engine->LoadModel(FPaths::ConvertRelativePathToFull(Folder), Job);
	if (!Status.IsOk())
	{
		OutError = FText::Format(LOCTEXT("BadModel", "No model can be loaded from {0}: {1}"), FText::FromString(Folder), FText::FromString(Status.Message));
		return false;
	}
	// The image job is queued right behind the load and runs once it ends.
	ModelJob = Job;
	LoadedModelFolder = Folder;
	SetStatus(FText::Format(LOCTEXT("Loading", "Loading the model from {0}..."), FText::FromString(Folder)));
	return true;
}

void UFluxEditorSubsystem::StartImageJob(FFluxJobId Job, const FText& What, const FString& Prompt)
{
	ImageJob = Job;
	ImageJobLabel = What;
	ImageJobPrompt = Prompt;
	Progress = 0.0f;
	bHasStepProgress = false;
	if (ModelJob == 0)
	{
		SetStatus(FText::Format(LOCTEXT("Queued", "{0}: queued..."), What));
	}
}

void UFluxEditorSubsystem::HandleModelEvent(const FFluxEvent& Event)
{
	switch (Event.Kind)
	{
	case EFluxEventKind::Finished:
		ForgetModelJob();
		if (ImageJob != 0)
		{
			SetStatus(FText::Format(LOCTEXT("LoadedThen", "Model loaded. {0}..."), ImageJobLabel));
		}
		else
		{
			SetStatus(LOCTEXT("Loaded", "Model loaded."));
		}
		break;
	case EFluxEventKind::Failed:
		ForgetModelJob();
		LoadedModelFolder.Reset();
		// Without a model the image job behind the load could only fail.
		ForgetImageJob();
		ReportError(FText::Format(LOCTEXT("LoadFailed", "Loading the model failed: {0}"), FText::FromString(Event.Message)));
		break;
	case EFluxEventKind::Cancelled:
		ForgetModelJob();
		LoadedModelFolder.Reset();
		if (ImageJob == 0)
		{
			SetStatus(LOCTEXT("LoadCancelled", "Cancelled."));
		}
		break;
	default:
		break;
	}
}

void UFluxEditorSubsystem::HandleImageEvent(const FFluxEvent& Event)
{
	switch (Event.Kind)
	{
	case EFluxEventKind::Started:
		SetStatus(FText::Format(LOCTEXT("Started", "{0}: encoding the inputs..."), ImageJobLabel));
		break;
	case EFluxEventKind::Progress:
		Progress = Event.Progress.GetFraction();
		bHasStepProgress = true;
		if (Event.Progress.Step >= Event.Progress.Total)
		{
			SetStatus(FText::Format(LOCTEXT("Decoding", "{0}: decoding the image..."), ImageJobLabel));
		}
		else
		{
			SetStatus(FText::Format(LOCTEXT("Step", "{0}: step {1} of {2}, about {3} s left"), ImageJobLabel,
				FText::AsNumber(Event.Progress.Step), FText::AsNumber(Event.Progress.Total),
				FText::AsNumber(FMath::CeilToInt(Event.Progress.RemainingSeconds))));
		}
		break;
	case EFluxEventKind::Preview:
		ShowPreview(Event);
		break;
	case EFluxEventKind::Finished:
		TakeResult(Event);
		break;
	case EFluxEventKind::Failed:
		ForgetImageJob();
		ReportError(FText::Format(LOCTEXT("Failed", "{0} failed: {1}"), ImageJobLabel, FText::FromString(Event.Message)));
		break;
	case EFluxEventKind::Cancelled:
		ForgetImageJob();
		SetStatus(LOCTEXT("Cancelled", "Cancelled."));
		break;
	default:
		break;
	}
}

void UFluxEditorSubsystem::ShowPreview(const FFluxEvent& Event)
{
	const TArray<FColor> Pixels = FluxPixels::RgbToColors(Event.PreviewRgb, Event.PreviewWidth, Event.PreviewHeight);
	if (UTexture2D* Texture = FluxTextures::MakeTransient(Pixels, Event.PreviewWidth, Event.PreviewHeight))
	{
		PreviewTexture = Texture;
		OnPreviewUpdated.Broadcast(Texture);
	}
}

void UFluxEditorSubsystem::TakeResult(const FFluxEvent& Event)
{
	TArray<FColor> Pixels;
	int32 Width = 0;
	int32 Height = 0;
	const FFluxStatus Status = Engine->CopyImage(ImageJob, Pixels, Width, Height);
	// Frees the engine's copy of the result.
	ForgetImageJob();
	if (!Status.IsOk())
	{
		ReportError(FText::Format(LOCTEXT("NoImage", "The result could not be read: {0}"), FText::FromString(Status.Message)));
		return;
	}
	UTexture2D* Texture = FluxTextures::MakeTransient(Pixels, Width, Height);
	if (Texture == nullptr)
	{
		ReportError(LOCTEXT("NoTexture", "The result could not be turned into a texture."));
		return;
	}

	ResultTexture = Texture;
	ResultPixels = MoveTemp(Pixels);
	ResultWidth = Width;
	ResultHeight = Height;
	ResultPrompt = ImageJobPrompt;
	Progress = 1.0f;
	const FFluxTimings& Timings = Event.Timings;
	if (Timings.bEmbeddingCached)
	{
		SetStatus(FText::Format(LOCTEXT("DoneCached", "Done: {0} x {1} in {2} s (prompt cached, denoising {3} s, decoding {4} s)."),
			FText::AsNumber(Width), FText::AsNumber(Height), Seconds(Timings.GetTotalSeconds()),
			Seconds(Timings.DenoiseSeconds), Seconds(Timings.DecodeSeconds)));
	}
	else
	{
		SetStatus(FText::Format(LOCTEXT("Done", "Done: {0} x {1} in {2} s (prompt {3} s, denoising {4} s, decoding {5} s)."),
			FText::AsNumber(Width), FText::AsNumber(Height), Seconds(Timings.GetTotalSeconds()),
			Seconds(Timings.TextSeconds), Seconds(Timings.DenoiseSeconds), Seconds(Timings.DecodeSeconds)));
	}
	OnResultReady.Broadcast(Texture);
}

void UFluxEditorSubsystem::ForgetModelJob()
{
	if (ModelJob != 0 && Engine.IsValid())
	{
		Engine->Release(ModelJob);
	}
	ModelJob = 0;
}

void UFluxEditorSubsystem::ForgetImageJob()
{
	if (ImageJob != 0 && Engine.IsValid())
	{
		// Cancels it too if it has not ended (a job queued behind a failed load).
		Engine->Release(ImageJob);
	}
	ImageJob = 0;
	bHasStepProgress = false;
}

void UFluxEditorSubsystem::SetStatus(const FText& Text)
{
	StatusText = Text;
}

void UFluxEditorSubsystem::ReportError(const FText& Text)
{
	SetStatus(Text);
	UE_LOG(LogFluxEngine, Warning, TEXT("%s"), *Text.ToString());
}

#undef LOCTEXT_NAMESPACE
