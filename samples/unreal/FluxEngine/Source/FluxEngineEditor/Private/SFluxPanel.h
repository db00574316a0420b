// SFluxPanel: the Window > Flux Engine tab. It edits a request and the model folder, forwards
// its buttons to UFluxEditorSubsystem and shows the subsystem's progress, status and image. Jobs
// and results live in the subsystem: closing the tab neither stops nor loses them (only the
// request fields start over when it is reopened).

#pragma once

#include "CoreMinimal.h"
#include "FluxImageRequest.h"
#include "Styling/SlateBrush.h"
#include "UObject/GCObject.h"
#include "UObject/ObjectPtr.h"
#include "Widgets/SCompoundWidget.h"

class UFluxEditorSubsystem;
class UTexture2D;

class SFluxPanel : public SCompoundWidget, public FGCObject
{
public:
	SLATE_BEGIN_ARGS(SFluxPanel) {}
	SLATE_END_ARGS()

	void Construct(const FArguments& InArgs);

	// FGCObject: keeps the texture on display alive while the brush points at it.
	virtual void AddReferencedObjects(FReferenceCollector& Collector) override;
	virtual FString GetReferencerName() const override;

private:
	static UFluxEditorSubsystem* GetSubsystem();
	static TSharedRef<SWidget> MakeRow(const FText& Label, const TSharedRef<SWidget>& Content);

	TSharedRef<SWidget> MakeModelRow();
	TSharedRef<SWidget> MakeSizeRow();
	TSharedRef<SWidget> MakeButtonRow();

	FText GetModelFolderText() const;
	void OnModelFolderCommitted(const FText& Text, ETextCommit::Type CommitType);
	FReply OnBrowseModelFolder();
	FReply OnOpenSettings();
	void SetModelFolder(const FString& Folder);

	FReply OnGenerate();
	FReply OnEditSelected();
	FReply OnCancel();
	FReply OnSaveAsAsset();

	bool IsIdle() const;
	bool IsBusy() const;
	bool HasResult() const;
	TOptional<float> GetProgressPercent() const;
	FText GetStatusText() const;
	EVisibility GetImageVisibility() const;
	EVisibility GetPlaceholderVisibility() const;

	/** Points the brush at Texture (a new preview or result). */
	void ShowTexture(UTexture2D* Texture);

	FFluxImageRequest Request;
	FSlateBrush ImageBrush;
	TObjectPtr<UTexture2D> ShownTexture;
};
