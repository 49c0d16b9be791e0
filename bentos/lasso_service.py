"""``LassoModel``: the Lasso champion(s) behind one batchable API (a "runner")."""

from bentos.runners import service_for

LassoModel = service_for("lasso")
