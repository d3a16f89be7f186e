"""retrainer: continuous training for machine-learning models.

Retrain on a schedule or a trigger, bless each candidate against the champion on the same
fresh data, promote it, and record every decision with its lineage.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
