"""Training loops of the five stages (VQ, masked and residual transformer, length estimator, evaluator)."""
