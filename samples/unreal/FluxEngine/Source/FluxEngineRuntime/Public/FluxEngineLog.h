// LogFluxEngine: the plugin's log category. The library's own log lines (LOG events) are forwarded
// to it with matching verbosity by FFluxEngine::PollEvent.

#pragma once

#include "CoreMinimal.h"

FLUXENGINERUNTIME_API DECLARE_LOG_CATEGORY_EXTERN(LogFluxEngine, Log, All);
