// Textures in and out of the engine: transient textures for previews and results, texture
// assets for saved results, and a texture's source pixels as edit references. Game thread only.

#pragma once

#include "CoreMinimal.h"

class UTexture2D;

namespace FluxTextures
{
	/** A transient BGRA8 texture holding Width x Height pixels, ready to draw; null when the
	 * size does not match the pixels. Each call makes a new texture: an uploaded one is never
	 * rewritten, so nothing races the render thread. */
	UTexture2D* MakeTransient(TConstArrayView<FColor> Pixels, int32 Width, int32 Height);

	/** A new texture asset /Game/FluxEngine/<AssetName> (sanitized and made unique; T_FluxImage
	 * when empty) holding the pixels as its sRGB source, registered with the asset registry and
	 * saved to disk. Null when there are no pixels; OutError is also set when saving failed. */
	UTexture2D* SaveAsAsset(TConstArrayView<FColor> Pixels, int32 Width, int32 Height, const FString& AssetName, FText& OutError);

	/** Mip 0 of Texture's source (its imported pixels, in any source format) as FColors: 8-bit
	 * sources keep their bytes; 16-bit and float sources, which Unreal treats as linear, are
	 * encoded as sRGB (floats clamped to [0, 1]). False with the reason when the texture has no
	 * source or is made of several UDIM blocks. */
	bool ReadSourcePixels(UTexture2D* Texture, TArray<FColor>& OutPixels, int32& OutWidth, int32& OutHeight, FText& OutError);
}
