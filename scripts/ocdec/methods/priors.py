"""What ocdec knows of a region before looking at its stars: the catalogue's cluster."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ocdec.errors import OcdecError


@dataclass(frozen=True)
class ClusterPriors:
    """What the pipeline knows of a region before looking: catalogue centre and cone radius (deg),
    and the catalogue's parallax (from its distance) and pre-Gaia proper motion; any may be None."""

    ra: float | None = None
    dec: float | None = None
    radius_deg: float | None = None
    pmra: float | None = None
    pmdec: float | None = None
    parallax: float | None = None

    def __post_init__(self) -> None:
        if self.radius_deg is not None and not self.radius_deg > 0:
            raise OcdecError(f"radius must be positive, got {self.radius_deg}")
        if (self.ra is None) != (self.dec is None):
            raise OcdecError("give both --ra and --dec, or neither")
        if (self.pmra is None) != (self.pmdec is None):
            raise OcdecError("give both pm prior values (pmra and pmdec), or neither")
        if self.parallax is not None and not self.parallax > 0:
            raise OcdecError(f"parallax prior must be positive, got {self.parallax}")
        if self.dec is not None and not -90.0 <= self.dec <= 90.0:
            raise OcdecError(f"dec must be within [-90, 90], got {self.dec}")

    @property
    def has_centre(self) -> bool:
        return self.ra is not None and self.dec is not None

    def centre_only(self) -> ClusterPriors:
        """The same cone without the catalogue's motion and distance: a search of every group."""
        return ClusterPriors(ra=self.ra, dec=self.dec, radius_deg=self.radius_deg)

    def weight(self, pmra: float, pmdec: float, parallax: float, *, pm_scale: float = 0.0,
               pm_sigma: float = 3.0, plx_log_sigma: float = 0.25) -> float:
        """How compatible a group at (pmra, pmdec, parallax) is with the catalogue: a log-normal
        of ``plx_log_sigma`` in parallax around the catalogue's and a Gaussian of ``pm_sigma``
        (widened by the group's own ``pm_scale``) around its proper motion; 1 where unknown.
        Pre-Gaia proper motions can be several mas/yr off and distances 10-30 %."""
        weight = 1.0
        for term in self._log_terms(pmra, pmdec, parallax, pm_scale, pm_sigma, plx_log_sigma):
            weight *= math.exp(term)
        return weight

    def log_weight(self, pmra: float, pmdec: float, parallax: float, *, pm_scale: float = 0.0,
                   pm_sigma: float = 3.0, plx_log_sigma: float = 0.25) -> float:
        """The logarithm of :meth:`weight`, which does not underflow far from the prior."""
        return sum(self._log_terms(pmra, pmdec, parallax, pm_scale, pm_sigma, plx_log_sigma))

    def _log_terms(self, pmra: float, pmdec: float, parallax: float, pm_scale: float,
                   pm_sigma: float, plx_log_sigma: float) -> list[float]:
        terms = []
        if self.parallax is not None:
            terms.append(-0.5 * (math.log(parallax / self.parallax) / plx_log_sigma) ** 2)
        if self.pmra is not None and self.pmdec is not None:
            d = math.hypot(pmra - self.pmra, pmdec - self.pmdec)
            terms.append(-0.5 * (d / math.hypot(pm_sigma, pm_scale)) ** 2)
        return terms

    @classmethod
    def from_region(cls, region: Mapping[str, Any]) -> ClusterPriors:
        """Priors from a regions-table row (``ra``, ``dec``, ``radius_deg``, ``pmra_prior``,
        ``pmdec_prior``, ``parallax_prior``; missing or NaN values are unknown). A proper motion
        needs both components; a parallax prior must be positive."""

        def value(key: str) -> float | None:
            v = region.get(key)
            if v is None:
                return None
            v = float(v)
            return None if math.isnan(v) else v

        pm = (value("pmra_prior"), value("pmdec_prior"))
        if None in pm:
            pm = (None, None)
        parallax = value("parallax_prior")
        return cls(ra=value("ra"), dec=value("dec"), radius_deg=value("radius_deg"),
                   pmra=pm[0], pmdec=pm[1],
                   parallax=parallax if parallax is not None and parallax > 0 else None)
