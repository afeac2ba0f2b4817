"""Pop, SASRec and GRU4Rec baselines; `registry.BASELINES`, `registry.train_baseline`."""
