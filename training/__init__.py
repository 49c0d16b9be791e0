"""Training, walk-forward evaluation and the model registry.

Every model is judged against the persistence forecast ("next hour's close =
this hour's close") on the same rows; the registry's promotion gate keeps a
model that is worse than that floor from becoming the default.
"""
