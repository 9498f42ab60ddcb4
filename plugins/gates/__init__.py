"""Built-in release gates: metric thresholds, no regression, fairness, residency."""
