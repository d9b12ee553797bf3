"""What a tick computes for every driving car: `_fleetstep.c` where it was built, else its
pure-Python twin `purestep` (same results; `producers.native` says which runs)."""

from producers.native import Twins

FLEETSTEP = Twins("producers.sim._fleetstep", "producers.sim.purestep")
