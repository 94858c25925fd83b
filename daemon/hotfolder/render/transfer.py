"""Transfer functions of the HDR and SDR signals, vectorised over numpy arrays (ITU-R BT.2100,
SMPTE ST 2084, ARIB STD-B67, IEC 61966-2-1). Signals and linear light are floats in [0, 1];
PQ's linear light is in cd/m²."""

from __future__ import annotations

import math
from typing import Any, Final

# SMPTE ST 2084 constants.
_M1: Final = 2610 / 16384
_M2: Final = 2523 / 4096 * 128
_C1: Final = 3424 / 4096
_C2: Final = 2413 / 4096 * 32
_C3: Final = 2392 / 4096 * 32
PQ_PEAK: Final = 10000.0  # cd/m² at signal 1.0
# ARIB STD-B67 constants.
_A: Final = 0.17883277
_B: Final = 1 - 4 * _A
_C: Final = 0.5 - _A * math.log(4 * _A)
HLG_PEAK: Final = 1000.0  # the nominal display BT.2100's OOTF is defined for (gamma 1.2)
HLG_GAMMA: Final = 1.2


def pq_eotf(e: Any) -> Any:
    """PQ signal → display light in cd/m²."""
    import numpy as np  # noqa: PLC0415

    p = np.power(np.clip(e, 0, 1), 1 / _M2)
    return PQ_PEAK * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)


def pq_inverse_eotf(nits: Any) -> Any:
    """Display light in cd/m² → PQ signal."""
    import numpy as np  # noqa: PLC0415

    y = np.power(np.clip(nits / PQ_PEAK, 0, 1), _M1)
    return np.power((_C1 + _C2 * y) / (1 + _C3 * y), _M2)


def hlg_inverse_oetf(e: Any) -> Any:
    """HLG signal → scene light, normalised to [0, 1]."""
    import numpy as np  # noqa: PLC0415

    e = np.clip(e, 0, 1)
    low = e * e / 3
    high = (np.exp((np.maximum(e, 0.5) - _C) / _A) + _B) / 12
    return np.where(e <= 0.5, low, high)


def srgb_oetf(linear: Any) -> Any:
    """Linear light in [0, 1] → sRGB signal (IEC 61966-2-1)."""
    import numpy as np  # noqa: PLC0415

    v = np.clip(linear, 0, 1)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def tabulated(kind: str, size: int) -> list[int]:
    """A PQ or HLG signal → relative display light table (0..65535) for an ICC curv tag: PQ against
    its 10,000 cd/m² peak; HLG through the OOTF's gamma 1.2 per channel against the 1000 cd/m² peak
    (an ICC curve cannot hold the OOTF's dependence on luminance)."""
    import numpy as np  # noqa: PLC0415

    e = np.linspace(0.0, 1.0, size)
    light = pq_eotf(e) / PQ_PEAK if kind == "pq" else np.power(hlg_inverse_oetf(e), HLG_GAMMA)
    return [int(v) for v in np.round(np.clip(light, 0, 1) * 65535)]
