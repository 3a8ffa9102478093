"""ocdec: find and characterize open star clusters in Gaia data.

The main entry points, imported on first use (``import ocdec`` itself loads nothing heavy)::

    import ocdec
    stars = ocdec.read_stars("field.csv")              # any Gaia or VizieR column names
    priors = ocdec.ClusterPriors(ra=130.1, dec=19.67, radius_deg=2.0)
    result = ocdec.find_members(stars, priors=priors)  # method="default", "thesis", "hdbscan"
    stars[result.member]                               # p_member, group, parameters too
    ocdec.fit_parameters(stars[result.member])         # distance, age, A_V, mass (.as_dict())

See :data:`__all__` for the rest; the command line (``ocdec ...``) and the Snakemake workflow are
built on the same functions.
"""

from importlib import import_module
from typing import Any

# public name -> module that defines it
_API = {
    "find_members": "ocdec.characterize",
    "characterize": "ocdec.characterize",
    "method_settings": "ocdec.characterize",
    "ClusterPriors": "ocdec.methods.priors",
    "MethodResult": "ocdec.methods.base",
    "method_names": "ocdec.methods.registry",
    "get_method": "ocdec.methods.registry",
    "read_stars": "ocdec.data.columns",
    "apply_quality": "ocdec.data.quality",
    "QualitySettings": "ocdec.data.quality",
    "simulate_field": "ocdec.data.simulate",
    "SimulateSettings": "ocdec.data.simulate",
    "cluster_parameters": "ocdec.methods.astrometry",
    "read_published": "ocdec.results.validation",
    "score_members": "ocdec.results.validation",
    "fit_parameters": "ocdec.physics.parameters",
    "ParametersSettings": "ocdec.physics.parameters",
    "ParametersResult": "ocdec.physics.parameters",
    "OcdecError": "ocdec.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    # __version__ on first use: importlib.metadata is a tenth of a second of every job's start-up
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("ocdec")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0+unknown"
    elif name in _API:
        value = getattr(import_module(_API[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
