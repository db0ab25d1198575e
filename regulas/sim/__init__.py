"""regNet's simulation: Y = M beta + E over a grid of covariance structures and signal fractions.

* :mod:`regulas.sim.motifs` -- the motif-score matrix M (real scores from a file, or synthetic);
* :mod:`regulas.sim.covariance` -- the structures V (signal) and Sigma (noise) between conditions;
* :mod:`regulas.sim.simulate` -- one draw, scaled exactly to a signal fraction;
* :mod:`regulas.sim.methods` -- the estimators compared (ridge, LMM, OLS), imported lazily;
* :mod:`regulas.sim.metrics` -- recovery of beta and of the covariance structures.
"""

from regulas.sim.simulate import Cell, Simulation, SimulationSeeds, simulate

__all__ = ["Cell", "Simulation", "SimulationSeeds", "simulate"]
