"""Identification: match jobs, candidates, curator decisions, merge/split, review queue, calibration and
retraining orchestration. Persists what ml_service computes; holds no tensor code."""
