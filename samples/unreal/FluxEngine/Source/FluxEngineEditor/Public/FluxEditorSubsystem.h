// UFluxEditorSubsystem: the editor's one Flux engine and the state of its current job.
//
// Threading: the engine works on the library's worker thread. This subsystem lives on the game
// thread and only submits jobs, polls events from an FTSTicker (never waiting on a job) and
// turns results into textures there. Deinitialize destroys the engine, which cancels its jobs and
// joins the worker: that waits for the denoising step (or the model component being read) in progress.
//
// Also usable from editor scripts, for example in Python:
//   flux = unreal.get_editor_subsystem(unreal.FluxEditorSubsystem)
//   request = unreal.FluxImageRequest()
//   request.prompt = "a lighthouse at dusk"
//   flux.generate(request)

#pragma once

#include "CoreMinimal.h"
#include "Containers/Ticker.h"
#include "EditorSubsystem.h"
#include "FluxEngine.h"
#include "FluxImageRequest.h"

#include "FluxEditorSubsystem.generated.h"

class UTexture2D;

DECLARE_MULTICAST_DELEGATE_OneParam(FOnFluxTexture, UTexture2D* /*Texture*/);

UCLASS()
class FLUXENGINEEDITOR_API UFluxEditorSubsystem : public UEditorSubsystem
{
	GENERATED_BODY()

public:
	virtual void Initialize(FSubsystemCollectionBase& Collection) override;
	virtual void Deinitialize() override;

	/** Queues a text-to-image job, loading the model of the settings first when it is not loaded.
	 * False (with the reason in the status text) when a job is running or the request is refused. */
	UFUNCTION(BlueprintCallable, Category = "Flux Engine")
	bool Generate(const FFluxImageRequest& Request);

	/** Queues a Kontext edit of Texture's source pixels (Request's size is not used: the output
	 * takes the reference's size, snapped to a Kontext resolution). */
	UFUNCTION(BlueprintCallable, Category = "Flux Engine")
	bool EditTexture(UTexture2D* Texture, const FFluxImageRequest& Request);

	/** EditTexture on the first Texture2D selected in the Content Browser. */
	UFUNCTION(BlueprintCallable, Category = "Flux Engine")
	bool EditSelectedTexture(const FFluxImageRequest& Request);

	/** Cancels the current job: a queued one never starts, a running one stops within a step.
	 * A model load that already started runs to its end. */
	UFUNCTION(BlueprintCallable, Category = "Flux Engine")
	void Cancel();

	/** Saves the last result as a texture asset under /Game/FluxEngine/ (named after its prompt
	 * when AssetName is empty) and returns it, or null with the reason in the status text. */
	UFUNCTION(BlueprintCallable, Category = "Flux Engine")
	UTexture2D* SaveResultAsAsset(const FString& AssetName);

	/** Whether a model load or an image job is under way. */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	bool IsBusy() const { return ModelJob != 0 || ImageJob != 0; }

	/** Fraction of the current image job's denoising steps done, in [0, 1]. */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	float GetProgress() const { return Progress; }

	/** Whether the current job reports steps (false while the model loads, the job waits or the
	 * prompt is encoded: progress is unknown then). */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	bool HasStepProgress() const { return bHasStepProgress; }

	/** One line about what happens now, or what went wrong last. */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	FText GetStatusText() const { return StatusText; }

	/** The latest preview of the running job (transient; small, 1/8 of the output size). */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	UTexture2D* GetPreviewTexture() const;

	/** The last result (transient until saved with SaveResultAsAsset). */
	UFUNCTION(BlueprintPure, Category = "Flux Engine")
	UTexture2D* GetResultTexture() const;

	/** A new preview texture replaced the previous one. */
	FOnFluxTexture OnPreviewUpdated;
	/** A job finished and its result texture is ready. */
	FOnFluxTexture OnResultReady;

private:
	bool Tick(float DeltaTime);
	void HandleModelEvent(const FFluxEvent& Event);
	void HandleImageEvent(const FFluxEvent& Event);
	void ShowPreview(const FFluxEvent& Event);
	void TakeResult(const FFluxEvent& Event);

	/** Whether a job may start now: nothing running, a prompt, a model folder in the settings. */
	bool CanStart(const FFluxImageRequest& Request, FText& OutError) const;
	/** Starts (or, when the settings changed, restarts) the engine and queues the model load
	 * when the settings' folder is not the one loaded. Only called while nothing runs. */
	bool PrepareEngine(FText& OutError);
	void StartImageJob(FFluxJobId Job, const FText& What, const FString& Prompt);
	void ForgetModelJob();
	void ForgetImageJob();
	void SetStatus(const FText& Text);
	/** Sets the status and writes it to the Output Log as a warning. */
	void ReportError(const FText& Text);

	TSharedPtr<FFluxEngine> Engine;
	/** The options Engine was created with. */
	FFluxEngineOptions EngineOptions;
	/** The folder of the model Engine holds or is loading (empty: none). */
	FString LoadedModelFolder;

	FFluxJobId ModelJob = 0;
	FFluxJobId ImageJob = 0;
	/** "Generating" or "Editing", for the status line. */
	FText ImageJobLabel;
	FString ImageJobPrompt;

	float Progress = 0.0f;
	bool bHasStepProgress = false;
	FText StatusText;

	UPROPERTY(Transient)
	TObjectPtr<UTexture2D> PreviewTexture;

	UPROPERTY(Transient)
	TObjectPtr<UTexture2D> ResultTexture;

	/** The result's pixels, kept for SaveResultAsAsset (the transient texture holds them for the GPU). */
	TArray<FColor> ResultPixels;
	int32 ResultWidth = 0;
	int32 ResultHeight = 0;
	FString ResultPrompt;

	FTSTicker::FDelegateHandle TickHandle;
};
