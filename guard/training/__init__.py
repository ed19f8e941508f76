"""Training data, training and evaluation of guard's default model (extra: `pip install guard[train]`)."""
