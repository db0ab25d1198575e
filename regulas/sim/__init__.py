"""regNet's simulation: Y = M beta + E over a grid of covariance structures and signal fractions.

* :mod:`regulas.sim.motifs` -- the motif-score matrix M (real scores from a file, or synthetic);
* :mod:`regulas.sim.covariance` -- the structures V (signal) and Sigma (noise) between conditions;
* :mod:`regulas.sim.simulate` -- one draw, scaled exactly to a signal fraction;
* :mod:`regulas.sim.methods` -- the estimators compared (ridge, LMM, OLS), imported lazily;
* :mod:`regulas.sim.metrics` -- recovery of beta and of the covariance structures.

At large P (thousands of conditions), nothing P x P:

* :mod:`regulas.sim.factor_covariance` -- V and Sigma as F F^T + diag(d);
* :mod:`regulas.sim.blocked` -- one data set drawn block of conditions by block, per-block seeds;
* :mod:`regulas.sim.streamed_setup` -- U^T Y and column sums of squares accumulated over blocks;
* :mod:`regulas.sim.blocked_ridge` -- RidgeGCV's result computed on blocks of conditions;
* :mod:`regulas.sim.motif_copula` -- synthetic M at any G calibrated on a real score table;
* :mod:`regulas.sim.fit_cost` -- memory and time estimates that refuse what cannot run.

Splicing: :mod:`regulas.sim.synthetic_splicing` -- a TCGA-shaped splicing data set (RBP
expression, PSI with missing values, planted regulators) calibrated on GSE114922.
"""

from regulas.sim.simulate import Cell, Simulation, SimulationSeeds, simulate

__all__ = ["Cell", "Simulation", "SimulationSeeds", "simulate"]
