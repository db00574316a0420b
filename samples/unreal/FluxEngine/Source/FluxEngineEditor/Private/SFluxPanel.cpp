// SFluxPanel layout and handlers. Attributes read the subsystem every frame; the image brush
// follows the subsystem's OnPreviewUpdated / OnResultReady delegates.

#include "SFluxPanel.h"

#include "DesktopPlatformModule.h"
#include "Editor.h"
#include "Engine/Texture2D.h"
#include "FluxEditorSubsystem.h"
#include "FluxEngineSettings.h"
#include "Framework/Application/SlateApplication.h"
#include "IDesktopPlatform.h"
#include "ISettingsModule.h"
#include "Modules/ModuleManager.h"
#include "Widgets/Images/SImage.h"
#include "Widgets/Input/SButton.h"
#include "Widgets/Input/SEditableTextBox.h"
#include "Widgets/Input/SMultiLineEditableTextBox.h"
#include "Widgets/Input/SSpinBox.h"
#include "Widgets/Layout/SBox.h"
#include "Widgets/Layout/SScaleBox.h"
#include "Widgets/Layout/SScrollBox.h"
#include "Widgets/Notifications/SProgressBar.h"
#include "Widgets/SBoxPanel.h"
#include "Widgets/SOverlay.h"
#include "Widgets/Text/STextBlock.h"

#define LOCTEXT_NAMESPACE "SFluxPanel"

void SFluxPanel::Construct(const FArguments& InArgs)
{
	if (UFluxEditorSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->OnPreviewUpdated.AddSP(this, &SFluxPanel::ShowTexture);
		Subsystem->OnResultReady.AddSP(this, &SFluxPanel::ShowTexture);
		ShowTexture(Subsystem->GetResultTexture() != nullptr ? Subsystem->GetResultTexture() : Subsystem->GetPreviewTexture());
	}

	ChildSlot
	[
		SNew(SScrollBox)
		+ SScrollBox::Slot()
		.Padding(8.0f)
		[
			SNew(SVerticalBox)

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeModelRow()
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeRow(LOCTEXT("Prompt", "Prompt"),
					SNew(SBox)
					.MinDesiredHeight(64.0f)
					[
						SNew(SMultiLineEditableTextBox)
						.AutoWrapText(true)
						.HintText(LOCTEXT("PromptHint", "A red lighthouse at dusk, or for an edit: make it night"))
						.Text(FText::FromString(Request.Prompt))
						.OnTextChanged_Lambda([this](const FText& Text) { Request.Prompt = Text.ToString(); })
					])
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeSizeRow()
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeRow(LOCTEXT("Steps", "Steps"),
					SNew(SSpinBox<int32>)
					.ToolTipText(LOCTEXT("StepsTip", "Denoising steps; 0 takes the model's default (dev 28, schnell 4, Kontext edits 30)."))
					.MinValue(0)
					.MaxValue(100)
					.Value_Lambda([this] { return Request.Steps; })
					.OnValueChanged_Lambda([this](int32 Value) { Request.Steps = Value; }))
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeRow(LOCTEXT("Guidance", "Guidance"),
					SNew(SSpinBox<float>)
					.ToolTipText(LOCTEXT("GuidanceTip", "Distilled guidance; -1 takes the model's default (dev 3.5, Kontext edits 2.5)."))
					.MinValue(-1.0f)
					.MaxValue(20.0f)
					.Delta(0.1f)
					.Value_Lambda([this] { return Request.Guidance; })
					.OnValueChanged_Lambda([this](float Value) { Request.Guidance = Value; }))
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				MakeRow(LOCTEXT("Seed", "Seed"),
					SNew(SSpinBox<int64>)
					.ToolTipText(LOCTEXT("SeedTip", "The same seed, prompt and settings give the same image on every machine."))
					.MinValue(0)
					.Value_Lambda([this] { return Request.Seed; })
					.OnValueChanged_Lambda([this](int64 Value) { Request.Seed = Value; }))
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 8.0f, 0.0f, 4.0f)
			[
				MakeButtonRow()
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				SNew(SProgressBar)
				.Percent(this, &SFluxPanel::GetProgressPercent)
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 2.0f)
			[
				SNew(STextBlock)
				.AutoWrapText(true)
				.Text(this, &SFluxPanel::GetStatusText)
			]

			+ SVerticalBox::Slot().AutoHeight().Padding(0.0f, 8.0f, 0.0f, 0.0f)
			[
				SNew(SBox)
				.HeightOverride(512.0f)
				[
					SNew(SOverlay)
					+ SOverlay::Slot()
					[
						SNew(SScaleBox)
						.Stretch(EStretch::ScaleToFit)
						.Visibility(this, &SFluxPanel::GetImageVisibility)
						[
							SNew(SImage)
							.Image(&ImageBrush)
						]
					]
					+ SOverlay::Slot()
					.HAlign(HAlign_Center)
					.VAlign(VAlign_Center)
					[
						SNew(STextBlock)
						.Visibility(this, &SFluxPanel::GetPlaceholderVisibility)
						.Text(LOCTEXT("NoImage", "Previews and results appear here."))
					]
				]
			]
		]
	];
}

TSharedRef<SWidget> SFluxPanel::MakeRow(const FText& Label, const TSharedRef<SWidget>& Content)
{
	return SNew(SHorizontalBox)
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.VAlign(VAlign_Center)
		.Padding(0.0f, 0.0f, 8.0f, 0.0f)
		[
			SNew(SBox)
			.WidthOverride(96.0f)
			[
				SNew(STextBlock).Text(Label)
			]
		]
		+ SHorizontalBox::Slot()
		.FillWidth(1.0f)
		.VAlign(VAlign_Center)
		[
			Content
		];
}

TSharedRef<SWidget> SFluxPanel::MakeModelRow()
{
	return MakeRow(LOCTEXT("ModelFolder", "Model folder"),
		SNew(SHorizontalBox)
		+ SHorizontalBox::Slot()
		.FillWidth(1.0f)
		[
			SNew(SEditableTextBox)
			.HintText(LOCTEXT("ModelFolderHint", "A diffusers folder or a folder of BFL / ComfyUI .safetensors files"))
			.Text(this, &SFluxPanel::GetModelFolderText)
			.OnTextCommitted(this, &SFluxPanel::OnModelFolderCommitted)
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.Padding(4.0f, 0.0f, 0.0f, 0.0f)
		[
			SNew(SButton)
			.Text(LOCTEXT("Browse", "Browse..."))
			.OnClicked(this, &SFluxPanel::OnBrowseModelFolder)
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.Padding(4.0f, 0.0f, 0.0f, 0.0f)
		[
			SNew(SButton)
			.Text(LOCTEXT("Settings", "Settings..."))
			.ToolTipText(LOCTEXT("SettingsTip", "Device, memory budget and previews (Editor Preferences > Plugins > Flux Engine)."))
			.OnClicked(this, &SFluxPanel::OnOpenSettings)
		]);
}

TSharedRef<SWidget> SFluxPanel::MakeSizeRow()
{
	// Sizes snap to multiples of 16, as the engine requires.
	auto SnapTo16 = [](int32 Value) { return FMath::Max(16, FMath::RoundToInt(Value / 16.0f) * 16); };
	return MakeRow(LOCTEXT("Size", "Size"),
		SNew(SHorizontalBox)
		.ToolTipText(LOCTEXT("SizeTip", "Text-to-image output size: multiples of 16, at most 4096 a side and 4 megapixels. Edits keep the reference's size."))
		+ SHorizontalBox::Slot()
		.FillWidth(1.0f)
		[
			SNew(SSpinBox<int32>)
			.MinValue(16)
			.MaxValue(4096)
			.Delta(16)
			.Value_Lambda([this] { return Request.Width; })
			.OnValueChanged_Lambda([this, SnapTo16](int32 Value) { Request.Width = SnapTo16(Value); })
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.VAlign(VAlign_Center)
		.Padding(6.0f, 0.0f)
		[
			SNew(STextBlock).Text(LOCTEXT("SizeSeparator", "x"))
		]
		+ SHorizontalBox::Slot()
		.FillWidth(1.0f)
		[
			SNew(SSpinBox<int32>)
			.MinValue(16)
			.MaxValue(4096)
			.Delta(16)
			.Value_Lambda([this] { return Request.Height; })
			.OnValueChanged_Lambda([this, SnapTo16](int32 Value) { Request.Height = SnapTo16(Value); })
		]);
}

TSharedRef<SWidget> SFluxPanel::MakeButtonRow()
{
	return SNew(SHorizontalBox)
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.Padding(0.0f, 0.0f, 4.0f, 0.0f)
		[
			SNew(SButton)
			.Text(LOCTEXT("Generate", "Generate"))
			.ToolTipText(LOCTEXT("GenerateTip", "Text-to-image with the prompt (loads the model first when needed)."))
			.IsEnabled(this, &SFluxPanel::IsIdle)
			.OnClicked(this, &SFluxPanel::OnGenerate)
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.Padding(0.0f, 0.0f, 4.0f, 0.0f)
		[
			SNew(SButton)
			.Text(LOCTEXT("EditSelected", "Edit Selected Texture"))
			.ToolTipText(LOCTEXT("EditSelectedTip", "A Kontext edit of the texture selected in the Content Browser, following the prompt."))
			.IsEnabled(this, &SFluxPanel::IsIdle)
			.OnClicked(this, &SFluxPanel::OnEditSelected)
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		.Padding(0.0f, 0.0f, 4.0f, 0.0f)
		[
			SNew(SButton)
			.Text(LOCTEXT("Cancel", "Cancel"))
			.IsEnabled(this, &SFluxPanel::IsBusy)
			.OnClicked(this, &SFluxPanel::OnCancel)
		]
		+ SHorizontalBox::Slot()
		.AutoWidth()
		[
			SNew(SButton)
			.Text(LOCTEXT("SaveAsAsset", "Save as Asset"))
			.ToolTipText(LOCTEXT("SaveAsAssetTip", "Saves the last result as a texture under /Game/FluxEngine/."))
			.IsEnabled(this, &SFluxPanel::HasResult)
			.OnClicked(this, &SFluxPanel::OnSaveAsAsset)
		];
}

UFluxEditorSubsystem* SFluxPanel::GetSubsystem()
{
	return GEditor != nullptr ? GEditor->GetEditorSubsystem<UFluxEditorSubsystem>() : nullptr;
}

FText SFluxPanel::GetModelFolderText() const
{
	return FText::FromString(GetDefault<UFluxEngineSettings>()->ModelFolder.Path);
}

void SFluxPanel::OnModelFolderCommitted(const FText& Text, ETextCommit::Type CommitType)
{
	SetModelFolder(Text.ToString().TrimStartAndEnd());
}

FReply SFluxPanel::OnBrowseModelFolder()
{
	IDesktopPlatform* DesktopPlatform = FDesktopPlatformModule::Get();
	if (DesktopPlatform == nullptr)
	{
		return FReply::Handled();
	}
	const void* ParentWindow = FSlateApplication::Get().FindBestParentWindowHandleForDialogs(AsShared());
	FString Folder;
	if (DesktopPlatform->OpenDirectoryDialog(ParentWindow, LOCTEXT("ChooseFolder", "Choose the FLUX model folder").ToString(),
			GetDefault<UFluxEngineSettings>()->ModelFolder.Path, Folder))
	{
		SetModelFolder(Folder);
	}
	return FReply::Handled();
}

FReply SFluxPanel::OnOpenSettings()
{
	FModuleManager::LoadModuleChecked<ISettingsModule>(TEXT("Settings")).ShowViewer(TEXT("Editor"), TEXT("Plugins"), TEXT("FluxEngine"));
	return FReply::Handled();
}

void SFluxPanel::SetModelFolder(const FString& Folder)
{
	UFluxEngineSettings* Settings = GetMutableDefault<UFluxEngineSettings>();
	if (Settings->ModelFolder.Path != Folder)
	{
		Settings->ModelFolder.Path = Folder;
		Settings->SaveConfig();
	}
}

FReply SFluxPanel::OnGenerate()
{
	if (UFluxEditorSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->Generate(Request);
	}
	return FReply::Handled();
}

FReply SFluxPanel::OnEditSelected()
{
	if (UFluxEditorSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->EditSelectedTexture(Request);
	}
	return FReply::Handled();
}

FReply SFluxPanel::OnCancel()
{
	if (UFluxEditorSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->Cancel();
	}
	return FReply::Handled();
}

FReply SFluxPanel::OnSaveAsAsset()
{
	if (UFluxEditorSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->SaveResultAsAsset(FString());
	}
	return FReply::Handled();
}

bool SFluxPanel::IsIdle() const
{
	const UFluxEditorSubsystem* Subsystem = GetSubsystem();
	return Subsystem != nullptr && !Subsystem->IsBusy();
}

bool SFluxPanel::IsBusy() const
{
	const UFluxEditorSubsystem* Subsystem = GetSubsystem();
	return Subsystem != nullptr && Subsystem->IsBusy();
}

bool SFluxPanel::HasResult() const
{
	const UFluxEditorSubsystem* Subsystem = GetSubsystem();
	return Subsystem != nullptr && Subsystem->GetResultTexture() != nullptr;
}

TOptional<float> SFluxPanel::GetProgressPercent() const
{
	const UFluxEditorSubsystem* Subsystem = GetSubsystem();
	if (Subsystem == nullptr)
	{
		return 0.0f;
	}
	if (Subsystem->IsBusy() && !Subsystem->HasStepProgress())
	{
		// Unset: the bar shows that something happens without claiming how far it is.
		return TOptional<float>();
	}
	return Subsystem->GetProgress();
}

FText SFluxPanel::GetStatusText() const
{
	const UFluxEditorSubsystem* Subsystem = GetSubsystem();
	return Subsystem != nullptr ? Subsystem->GetStatusText() : LOCTEXT("NoSubsystem", "The Flux editor subsystem is not running.");
}

EVisibility SFluxPanel::GetImageVisibility() const
{
	return ShownTexture != nullptr ? EVisibility::Visible : EVisibility::Collapsed;
}

EVisibility SFluxPanel::GetPlaceholderVisibility() const
{
	return ShownTexture != nullptr ? EVisibility::Collapsed : EVisibility::Visible;
}

void SFluxPanel::ShowTexture(UTexture2D* Texture)
{
	ShownTexture = Texture;
	ImageBrush.SetResourceObject(Texture);
	if (Texture != nullptr)
	{
		ImageBrush.SetImageSize(FVector2D(Texture->GetSizeX(), Texture->GetSizeY()));
	}
}

void SFluxPanel::AddReferencedObjects(FReferenceCollector& Collector)
{
	Collector.AddReferencedObject(ShownTexture);
}

FString SFluxPanel::GetReferencerName() const
{
	return TEXT("SFluxPanel");
}

#undef LOCTEXT_NAMESPACE
