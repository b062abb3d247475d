"""Evaluation: metrics, evaluator, reports."""
