"""``CNNModel``: the Keras CNN champion(s) behind one batchable API (a "runner").

Its forward pass is a concrete ``tf.function`` (``candlecast.artifacts.forward``).
"""

from bentos.runners import service_for

CNNModel = service_for("cnn")
