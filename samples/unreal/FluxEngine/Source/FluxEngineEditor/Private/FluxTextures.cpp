// Transient textures, texture assets and texture source pixels for the Flux editor subsystem.

#include "FluxTextures.h"

#include "AssetRegistry/AssetRegistryModule.h"
#include "AssetToolsModule.h"
#include "Engine/Texture2D.h"
#include "FileHelpers.h"
#include "ImageCore.h"
#include "ObjectTools.h"
#include "TextureResource.h"
#include "UObject/Package.h"

#define LOCTEXT_NAMESPACE "FluxTextures"

namespace
{
	bool SizeMatches(TConstArrayView<FColor> Pixels, int32 Width, int32 Height)
	{
		return Width > 0 && Height > 0 && int64(Pixels.Num()) == int64(Width) * Height;
	}
}

UTexture2D* FluxTextures::MakeTransient(TConstArrayView<FColor> Pixels, int32 Width, int32 Height)
{
	if (!SizeMatches(Pixels, Width, Height))
	{
		return nullptr;
	}
	UTexture2D* Texture = UTexture2D::CreateTransient(Width, Height, PF_B8G8R8A8);
	if (Texture == nullptr)
	{
		return nullptr;
	}
	// PF_B8G8R8A8 has FColor's memory layout, and mip 0 of a transient texture is tightly packed.
	FTexture2DMipMap& Mip = Texture->GetPlatformData()->Mips[0];
	void* Dest = Mip.BulkData.Lock(LOCK_READ_WRITE);
	FMemory::Memcpy(Dest, Pixels.GetData(), Pixels.Num() * sizeof(FColor));
	Mip.BulkData.Unlock();
	Texture->UpdateResource();
	return Texture;
}

UTexture2D* FluxTextures::SaveAsAsset(TConstArrayView<FColor> Pixels, int32 Width, int32 Height, const FString& AssetName, FText& OutError)
{
	if (!SizeMatches(Pixels, Width, Height))
	{
		OutError = LOCTEXT("NoPixels", "There is no image to save.");
		return nullptr;
	}

	const FString BaseName = ObjectTools::SanitizeObjectName(AssetName.IsEmpty() ? FString(TEXT("T_FluxImage")) : AssetName);
	FString PackageName;
	FString UniqueName;
	IAssetTools& AssetTools = FModuleManager::LoadModuleChecked<FAssetToolsModule>(TEXT("AssetTools")).Get();
	AssetTools.CreateUniqueAssetName(TEXT("/Game/FluxEngine/") + BaseName, FString(), PackageName, UniqueName);

	UPackage* Package = CreatePackage(*PackageName);
	UTexture2D* Texture = NewObject<UTexture2D>(Package, FName(*UniqueName), RF_Public | RF_Standalone | RF_Transactional);
	Texture->Source.Init(Width, Height, /*NewNumSlices*/ 1, /*NewNumMips*/ 1, TSF_BGRA8, reinterpret_cast<const uint8*>(Pixels.GetData()));
	Texture->SRGB = true;
	// Builds the platform data from the new source, as an import does.
	Texture->PostEditChange();

	FAssetRegistryModule::AssetCreated(Texture);
	Package->MarkPackageDirty();
	if (!UEditorLoadingAndSavingUtils::SavePackages({ Package }, /*bOnlyDirty*/ false))
	{
		OutError = FText::Format(LOCTEXT("NotSaved", "{0} was created but could not be saved; save it from the Content Browser."), FText::FromString(PackageName));
	}
	return Texture;
}

bool FluxTextures::ReadSourcePixels(UTexture2D* Texture, TArray<FColor>& OutPixels, int32& OutWidth, int32& OutHeight, FText& OutError)
{
	if (Texture == nullptr)
	{
		OutError = LOCTEXT("NoTexture", "No texture was given.");
		return false;
	}
	FTextureSource& Source = Texture->Source;
	if (!Source.IsValid())
	{
		OutError = FText::Format(LOCTEXT("NoSource", "{0} has no source pixels (it was not imported or made in the editor)."), FText::FromString(Texture->GetName()));
		return false;
	}
	if (Source.GetNumBlocks() > 1)
	{
		OutError = FText::Format(LOCTEXT("Udim", "{0} is a UDIM (multi-block) texture, which cannot be edited."), FText::FromString(Texture->GetName()));
		return false;
	}

	FImage Image;
	if (!Source.GetMipImage(Image, /*MipIndex*/ 0))
	{
		OutError = FText::Format(LOCTEXT("Unreadable", "The source pixels of {0} could not be read."), FText::FromString(Texture->GetName()));
		return false;
	}
	const bool bEightBit = Image.Format == ERawImageFormat::G8 || Image.Format == ERawImageFormat::BGRA8;
	FImage Bgra;
	Image.CopyTo(Bgra, ERawImageFormat::BGRA8, bEightBit ? Image.GammaSpace : EGammaSpace::sRGB);

	const TArrayView64<FColor> Colors = Bgra.AsBGRA8();
	OutPixels = TArray<FColor>(Colors.GetData(), static_cast<int32>(Colors.Num()));
	OutWidth = Bgra.SizeX;
	OutHeight = Bgra.SizeY;
	return true;
}

#undef LOCTEXT_NAMESPACE
