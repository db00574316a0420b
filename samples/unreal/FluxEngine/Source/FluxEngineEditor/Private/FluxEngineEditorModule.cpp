// FFluxEngineEditorModule: registers the Flux Engine tab and its Window menu entry. The engine
// itself lives in UFluxEditorSubsystem, which the editor creates and destroys on its own.

#include "CoreMinimal.h"
#include "Framework/Docking/TabManager.h"
#include "Modules/ModuleManager.h"
#include "SFluxPanel.h"
#include "Styling/AppStyle.h"
#include "ToolMenus.h"
#include "Widgets/Docking/SDockTab.h"

#define LOCTEXT_NAMESPACE "FluxEngineEditor"

namespace
{
	const FName FluxTabName(TEXT("FluxEngine"));

	FSlateIcon FluxIcon()
	{
		return FSlateIcon(FAppStyle::GetAppStyleSetName(), TEXT("ClassIcon.Texture2D"));
	}

	TSharedRef<SDockTab> SpawnFluxTab(const FSpawnTabArgs& Args)
	{
		return SNew(SDockTab)
			.TabRole(ETabRole::NomadTab)
			[
				SNew(SFluxPanel)
			];
	}
}

class FFluxEngineEditorModule : public IModuleInterface
{
public:
	virtual void StartupModule() override
	{
		// Hidden from the automatic tab lists: the Window menu entry below opens it.
		FGlobalTabmanager::Get()->RegisterNomadTabSpawner(FluxTabName, FOnSpawnTab::CreateStatic(&SpawnFluxTab))
			.SetDisplayName(LOCTEXT("TabTitle", "Flux Engine"))
			.SetTooltipText(LOCTEXT("TabTooltip", "Generate and edit textures with FLUX.1, in-process."))
			.SetIcon(FluxIcon())
			.SetMenuType(ETabSpawnerMenuType::Hidden);

		UToolMenus::RegisterStartupCallback(FSimpleMulticastDelegate::FDelegate::CreateRaw(this, &FFluxEngineEditorModule::RegisterMenus));
	}

	virtual void ShutdownModule() override
	{
		UToolMenus::UnRegisterStartupCallback(this);
		UToolMenus::UnregisterOwner(this);
		FGlobalTabmanager::Get()->UnregisterNomadTabSpawner(FluxTabName);
	}

private:
	void RegisterMenus()
	{
		// Entries made in this scope belong to this module (removed by UnregisterOwner).
		FToolMenuOwnerScoped OwnerScoped(this);
		UToolMenu* Menu = UToolMenus::Get()->ExtendMenu(TEXT("LevelEditor.MainMenu.Window"));
		FToolMenuSection& Section = Menu->FindOrAddSection(TEXT("WindowLayout"));
		Section.AddMenuEntry(
			TEXT("OpenFluxEngine"),
			LOCTEXT("MenuEntry", "Flux Engine"),
			LOCTEXT("MenuEntryTooltip", "Open the Flux Engine panel: text-to-image and Kontext edits of textures."),
			FluxIcon(),
			FUIAction(FExecuteAction::CreateLambda([] { FGlobalTabmanager::Get()->TryInvokeTab(FluxTabName); })));
	}
};

#undef LOCTEXT_NAMESPACE

IMPLEMENT_MODULE(FFluxEngineEditorModule, FluxEngineEditor)
