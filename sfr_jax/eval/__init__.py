"""Evaluation: metrics (incl. Sewer-ML's benchmark), the evaluator, reports, calibration and decisions."""
