"""The names of the feature poolings (no torch here, so command-line parsers can list them cheaply).

`eval.features.pool_features` implements them: "avg" and "max" pool a layer's map globally over
time and space; "max122" is seed 002's retrieval feature (§4.3, VCOP's `return_conv`): a
(1, 2, 2) 3D max pool, flattened, which keeps time and a coarse spatial grid.
"""

from __future__ import annotations

POOLINGS: tuple[str, ...] = ("avg", "max", "max122")
POOLING_HELP = ("avg: global 3D average (default); max: global 3D max; max122: seed 002's retrieval feature, a "
                "(1,2,2) 3D max pool of the map, flattened (C*T*(H/2)*(W/2) dims)")
