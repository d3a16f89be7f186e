"""Monitoring: one monitor window (drift, data quality, performance, concept drift), its
HTML report, and online performance from the prediction and feedback log."""
