"""Exact unit factors, written as their definitions (no rounded decimals).

The international knot is one nautical mile (exactly 1852 m) per hour; the inch is exactly
25.4 mm and the foot 0.3048 m (the 1959 international yard and pound agreement), so the
statute mile of 5280 feet is exactly 1609.344 m.
"""

KNOT_MS = 1852 / 3600           # m/s per knot
INCH_MM = 25.4                  # mm per inch
FOOT_M = 0.3048                 # m per foot
MILE_M = 1609.344               # m per statute mile (5280 ft)
