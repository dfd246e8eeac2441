"""Hand-computed scoring cases shared by the metric and CLI tests.

Labels (codes, N = 10): GOOD x2, each defect once except Missing x3, Drift once.
Official matrix: GOOD->defect 100, GOOD->Drift 10000, defect->GOOD 10000, defect->defect 1,
defect->Drift 1000, Drift->GOOD 10000, Drift->defect 1000; max C = 10000, so N * max C = 100000.
"""

from __future__ import annotations

LABELS = [0, 0, 1, 2, 3, 4, 4, 4, 5, 6]

# Five mistakes, the rest right:
#   true 0 -> 6 : official 10000, page 100
#   true 0 -> 4 : 100 (both)
#   true 1 -> 0 : 10000 (both)            <- the one defect escape
#   true 3 -> 6 : official 1000, page 1
#   true 4 -> 2 : 1 (both)
#   true 6 -> 5 : 1000 (both)
# official total 10000 + 100 + 10000 + 1000 + 1 + 1000 = 22101 -> PWA 1 - 0.22101 = 0.77899
# page total       100 + 100 + 10000 +    1 + 1 + 1000 = 11202 -> PWA 1 - 0.11202 = 0.88798
MISTAKES = [6, 4, 0, 2, 6, 2, 4, 4, 5, 5]
MISTAKES_COST_OFFICIAL = 22101.0
MISTAKES_PWA_OFFICIAL = 0.77899
MISTAKES_PWA_PAGE = 0.88798

# Constant answers on LABELS (support per code: [2, 1, 1, 1, 3, 1, 1]), official matrix:
#   always 0 (GOOD):    7 defects * 10000 + Drift 10000              = 80000 -> 0.2
#   always 4 (Missing): 2 * 100 + 4 other defects * 1 + Drift 1000   = 1204  -> 0.98796
#   always 1, 2, 3, 5:  2 * 100 + 6 other defects * 1 + 1000         = 1206  -> 0.98794
#   always 6 (Drift):   2 * 10000 + 7 * 1000                         = 27000 -> 0.73
# Page matrix: only "always Drift" changes: 2 * 100 + 7 * 1 = 207    -> 0.99793
CONSTANT_COSTS_OFFICIAL = [80000.0, 1206.0, 1206.0, 1206.0, 1204.0, 1206.0, 27000.0]
FLOOR_CODE_OFFICIAL = 4
FLOOR_PWA_OFFICIAL = 0.98796

NAMES = ["GOOD", "Boucle plate", "Lift-off blanc", "Lift-off noir", "Missing",
         "Short circuit MOS", "Drift"]
