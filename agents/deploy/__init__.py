"""Deploy a trained policy: the actor alone as an ONNX or TorchScript file with explicit state.

- ``actor.py``: the actor as a plain torch module (normalisation, features, one recurrent step,
  the deterministic action) with its state as inputs and outputs;
- ``files.py``: ``export()``, the file formats, the check against the model and the sidecar JSON.
"""
