// FColor's constructor takes R, G, B, A and stores them in the platform's order (B, G, R, A on
// every little-endian platform Unreal supports), so building FColors channel by channel is all the
// swizzling the library's R-first byte order needs.

#include "FluxPixels.h"

namespace
{
	/** Width x Height, or -1 when a side is not positive, Available bytes hold fewer pixels or the
	 * image would not fit an int32-sized byte array. */
	int32 PixelCount(int32 Width, int32 Height, int64 Available, int32 BytesPerPixel)
	{
		if (Width <= 0 || Height <= 0)
		{
			return -1;
		}
		const int64 Count = int64(Width) * Height;
		return Count * 4 <= MAX_int32 && Available >= Count * BytesPerPixel ? static_cast<int32>(Count) : -1;
	}

	/** RGB8 (opaque) or RGBA8 rows, BytesPerPixel 3 or 4, to FColors. */
	TArray<FColor> BytesToColors(TConstArrayView<uint8> Bytes, int32 Width, int32 Height, int32 BytesPerPixel)
	{
		TArray<FColor> Colors;
		const int32 Count = PixelCount(Width, Height, Bytes.Num(), BytesPerPixel);
		if (Count < 0)
		{
			return Colors;
		}
		Colors.SetNumUninitialized(Count);
		const uint8* Source = Bytes.GetData();
		for (int32 Index = 0; Index < Count; ++Index, Source += BytesPerPixel)
		{
			Colors[Index] = FColor(Source[0], Source[1], Source[2], BytesPerPixel == 4 ? Source[3] : 255);
		}
		return Colors;
	}
}

TArray<FColor> FluxPixels::RgbToColors(TConstArrayView<uint8> Rgb, int32 Width, int32 Height)
{
	return BytesToColors(Rgb, Width, Height, 3);
}

TArray<FColor> FluxPixels::RgbaToColors(TConstArrayView<uint8> Rgba, int32 Width, int32 Height)
{
	return BytesToColors(Rgba, Width, Height, 4);
}

TArray<uint8> FluxPixels::ColorsToRgba(TConstArrayView<FColor> Colors, int32 Width, int32 Height)
{
	TArray<uint8> Rgba;
	const int32 Count = PixelCount(Width, Height, int64(Colors.Num()) * 4, 4);
	if (Count < 0)
	{
		return Rgba;
	}
	Rgba.SetNumUninitialized(Count * 4);
	uint8* Dest = Rgba.GetData();
	for (int32 Index = 0; Index < Count; ++Index, Dest += 4)
	{
		const FColor& Color = Colors[Index];
		Dest[0] = Color.R;
		Dest[1] = Color.G;
		Dest[2] = Color.B;
		Dest[3] = Color.A;
	}
	return Rgba;
}
