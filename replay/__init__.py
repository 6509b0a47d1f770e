"""The offline replay: a log run through the live model's functions, prequentially, against the baselines."""
