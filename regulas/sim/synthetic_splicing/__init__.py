r"""A synthetic splicing data set of any size, calibrated on GSE114922 (TCGA shape: 10,000 x 1,500 x 50,000).

Command::

    python -m regulas.sim.synthetic_splicing --samples N --rbps P --events E --out DIR \
        [--missing-rate R] [--missing-pattern coverage|uniform] [--seed S] [--format hdf5|zarr|parquet|tsv.gz]

writes ``expression`` (N samples x P RBPs), ``psi`` (N x E, NaN where missing; Parquet and
TSV store it E x N, see :mod:`.writers`), the planted truth (``truth_events.tsv``,
``truth_regulators.tsv``, ``truth_samples.tsv``), ``generation.json`` and a ``README.md``.

Model (N samples, P RBPs, E events, K = 5 factors; calibration in :mod:`.calibration`):

.. math::

    \mathbf{X} = \mathbf{1}\boldsymbol\mu^\top + (\mathbf{F}\mathbf{L}^\top
        + \mathbf{E}_x \operatorname{diag}(\sqrt{\mathbf{u}})) \operatorname{diag}(\boldsymbol\sigma)

- X (N, P): log2(FPKM + 1) of the RBPs, clipped at 0; mu, sigma (P,) the real RBPs' means
  and sds; L (P, K) loadings of a rank-K factor model of their correlation, u (P,) =
  1 - rowsum(L^2) (so corr(X) = L L^T + diag(u)); F (N, K), E_x (N, P) standard normal.
  P above the 868 real RBPs: extra columns resample real ones with jitter.
- Per event e: S_e the planted regulators (|S_e| = 0 for an unregulated event), beta_e
  (|S_e|,) signs and sizes, h_e in [0, 1) the regulators' share of the latent variance:

  .. math::

      \mathbf{g}_e = \mathbf{X}^{s}_{:, S_e} \boldsymbol\beta_e / \sqrt{\boldsymbol\beta_e^\top
          \mathbf{C}_{S_e} \boldsymbol\beta_e}, \qquad
      \mathbf{z}_e = \sqrt{h_e}\, \mathbf{g}_e + \sqrt{1 - h_e}\, \boldsymbol\epsilon_e

  X^s (N, P) is X standardized by (mu, sigma), C_S the model correlation of the regulators,
  epsilon_e (N,) standard normal, so z_e (N,) is standard normal.
- PSI (N, E) with the point masses of a resampled real event (rates r0_e, r1_e of exact 0
  and 1; logit mean m_e and sd s_e of its values inside (0, 1)):

  .. math::

      \mathrm{PSI}_{ie} = \begin{cases} 0 & z_{ie} \le \Phi^{-1}(r0_e) \\
          1 & z_{ie} \ge \Phi^{-1}(1 - r1_e) \\
          \operatorname{expit}(m_e + s_e (z_{ie} - \mu^t_e) / \sigma^t_e) & \text{otherwise}
      \end{cases}

  with mu^t, sigma^t the mean and sd of the standard normal truncated to the middle
  interval, so the interior values keep the real event's logit mean and sd.
- Missing (N, E): ``coverage`` pattern, missing where d_i + c_e + 0.5 n_ie < t(R), d (N,) ~
  N(0, 0.5^2) sample depth, c (E,) ~ N(0, 1) event coverage, n (N, E) standard normal, t(R)
  the R quantile of their sum; ``uniform``, round(R N) random rows per event. At most half
  of an event's samples are missing.

Random streams are keyed by (seed, stream, tile of ``TILE`` events) (:mod:`.model`): the
same seed gives the same data whatever the writing block size, a smaller E gives the first
events of a larger data set, and PSI values do not depend on the missing rate.
"""

from regulas.sim.synthetic_splicing.calibration import Calibration, calibrate
from regulas.sim.synthetic_splicing.generate import Shape, SyntheticSplicing, generate
from regulas.sim.synthetic_splicing.model import TILE, Settings

__all__ = ["TILE", "Calibration", "Settings", "Shape", "SyntheticSplicing", "calibrate", "generate"]
