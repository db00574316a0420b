// Conversions between the library's byte layouts (RGB8, RGBA8: R first in memory) and FColor,
// whose bytes are B, G, R, A in memory. Each returns an empty array when the buffer is smaller
// than Width x Height pixels.

#pragma once

#include "CoreMinimal.h"

namespace FluxPixels
{
	/** Tightly packed RGB8 rows to opaque FColors. */
	FLUXENGINERUNTIME_API TArray<FColor> RgbToColors(TConstArrayView<uint8> Rgb, int32 Width, int32 Height);

	/** Tightly packed RGBA8 rows to FColors. */
	FLUXENGINERUNTIME_API TArray<FColor> RgbaToColors(TConstArrayView<uint8> Rgba, int32 Width, int32 Height);

	/** FColors to tightly packed RGBA8 rows. */
	FLUXENGINERUNTIME_API TArray<uint8> ColorsToRgba(TConstArrayView<FColor> Colors, int32 Width, int32 Height);
}
